// Starts the programs under test: a private redis-server (or a Redis Cluster, cluster.js)
// and the real consumer and producer binaries from target/debug, each on a free port, each
// logging to its own file under target/e2e/logs/. Everything started is stopped by
// `stopAll()` (call it from an after() hook) and, as a last resort, killed when the test
// process exits.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisCluster } from './cluster.js';
import { waitFor } from './wait.js';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where cargo puts its output (honours CARGO_TARGET_DIR, as cargo does). */
export const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');
/** Where logs and screenshots go: under target/, so out of git. */
export const OUTPUT = join(TARGET, 'e2e');

/** How long a program may take to answer /healthz after it is started, in ms. */
const START_TIMEOUT_MS = 20_000;
/** How long a program may take to exit after SIGTERM before it is killed, in ms. */
const STOP_TIMEOUT_MS = 5_000;
/** How many lines of each log are printed when a test fails. */
const LOG_TAIL_LINES = 150;

const running = new Set();
const killAll = () => {
  for (const child of running) child.kill('SIGKILL');
};
process.on('exit', killAll);
// Interrupted (Ctrl-C, or the test runner cancelling the file): nothing may outlive us.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}

/** Which build the programs under test come from: `debug` (scripts/e2e), or `release` (scripts/bench). */
const PROFILE = process.env.E2E_PROFILE ?? 'debug';
if (!['debug', 'release'].includes(PROFILE)) {
  throw new Error(`E2E_PROFILE must be debug or release, got '${PROFILE}'`);
}

/** The path of a binary of the E2E_PROFILE build, or an error saying how to build it. */
export function binary(name) {
  const path = join(TARGET, PROFILE, name);
  if (!existsSync(path)) {
    const build = PROFILE === 'release' ? 'cargo build --release --bins' : 'cargo build --bins';
    throw new Error(`${path} does not exist: run \`${build}\` first (scripts/e2e does for debug)`);
  }
  return path;
}

/** A TCP port that was free a moment ago: bind port 0, read the port, close. */
export async function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/**
 * The environment a program under test gets: only what a program needs to run plus
 * `vars`, so that a BIND or REDIS_URL in the developer's shell cannot leak into a test.
 */
