// A private six-node Redis Cluster for one test file (three masters, one replica each),
// the JavaScript twin of shared/src/testing/cluster.rs: every node is a process of the
// file's `Services` (so `stopAll()` stops it and `dumpLogs()` prints its log), in its own
// directory under the Services' temp dir with its own nodes.conf. A test can ask which
// node serves a key, crash a node, start it again as the same node, and wait for a
// failover or for the cluster to be ok. Each node is asked on its own with redis-cli, so
// a wait reports what the nodes say, not what a cluster client believes.

import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SLOTS, field, isFailing, isMaster, ownerOf, parsePeer, slotMap } from './cluster-topology.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** How many nodes: three masters, so a majority is left to fail one over, and a replica each. */
const NODES = 6;
/** A node's cluster bus listens on its port plus this (Redis's default offset). */
const BUS_OFFSET = 10_000;
/**
 * Where node ports are picked: with the bus offset added, still below the kernel's
 * ephemeral range, so no outgoing connection takes a killed node's port before its restart.
 */
const PORTS = { from: 12_000, to: 22_767 };
/** How many picked ports a node tries when its server exits at start (the port taken meanwhile). */
const START_TRIES = 5;
/** How long a node may take to answer PING after it is started, in ms. */
const START_TIMEOUT_MS = 10_000;
/** How long the cluster may take to form, fail over, or take a node back, in ms (two busy cores). */
const CLUSTER_TIMEOUT_MS = 45_000;
/** How long one redis-cli question may take: a dead node is not there yet, and the poll goes on. */
const ASK_TIMEOUT_MS = 2_000;
/** How often the cluster's state is asked while waiting: each poll runs a dozen redis-cli. */
const POLL_MS = 200;

/**
 * The flags of every node (those of cluster/node.rs): a second without a reply marks a
 * node failing (not 15 s), so a failover takes seconds; a replica's first sync starts at
 * once; nothing is persisted but nodes.conf.
 */
function nodeArgs(port, dir) {
  return [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', '1000', '--repl-diskless-sync-delay', '0',
    '--save', '', '--appendonly', 'no',
  ];
}

/** Runs `redis-cli -p port …args` and gives its output; throws when the node does not answer. */
async function ask(port, ...args) {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: ASK_TIMEOUT_MS });
  if (/^(ERR|\(error\))/.test(stdout)) throw new Error(`port ${port}: ${args.join(' ')}: ${stdout.trim()}`);
  return stdout;
}

/** Whether `port` and its bus port can both be bound now (the node binds them a moment later). */
async function bindable(port) {
  const one = (p) => new Promise((ok) => {
    const server = createServer();
    server.once('error', () => ok(false));
    server.listen(p, '127.0.0.1', () => server.close(() => ok(true)));
  });
  return (await one(port)) && (await one(port + BUS_OFFSET));
}

async function freePortPair() {
  return waitFor(`a free port pair (P, P + ${BUS_OFFSET}) in ${PORTS.from}..${PORTS.to}`, async () => {
    const port = PORTS.from + Math.floor(Math.random() * (PORTS.to - PORTS.from + 1));
    return (await bindable(port)) && port;
  }, { timeoutMs: 5_000, intervalMs: 1 });
}

/** Six nodes of one test file; nodes are numbered 0..5 and named `redis-node-<i>` in the logs. */
export class RedisCluster {
  /**
   * Starts six nodes, joins them with `redis-cli --cluster create … --cluster-replicas 1`
   * and waits until every node is ok and every master has a replica in sync.
   * @param {import('./services.js').Services} services
   */
  static async start(services, name = 'redis-cluster') {
    const cluster = new RedisCluster(services, name);
    for (let i = 0; i < NODES; i += 1) await cluster.#startNode(i);
    await cluster.#create();
    await waitFor('the new cluster to have three masters with a replica in sync each', () => cluster.#formed(),
      { timeoutMs: CLUSTER_TIMEOUT_MS, intervalMs: POLL_MS });
    return cluster;
  }

  constructor(services, name) {
    this.services = services;
    this.name = name;
    this.root = join(services.tempDir, name);
    /** @type {{ port: number, dir: string, proc: any }[]} */
    this.nodes = [];
  }

