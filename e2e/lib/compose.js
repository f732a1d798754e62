// Driving the real `docker compose` stack that scripts/compose-test started: the Compose
// binary and Podman it exported in the environment (COMPOSE_BIN, COMPOSE_PROJECT_NAME,
// COMPOSE_FILE, DOCKER_HOST, CONTAINERS_CONF), and the pages on the published ports.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { getJson, waitFor } from './wait.js';

const run = promisify(execFile);

/** The published ports, on the loopback address docker-compose.yml publishes on by default. */
export const PRODUCER_URL = 'http://127.0.0.1:5000';
export const DASHBOARD_URL = 'http://127.0.0.1:5001';

/** Fails with what to do when the test is run outside scripts/compose-test. */
export function requireComposeStack() {
  for (const name of ['COMPOSE_BIN', 'COMPOSE_PROJECT_NAME', 'DOCKER_HOST']) {
    if (!process.env[name]) {
      throw new Error(`${name} is not set: this test drives the stack scripts/compose-test starts; run scripts/compose-test`);
    }
  }
}

async function command(file, args) {
  try {
    const { stdout } = await run(file, args, { timeout: 120_000, maxBuffer: 16 << 20 });
    return stdout.trim();
  } catch (err) {
    throw new Error(`${file} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** Runs `docker compose ARGS...` on the test's project; returns its stdout. */
export function compose(...args) {
  return command(process.env.COMPOSE_BIN, args);
}

/** The names of the running containers of `service`, sorted (e.g. …-consumer-1, …-consumer-2). */
export async function containersOf(service) {
  const out = await command('podman', ['ps', '--format', '{{.Names}}',
    '--filter', `label=com.docker.compose.project=${process.env.COMPOSE_PROJECT_NAME}`,
    '--filter', `label=com.docker.compose.service=${service}`]);
  return out.split('\n').filter(Boolean).sort();
}

/** Kills one container with SIGKILL, as a crash would. */
export function killContainer(name) {
  return command('podman', ['kill', '--signal', 'KILL', name]);
}

/** Waits until `count` containers of `service` run and every one of them is healthy. */
export async function waitHealthy(service, count, { timeoutMs = 60_000 } = {}) {
  await waitFor(`${count} healthy ${service} container(s)`, async () => {
    const names = await containersOf(service);
    if (names.length !== count) return false;
    const states = await Promise.all(names.map((name) =>
      command('podman', ['inspect', '--format', '{{.State.Health.Status}}', name])));
    return states.every((state) => state === 'healthy');
  }, { timeoutMs, intervalMs: 500 });
}

/** The consumers' totals through the load balancer: `{ total, totals: { Low, … } }`. */
export function stats() {
  return getJson(`${DASHBOARD_URL}/api/stats`);
}

/** Waits until the totals reach `total` (some of a batch has been counted). */
export function waitForTotal(total, { timeoutMs = 30_000 } = {}) {
  return waitFor(`a total of at least ${total}`, async () => (await stats()).total >= total,
    { timeoutMs, intervalMs: 100 });
}
