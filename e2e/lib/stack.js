// The whole system as the demo runs it: Redis, the consumer and the producer on free
// ports sharing a fresh secret, with node:test hooks that print the programs' logs when a
// test fails and stop everything afterwards, pass or fail.

import { after, afterEach, before } from 'node:test';
import { VIEWPORT, launchBrowser } from './browser.js';
import { Services, freePort } from './services.js';
import { newSecret } from './signing.js';

/**
 * Starts the consumer (and, unless `producer: false`, the producer) with their own Redis.
 * `env` is added to both programs' environment (LOG_FORMAT, RUST_LOG, …). With
 * `durableProducer`, the producer keeps its outbox in the same Redis. With `redis:
 * 'cluster'` that Redis is a private six-node Redis Cluster (`--redis-cluster-urls`),
 * returned as `cluster`; else one redis-server (`--redis-url`), returned as `redisUrl`.
 * @param {Services} services
 */
export async function startStack(services, { producer = true, env = {}, durableProducer = false, redis = 'single' } = {}) {
  const secret = newSecret();
  const { redisUrl, cluster, redisArgs } = await startRedis(services, redis);
  const consumerPort = await freePort();
  let producerPort = await freePort();
  // The kernel may hand out the port it just freed again; two programs need two.
  while (producerPort === consumerPort) producerPort = await freePort();
  const consumerUrl = `http://127.0.0.1:${consumerPort}`;
  const producerUrl = `http://127.0.0.1:${producerPort}`;
  await services.startBinary('consumer', {
    bin: 'consumer',
    baseUrl: consumerUrl,
    args: ['--bind', `127.0.0.1:${consumerPort}`, ...redisArgs, '--producer-url', producerUrl],
    env: { ...env, WEBHOOK_SECRET: secret },
  });
  if (producer) {
    await services.startBinary('producer', {
      bin: 'producer',
      baseUrl: producerUrl,
      args: [
        '--bind', `127.0.0.1:${producerPort}`,
        '--target', `${consumerUrl}/consumetasks`,
        '--dashboard-url', consumerUrl,
        ...(durableProducer ? redisArgs : []),
      ],
      env: { ...env, WEBHOOK_SECRET: secret },
    });
  }
  return { secret, redisUrl, cluster, consumerUrl, producerUrl };
}

/** The Redis of `startStack` (`'single'` or `'cluster'`) and the flags that name it to both programs. */
async function startRedis(services, redis) {
  if (redis === 'cluster') {
    const cluster = await services.startRedisCluster();
    return { cluster, redisArgs: ['--redis-cluster-urls', cluster.urls] };
  }
  if (redis !== 'single') throw new Error(`startStack: redis must be 'single' or 'cluster', got '${redis}'`);
  const redisUrl = await services.startRedis();
  return { redisUrl, redisArgs: ['--redis-url', redisUrl] };
}

/**
 * Registers before/afterEach/after hooks for one test file and returns an object that
 * `start` fills in before the first test. `start(services)` starts whatever the file needs;
 * `stop(ctx)` closes what `start` opened that `Services` does not know (a browser, say).
 * `nice` runs every program at that niceness (see `Services`).
 * When start-up or any test fails, the programs' logs are printed once, before they stop.
 */
export function useServices(label, { start, stop = async () => {}, nice = 0 }) {
  const services = new Services(label, { nice });
  const ctx = { services };
  const failures = [];
  before(async () => {
    try {
      Object.assign(ctx, await start(services));
    } catch (err) {
      failures.push(`start-up (${err.message})`);
      throw err;
    }
  });
  afterEach((t) => {
    if (!t.passed) failures.push(`"${t.name}"`);
  });
  after(async () => {
    try {
      if (failures.length) services.dumpLogs(`failed: ${failures.join(', ')}`);
      await stop(ctx);
    } finally {
      await services.stopAll();
    }
  });
  return ctx;
}

/**
 * `useServices` for what most browser tests need: the stack of `startStack(services,
 * stack)` and headless Chromium with one context of the standard viewport, closed after
 * the file's tests. The returned object gets the stack's fields, `browser` and `context`.
 */
export function useBrowserStack(label, { stack = {}, nice = 0 } = {}) {
  return useServices(label, {
    nice,
    async start(services) {
      const started = await startStack(services, stack);
      const browser = await launchBrowser();
      return { ...started, browser, context: await browser.newContext({ viewport: VIEWPORT }) };
    },
    async stop({ browser }) {
      await browser?.close();
    },
  });
}