  /** Every node's URL, comma-separated, as `--redis-cluster-urls` takes them. */
  get urls() {
    return this.nodes.map(({ port }) => `redis://127.0.0.1:${port}`).join(',');
  }

  /** The port node `i` listens on (its cluster bus is on this plus 10000). */
  port(i) {
    return this.nodes[i].port;
  }

  /** The node serving `key`'s hash slot as master now, as the first live node that answers sees it. */
  async masterOf(key) {
    const slot = await this.#keyslot(key);
    const { master } = await waitFor(`a live node to name the master of ${key} (slot ${slot})`, async () => {
      const { peers } = await this.#askAny();
      const master = this.#indexOf(ownerOf(peers, slot)?.port);
      return master !== undefined && { master };
    }, { timeoutMs: ASK_TIMEOUT_MS * 2, intervalMs: POLL_MS });
    return master;
  }

  /** Crashes node `i` (SIGKILL) and resolves once its process is gone. */
  async kill(i) {
    await this.services.kill(this.#procName(i));
  }

  /**
   * Starts node `i` again on its port and directory, so it reads its nodes.conf and
   * rejoins as the same node (a replica, if it was failed over); waits until every live
   * node is ok with it and, as a replica, it is in sync. Its log goes on in the same file.
   */
  async restart(i) {
    const node = this.nodes[i];
    if (!node.proc.exited) await this.kill(i);
    node.proc = this.services.spawn(node.proc.name, 'redis-server', nodeArgs(node.port, node.dir), {},
      { append: true });
    const state = await this.#answered(node);
    if (state !== 'up') throw new Error(`redis-server on port ${node.port} ${node.proc.exited}; see ${node.proc.log}`);
    await waitFor(`restarted node ${i} (port ${node.port}) to rejoin the cluster`, () => this.#rejoined(i),
      { timeoutMs: CLUSTER_TIMEOUT_MS, intervalMs: POLL_MS });
  }

  /** Waits until a live node other than `oldMaster` serves `key` and the cluster is ok; gives that node. */
  async waitForFailover(key, oldMaster) {
    const slot = await this.#keyslot(key);
    const { owner } = await waitFor(`a node other than ${oldMaster} to serve ${key} (slot ${slot}), the cluster ok`,
      async () => {
        const owner = this.#indexOf(ownerOf(await this.#agreed(), slot)?.port);
        if (owner === oldMaster) throw new Error(`node ${oldMaster} still serves it`);
        return { owner };
      }, { timeoutMs: CLUSTER_TIMEOUT_MS, intervalMs: POLL_MS });
    return owner;
  }

  /** Waits until every live node says cluster_state:ok, all agree on the slots, and all see each other up. */
  async waitOk() {
    await waitFor('every live cluster node to be ok and agree', () => this.#agreed(),
      { timeoutMs: CLUSTER_TIMEOUT_MS, intervalMs: POLL_MS });
  }

  #procName(i) {
    return `redis-node-${i}`;
  }

