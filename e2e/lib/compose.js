// Reads docker-compose.yml and turns it into a plan for running the same services on this
// machine without a Docker engine: each service's environment, command and ports exactly as
// the file gives them, with only the addresses rewritten — service hostnames become
// 127.0.0.1 and every container port a free local port. Anything that would not work inside
// compose (a URL naming a port nobody listens on, a BIND port that differs from the
// published one) is an error that says what to fix.

import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parse } from 'yaml';

/** Variables whose URLs are opened by a browser on the host, not by the program itself. */
export const BROWSER_FACING = new Set(['PRODUCER_URL', 'DASHBOARD_URL']);
/** Where each of our programs listens when BIND is not set (their clap defaults). */
const DEFAULT_BIND = { consumer: '127.0.0.1:5001', producer: '127.0.0.1:5000' };
const REDIS_PORT = 6379;

/** A problem in the compose file; the message says what to fix. */
export class ComposeError extends Error {}

/** Reads `KEY=value` lines (comments and blanks skipped), as compose reads a .env file. */
export function parseDotenv(text) {
  const vars = {};
  for (const line of text.split('\n')) {
    const match = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/);
    if (!match) continue;
    vars[match[1]] = match[2].replace(/^(['"])(.*)\1$/, '$2');
  }
  return vars;
}

/**
 * Compose interpolation of one string: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`.
 * `vars` holds what is set; as on a fresh checkout, that is usually nothing.
 */
export function interpolate(text, vars, where) {
  return text.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (whole, dollar, name, op, arg, bare) => {
      if (dollar === '$') return '$';
      const key = name ?? bare;
      const set = Object.hasOwn(vars, key);
      const value = set ? vars[key] : undefined;
      const present = op?.startsWith(':') ? Boolean(value) : set;
      switch (op?.replace(':', '')) {
        case '-': return present ? value : arg;
        case '+': return present ? arg : '';
        case '?':
          if (!present) throw new ComposeError(`${where}: \${${key}} must be set (${arg || 'required'})`);
          return value;
        default:
          if (!set) throw new ComposeError(`${where}: \${${key}} has no default and is not set; give it one (\${${key}:-…})`);
          return value;
      }
    });
}

/** Interpolates every string in a parsed YAML value. */
function interpolateAll(value, vars, where) {
  if (typeof value === 'string') return interpolate(value, vars, where);
  if (Array.isArray(value)) return value.map((v, i) => interpolateAll(v, vars, `${where}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, vars, `${where}.${k}`)]));
  }
  return value;
}

/** `environment:` as a map, from either the map or the `- KEY=value` list form. */
function environmentOf(service) {
  const env = service.environment ?? {};
  const entries = Array.isArray(env)
    ? env.map((line) => { const i = line.indexOf('='); return i < 0 ? [line, undefined] : [line.slice(0, i), line.slice(i + 1)]; })
    : Object.entries(env);
  return Object.fromEntries(entries.map(([k, v]) => [k, v === null || v === undefined ? undefined : String(v)]));
}

/** A command or entrypoint as an argument list (the string form is split on spaces). */
function argv(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value.map(String) : String(value).trim().split(/\s+/);
}

/** `ports:` as `{ published, target }` pairs, from short or long syntax. */
function portsOf(name, service) {
  return (service.ports ?? []).map((spec) => {
    if (typeof spec === 'object') return { published: Number(spec.published), target: Number(spec.target) };
    const parts = String(spec).replace(/\/(tcp|udp)$/, '').split(':');
    if (parts.length < 2) {
      throw new ComposeError(`service ${name}: port "${spec}" publishes a random host port; give host:container (e.g. "5001:5001")`);
    }
    return { published: Number(parts.at(-2)), target: Number(parts.at(-1)) };
  });
}

/** The address a program binds: its BIND, else its --bind argument, else its default. */
function bindOf(program, env, args) {
  const flag = args.indexOf('--bind');
  if (flag >= 0) return { value: args[flag + 1], from: '--bind' };
  const inline = args.find((a) => a.startsWith('--bind='));
  if (inline) return { value: inline.slice('--bind='.length), from: '--bind' };
  if (env.BIND !== undefined) return { value: env.BIND, from: 'BIND' };
  return { value: DEFAULT_BIND[program], from: 'the default' };
}

/**
 * Reads the compose file into a plan: one entry per service with its kind ("redis" or
 * one of our programs), environment, arguments, ports, and the container ports it listens on.
 * @param {string} path  docker-compose.yml
 * @param {string} [exampleEnvPath]  .env.example, used only for variables that have no default
 */
export function readCompose(path, exampleEnvPath) {
  const doc = parse(readFileSync(path, 'utf8'));
  if (!doc?.services || typeof doc.services !== 'object') throw new ComposeError(`${path} has no services:`);
  const example = exampleEnvPath && existsSync(exampleEnvPath) ? parseDotenv(readFileSync(exampleEnvPath, 'utf8')) : {};
  const services = {};
  for (const [name, raw] of Object.entries(doc.services)) {
    let service;
    try {
      service = interpolateAll(raw, {}, `service ${name}`);
    } catch (err) {
      if (!(err instanceof ComposeError)) throw err;
      // A variable with no default: a user would copy .env.example to .env first.
      service = interpolateAll(raw, example, `service ${name} (with .env.example)`);
    }
    services[name] = planService(name, service);
  }
  return { path, services, raw: doc };
}

function planService(name, service) {
  const ports = portsOf(name, service);
  const env = environmentOf(service);
  const dependsOn = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
  if (/(^|\/)redis(:|$)/.test(service.image ?? '')) {
    const args = argv(service.command);
    const portFlag = args.indexOf('--port');
    const listens = [portFlag >= 0 ? Number(args[portFlag + 1]) : REDIS_PORT];
    return { name, kind: 'redis', env, args, ports, listens, dependsOn, service };
  }
  const full = [...argv(service.entrypoint), ...argv(service.command)];
  const program = basename(full[0] ?? '');
  if (!(program in DEFAULT_BIND)) {
    throw new ComposeError(`service ${name}: its command ${JSON.stringify(full)} does not start consumer or producer; ` +
      'give it command: ["consumer"] or ["producer"] (the binaries in the image)');
  }
  const args = full.slice(1);
  const bind = bindOf(program, env, args);
  const match = bind.value?.match(/^(.*):(\d+)$/);
  if (!match) throw new ComposeError(`service ${name}: ${bind.from} is "${bind.value}", not host:port`);
  const [, host, port] = match;
  if (!['0.0.0.0', '[::]', '::'].includes(host)) {
    throw new ComposeError(`service ${name}: ${bind.from} is ${bind.value}; inside a container it must bind 0.0.0.0 ` +
      '(127.0.0.1 is unreachable from other containers and from the host)');
  }
  return { name, kind: program, program, env, args, ports, listens: [Number(port)], bind, dependsOn, service };
}

/**
 * Checks what compose would check when the containers talk to each other, and assigns a
 * free local port to every port a service listens on.
 * @param {{ services: Record<string, any> }} compose
 * @param {() => Promise<number>} freePort
 */
export async function assignPorts(compose, freePort) {
  const local = {}; // service -> container port -> local port
  const hostPorts = {}; // published host port -> { service, target }
  for (const s of Object.values(compose.services)) {
    local[s.name] = {};
    for (const port of s.listens) local[s.name][port] = await freePort();
    for (const { published, target } of s.ports) {
      if (!s.listens.includes(target)) {
        throw new ComposeError(`service ${s.name}: ports maps ${published}:${target}, but it listens on ` +
          `${s.listens.join(', ')} (${s.bind ? `${s.bind.from} ${s.bind.value}` : 'its default'}); make them agree`);
      }
      if (hostPorts[published]) {
        throw new ComposeError(`host port ${published} is published by both ${hostPorts[published].service} and ${s.name}`);
      }
      hostPorts[published] = { service: s.name, target };
    }
  }
  for (const s of Object.values(compose.services)) {
    for (const dep of s.dependsOn) {
      if (!compose.services[dep]) throw new ComposeError(`service ${s.name} depends_on ${dep}, which is not a service`);
    }
  }
  return { local, hostPorts };
}

/**
 * Rewrites one URL's authority the way the network inside compose would resolve it:
 * `<service>:<port>` must be a port that service listens on; `localhost:<port>` is the
 * service itself, or, for a browser-facing variable, a port published on the host.
 */
export function rewriteUrl(url, { self, variable, compose, ports }) {
  const match = url.match(/^([a-z][a-z0-9+.-]*):\/\/([^/@]*@)?([^/:?#@]+)(?::(\d+))?(.*)$/i);
  if (!match) return url;
  const [, scheme, userinfo = '', host, portText, rest] = match;
  const defaultPort = { http: 80, https: 443, redis: REDIS_PORT, ws: 80 }[scheme.toLowerCase()];
  const port = portText ? Number(portText) : defaultPort;
  const where = `service ${self}: ${variable}=${url}`;
  let target;
  if (host === 'localhost' || host === '127.0.0.1') {
    if (BROWSER_FACING.has(variable)) {
      target = ports.hostPorts[port];
      if (!target) {
        throw new ComposeError(`${where}: a browser on the host opens port ${port}, but no service publishes it ` +
          `(published: ${Object.keys(ports.hostPorts).join(', ') || 'none'})`);
      }
    } else {
      target = { service: self, target: port };
    }
  } else if (compose.services[host]) {
    target = { service: host, target: port };
  } else {
    throw new ComposeError(`${where}: ${host} is not a service in the compose file (services: ` +
      `${Object.keys(compose.services).join(', ')})`);
  }
  const listening = ports.local[target.service]?.[target.target];
  if (!listening) {
    throw new ComposeError(`${where}: ${target.service} does not listen on port ${target.target} ` +
      `(it listens on ${compose.services[target.service].listens.join(', ')})`);
  }
  return `${scheme}://${userinfo}127.0.0.1:${listening}${rest}`;
}

/**
 * The environment and arguments to run service `s` with locally: the file's own, with
 * BIND (or --bind) and every URL rewritten to local addresses, and nothing else changed.
 */
export function localLaunch(s, context) {
  const env = {};
  for (const [key, value] of Object.entries(s.env)) {
    if (value === undefined) continue; // `- KEY` passes the host's value through; here it is unset
    env[key] = key === 'BIND' ? `127.0.0.1:${context.ports.local[s.name][s.listens[0]]}`
      : rewriteUrl(value, { ...context, self: s.name, variable: key });
  }
  const args = s.args.map((arg, i) => {
    if (s.args[i - 1] === '--bind') return `127.0.0.1:${context.ports.local[s.name][s.listens[0]]}`;
    if (arg.startsWith('--bind=')) return `--bind=127.0.0.1:${context.ports.local[s.name][s.listens[0]]}`;
    const flag = s.args[i - 1]?.replace(/^--/, '').toUpperCase().replaceAll('-', '_') ?? '';
    return rewriteUrl(arg, { ...context, self: s.name, variable: flag });
  });
  return { env, args, baseUrl: `http://127.0.0.1:${context.ports.local[s.name][s.listens[0]]}` };
}

/** Services in an order that starts every dependency first. */
export function startOrder(compose) {
  const order = [];
  const visiting = new Set();
  const visit = (name) => {
    if (order.includes(name)) return;
    if (visiting.has(name)) throw new ComposeError(`depends_on has a cycle through ${name}`);
    visiting.add(name);
    compose.services[name].dependsOn.forEach(visit);
    order.push(name);
  };
  Object.keys(compose.services).forEach(visit);
  return order.map((name) => compose.services[name]);
}

/** The environment variable names a binary reads, from its `--help` (`[env: NAME=…]`). */
export function envNamesFromHelp(helpText) {
  return new Set([...helpText.matchAll(/\[env: ([A-Z0-9_]+)/g)].map((m) => m[1]));
}