function childEnv(vars) {
  const base = { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', RUST_BACKTRACE: '1' };
  base.RUST_LOG = process.env.E2E_RUST_LOG ?? 'info';
  return { ...base, ...vars };
}

function ping(socketPath) {
  return new Promise((ok, fail) => {
    const conn = createConnection({ path: socketPath });
    conn.setTimeout(2_000, () => conn.destroy(new Error('no answer to PING')));
    conn.on('error', fail);
    conn.on('connect', () => conn.write('PING\r\n'));
    conn.on('data', (data) => {
      conn.end();
      ok(data.toString().startsWith('+PONG'));
    });
  });
}

/** One test file's programs, their logs, and their clean-up. */
export class Services {
  /**
   * @param {string} label  names the log folder, target/e2e/logs/<label>/
   * @param {{ nice?: number }} [options]  `nice`: run every program at this niceness, so
   *   that on a machine of two cores the browser under test is not starved by the
   *   programs it watches (a user's browser does not share its cores with the servers)
   */
  constructor(label, { nice = 0 } = {}) {
    this.label = label;
    this.nice = nice;
    this.logDir = join(OUTPUT, 'logs', label);
    rmSync(this.logDir, { recursive: true, force: true });
    mkdirSync(this.logDir, { recursive: true });
    this.tempDir = mkdtempSync(join(tmpdir(), 'taskhooks-e2e-'));
    /** @type {{ name: string, child: import('node:child_process').ChildProcess, log: string }[]} */
    this.procs = [];
  }

  /** Starts `command args` with `env`, stdout and stderr going to <name>.log. */
  spawn(name, command, args, env, { append = false } = {}) {
    const log = join(this.logDir, `${name}.log`);
    const fd = openSync(log, append ? 'a' : 'w');
    // `nice` execs the program, so the child's pid is the program's own.
    const [file, argv] = this.nice ? ['nice', ['-n', String(this.nice), command, ...args]] : [command, args];
    const child = spawn(file, argv, { env: childEnv(env), stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const proc = { name, child, log, exited: null, command, args, env };
    child.on('exit', (code, signal) => {
      proc.exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      running.delete(child);
    });
    running.add(child);
    this.procs.push(proc);
    return proc;
  }

  /**
   * Starts a private redis-server on a Unix socket, and also on 127.0.0.1:`port` when one
   * is given; returns its URL (`redis+unix://…`, or `redis://127.0.0.1:port`). The flags
   * are start_redis's in scripts/lib.sh (and shared/src/testing.rs's), plus the port.
   */
  async startRedis(name = 'redis', { port = 0 } = {}) {
    const dir = mkdtempSync(join(this.tempDir, `${name}-`));
    const socket = join(dir, 'redis.sock');
    const proc = this.spawn(name, 'redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--unixsocket', socket, '--unixsocketperm', '700',
      '--save', '', '--appendonly', 'no', '--dir', dir,
    ], {});
    proc.socket = socket;
    await this.#redisReady(proc);
    return port ? `redis://127.0.0.1:${port}` : `redis+unix://${socket}`;
  }

  /**
   * Starts a private six-node Redis Cluster (see cluster.js) whose nodes are programs of
   * this file, named redis-node-0…5; gives the `RedisCluster`, whose `urls` are its seeds.
   */
  async startRedisCluster(name = 'redis-cluster') {
    return RedisCluster.start(this, name);
  }

  async #redisReady(proc) {
    await waitFor(`${proc.name} to answer PING on ${proc.socket}`, async () => {
      if (proc.exited) throw new Error(`redis-server ${proc.exited}; see ${proc.log}`);
      return existsSync(proc.socket) && (await ping(proc.socket));
    }, { timeoutMs: START_TIMEOUT_MS });
  }

  /** Kills the program started as `name` (SIGKILL: a crash, not a shutdown); resolves once it is gone. */
  async kill(name) {
    const proc = this.procs.find((p) => p.name === name && !p.exited);
    if (!proc) throw new Error(`no running program named ${name}`);
    await new Promise((ok) => {
      proc.child.once('exit', ok);
      proc.child.kill('SIGKILL');
    });
  }

  /** Starts redis-server `name` again, as before and on the same socket (it comes back empty). */
  async restartRedis(name = 'redis') {
    const old = this.procs.findLast((p) => p.name === name);
    if (!old?.socket) throw new Error(`no redis-server named ${name} was started`);
    if (!old.exited) await this.kill(name);
    rmSync(old.socket, { force: true });
    const proc = this.spawn(name, old.command, old.args, old.env, { append: true });
    proc.socket = old.socket;
    await this.#redisReady(proc);
  }

  /**
   * Starts a debug binary and waits until `GET <baseUrl>/healthz` answers 200.
   * @param {string} name  log name, e.g. "consumer"
   * @param {{ bin: string, args?: string[], env?: Record<string,string>, baseUrl: string }} spec
   */
  async startBinary(name, { bin, args = [], env = {}, baseUrl }) {
    const proc = this.spawn(name, binary(bin), args, env);
    proc.baseUrl = baseUrl;
    await this.#healthy(proc);
    return proc;
  }

  /**
   * Starts the binary `name` again as before (same flags, port and environment; its log
   * goes on in the same file), killing it first if it still runs; waits for /healthz.
   */
  async restartBinary(name) {
    const old = this.procs.findLast((p) => p.name === name);
    if (!old?.baseUrl) throw new Error(`no program named ${name} was started by startBinary`);
    if (!old.exited) await this.kill(name);
    const proc = this.spawn(name, old.command, old.args, old.env, { append: true });
    proc.baseUrl = old.baseUrl;
    await this.#healthy(proc);
    return proc;
  }

  async #healthy(proc) {
    await waitFor(`${proc.name} to answer ${proc.baseUrl}/healthz`, async () => {
      if (proc.exited) throw new Error(`${proc.name} ${proc.exited}; see ${proc.log}`);
      const response = await fetch(`${proc.baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
      return response.ok;
    }, { timeoutMs: START_TIMEOUT_MS });
  }

  /** Runs a binary to completion (e.g. `producer send`); resolves to `{ code, output }`. */
  async run(name, bin, args, env, { timeoutMs = 120_000 } = {}) {
    const proc = this.spawn(name, binary(bin), args, env);
    const code = await new Promise((ok) => {
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
      proc.child.on('exit', (code, signal) => {
        clearTimeout(timer);
        ok(signal ? `signal ${signal}` : code);
      });
    });
    return { code, output: readFileSync(proc.log, 'utf8') };
  }

  /** Prints the tail of every log to stderr (the test runner shows it with the failure). */
  dumpLogs(reason = 'a test failed') {
    process.stderr.write(`\n---- ${this.label}: ${reason}; logs of the programs under test ----\n`);
    for (const { name, log, exited } of this.procs) {
      const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
      const tail = lines.slice(-LOG_TAIL_LINES).join('\n');
      process.stderr.write(`---- ${name} (${exited ?? 'running'}), ${log} ----\n${tail}\n`);
    }
  }

  /** Stops every program: SIGTERM, then SIGKILL after a grace period. */
  async stopAll() {
    await Promise.all(this.procs.map(({ child }) => new Promise((ok) => {
      if (child.exitCode !== null || child.signalCode !== null) return ok();
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      child.once('exit', () => { clearTimeout(timer); ok(); });
      child.kill('SIGTERM');
    })));
    rmSync(this.tempDir, { recursive: true, force: true });
  }
}
