// The rules compose.test.js applies to docker-compose.yml, checked on small broken files:
// each mistake it exists to catch must fail with a message that names the fix.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ComposeError, assignPorts, interpolate, localLaunch, readCompose, startOrder } from './lib/compose.js';

const dir = mkdtempSync(join(tmpdir(), 'taskhooks-compose-rules-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let ports = 40000;
const fakePort = async () => ports++;

const GOOD = {
  redis: 'image: redis:7-alpine',
  consumer: `command: ["consumer"]
    environment:
      BIND: 0.0.0.0:5001
      REDIS_URL: redis://redis:6379
      WEBHOOK_SECRET: \${WEBHOOK_SECRET:-whsec_c2VjcmV0}
      PRODUCER_URL: http://localhost:5000
    ports: ["5001:5001"]
    depends_on: [redis]`,
  producer: `command: producer
    environment:
      - BIND=0.0.0.0:5000
      - WEBHOOK_RECEIVER_URL=http://consumer:5001/consumetasks
      - WEBHOOK_SECRET=\${WEBHOOK_SECRET:-whsec_c2VjcmV0}
      - DASHBOARD_URL=http://localhost:5001
    ports: ["5000:5000"]
    depends_on: {consumer: {condition: service_healthy}}`,
};

/** Writes a compose file from GOOD with some services replaced, and plans it. */
async function plan(overrides = {}) {
  const services = { ...GOOD, ...overrides };
  const text = `services:\n${Object.entries(services).map(([name, body]) => `  ${name}:\n    ${body}`).join('\n')}\n`;
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(path, text);
  const compose = readCompose(path);
  const context = { compose, ports: await assignPorts(compose, fakePort) };
  return startOrder(compose).map((s) => ({ s, launch: s.kind === 'redis' ? null : localLaunch(s, context) }));
}

async function rejects(overrides, pattern) {
  await assert.rejects(plan(overrides), (err) => {
    assert.ok(err instanceof ComposeError, `a ComposeError, got ${err}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('interpolation follows compose: defaults, $$, required variables', () => {
  assert.equal(interpolate('${A:-x}/${B-y}/$$C', {}, 'here'), 'x/y/$C');
  assert.equal(interpolate('${A:-x}', { A: '' }, 'here'), 'x');
  assert.equal(interpolate('${A-x}', { A: '' }, 'here'), '');
  assert.throws(() => interpolate('${A:?set it}', {}, 'here'), /A.*set it/);
  assert.throws(() => interpolate('${A}', {}, 'here'), /no default/);
});

test('a good file starts dependencies first and rewrites only addresses', async () => {
  const [redis, consumer, producer] = await plan();
  assert.deepEqual([redis.s.name, consumer.s.name, producer.s.name], ['redis', 'consumer', 'producer']);
  const consumerPort = consumer.launch.env.BIND.split(':')[1];
  assert.equal(producer.launch.env.WEBHOOK_RECEIVER_URL, `http://127.0.0.1:${consumerPort}/consumetasks`);
  assert.equal(producer.launch.env.DASHBOARD_URL, `http://127.0.0.1:${consumerPort}`);
  assert.equal(consumer.launch.env.PRODUCER_URL, producer.launch.baseUrl);
  assert.match(consumer.launch.env.REDIS_URL, /^redis:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(producer.launch.env.WEBHOOK_SECRET, 'whsec_c2VjcmV0');
});

test('a URL naming a port the service does not listen on fails', async () => {
  await rejects({ producer: GOOD.producer.replace('consumer:5001', 'consumer:5000') },
    /WEBHOOK_RECEIVER_URL.*consumer does not listen on port 5000.*5001/);
});

test('a URL naming a host that is not a service fails', async () => {
  await rejects({ producer: GOOD.producer.replace('consumer:5001', 'consumers:5001') },
    /consumers is not a service/);
});

test('localhost in a server-side URL is the container itself', async () => {
  await rejects({ producer: GOOD.producer.replace('consumer:5001', 'localhost:5001') },
    /producer does not listen on port 5001/);
});

test('BIND and the published container port must agree', async () => {
  await rejects({ consumer: GOOD.consumer.replace('"5001:5001"', '"5001:8080"') },
    /ports maps 5001:8080, but it listens on 5001/);
});

test('a program bound to 127.0.0.1 inside its container fails', async () => {
  await rejects({ consumer: GOOD.consumer.replace('BIND: 0.0.0.0:5001', 'BIND: 127.0.0.1:5001') },
    /must bind 0\.0\.0\.0/);
  await rejects({ consumer: GOOD.consumer.replace('BIND: 0.0.0.0:5001', 'LISTEN: 0.0.0.0:5001') },
    /BIND|default/);
});

test('a browser-facing URL must name a published host port', async () => {
  await rejects({ consumer: GOOD.consumer.replace('localhost:5000', 'localhost:8000') },
    /PRODUCER_URL.*no service publishes/);
});

test('a command that is not one of the programs fails', async () => {
  await rejects({ producer: GOOD.producer.replace('command: producer', 'command: ["/bin/sh"]') },
    /does not start consumer or producer/);
});