  #live() {
    return this.nodes.map((node, i) => [node, i]).filter(([node]) => !node.proc.exited).map(([, i]) => i);
  }

  #indexOf(port) {
    const i = this.nodes.findIndex((node) => node.port === port);
    return i < 0 ? undefined : i;
  }

  /** Starts node `i` on a port pair picked afresh until a start works. */
  async #startNode(i) {
    const dir = join(this.root, `node-${i}`);
    mkdirSync(dir, { recursive: true });
    for (let attempt = 1; attempt <= START_TRIES; attempt += 1) {
      const port = await freePortPair();
      const proc = this.services.spawn(this.#procName(i), 'redis-server', nodeArgs(port, dir), {},
        { append: attempt > 1 });
      const node = { port, dir, proc };
      if ((await this.#answered(node)) === 'up') {
        this.nodes[i] = node;
        return;
      }
    }
    throw new Error(`cluster node ${i} did not start in ${START_TRIES} tries; see ${join(this.services.logDir, `${this.#procName(i)}.log`)}`);
  }

  /** 'up' once the node answers PING, 'exited' if its process ended first. */
  async #answered({ port, proc }) {
    return waitFor(`redis-server on port ${port} to answer PING`, async () => {
      if (proc.exited) return 'exited';
      return (await ask(port, 'PING')).trim() === 'PONG' && 'up';
    }, { timeoutMs: START_TIMEOUT_MS });
  }

  async #create() {
    const addresses = this.nodes.map(({ port }) => `127.0.0.1:${port}`);
    const args = ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'];
    const log = join(this.services.logDir, `${this.name}-create.log`);
    try {
      const { stdout, stderr } = await run('redis-cli', args, { timeout: CLUSTER_TIMEOUT_MS });
      writeFileSync(log, stdout + stderr);
    } catch (err) {
      writeFileSync(log, `${err.stdout ?? ''}${err.stderr ?? ''}`);
      throw new Error(`redis-cli ${args.join(' ')} failed (${err.message}); see ${log}`);
    }
  }

  async #keyslot(key) {
    const { slot } = await waitFor(`a live node to answer CLUSTER KEYSLOT ${key}`, async () => {
      for (const i of this.#live()) {
        try {
          return { slot: Number(await ask(this.port(i), 'CLUSTER', 'KEYSLOT', key)) };
        } catch { /* try the next live node */ }
      }
      throw new Error('no live node answered');
    }, { timeoutMs: ASK_TIMEOUT_MS * 2, intervalMs: POLL_MS });
    return slot;
  }

  /** Node `i`'s CLUSTER INFO and CLUSTER NODES. */
  async #ask(i) {
    const port = this.port(i);
    const [info, nodes] = await Promise.all([ask(port, 'CLUSTER', 'INFO'), ask(port, 'CLUSTER', 'NODES')]);
    return { info, peers: nodes.split('\n').map(parsePeer).filter(Boolean) };
  }

  async #askAny() {
    for (const i of this.#live()) {
      try {
        return await this.#ask(i);
      } catch { /* try the next live node */ }
    }
    throw new Error('no live node answered CLUSTER NODES');
  }

  /**
   * The peers as every live node agrees on them: each says cluster_state:ok with all
   * slots served, all have the same slot map, every slot owner is live, and none holds
   * a live node failing. Throws saying what is not so yet.
   */
  async #agreed() {
    const live = this.#live();
    let first = null;
    for (const i of live) {
      const { info, peers } = await this.#ask(i);
      if (field(info, 'cluster_state') !== 'ok' || Number(field(info, 'cluster_slots_ok')) !== SLOTS) {
        throw new Error(`node ${i} says cluster_state:${field(info, 'cluster_state')}, slots ok ${field(info, 'cluster_slots_ok')}`);
      }
      for (const owner of peers.filter((p) => isMaster(p) && p.slots.length)) {
        const o = this.#indexOf(owner.port);
        if (!live.includes(o)) throw new Error(`node ${i} has node ${o} (port ${owner.port}), not live, serving slots`);
      }
      for (const j of live) {
        const peer = peers.find((p) => p.port === this.port(j));
        if (!peer || isFailing(peer)) throw new Error(`node ${i} does not see node ${j} up`);
      }
      if (first && slotMap(first).join() !== slotMap(peers).join()) throw new Error(`node ${i} disagrees on the slots`);
      first ??= peers;
    }
    if (!first) throw new Error('no live node');
    return first;
  }

  /** Whether replica `i` has finished its sync with its master, by its own account. */
  async #inSync(i) {
    try {
      return field(await ask(this.port(i), 'INFO', 'replication'), 'master_link_status') === 'up';
    } catch {
      return false;
    }
  }

  /** A live replica of the master with this id, its link up and in sync. */
  async #syncedReplica(peers, id) {
    for (const peer of peers.filter((p) => p.master === id && p.connected && !isFailing(p))) {
      const i = this.#indexOf(peer.port);
      if (i !== undefined && !this.nodes[i].proc.exited && (await this.#inSync(i))) return i;
    }
    throw new Error(`no replica of ${id} in sync`);
  }

  async #formed() {
    const peers = await this.#agreed();
    for (const master of peers.filter((p) => isMaster(p) && p.slots.length)) {
      await this.#syncedReplica(peers, master.id);
    }
    return true;
  }

  async #rejoined(i) {
    const peers = await this.#agreed();
    const me = peers.find((p) => p.port === this.port(i));
    if (!me) throw new Error(`node ${i} is not in the view`);
    if (me.master && !(await this.#inSync(i))) throw new Error(`node ${i} is not in sync yet`);
    return true;
  }
}
