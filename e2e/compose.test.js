// docker-compose.yml checked without a Docker engine (issue 5): every service runs as the
// real binary with exactly the environment, command and ports the file gives it, service
// hostnames mapped to 127.0.0.1 and container ports to free local ports. A batch sent through
// the producer must reach a WebSocket client of every consumer, each task exactly once, so a
// wrong variable name, port or route in the compose file fails the build.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assignPorts, envNamesFromHelp, localLaunch, readCompose, rewriteUrl, startOrder } from './lib/compose.js';
import { ROOT, binary, freePort } from './lib/services.js';
import { DashboardSocket, duplicates } from './lib/socket.js';
import { followBatch } from './lib/sse.js';
import { useServices } from './lib/stack.js';
import { getJson } from './lib/wait.js';

const COMPOSE_FILE = process.env.E2E_COMPOSE_FILE ?? join(ROOT, 'docker-compose.yml');
const EXAMPLE_ENV = join(ROOT, '.env.example');
/** Tasks in the batch sent through the compose services. */
const BATCH_SIZE = 25;
/** Read by the programs' logging set-up rather than by clap, so absent from --help. */
const LOGGING_VARS = new Set(['RUST_LOG', 'RUST_BACKTRACE', 'LOG_FORMAT']);

function readPlan() {
  assert.ok(existsSync(COMPOSE_FILE), `${COMPOSE_FILE} is missing`);
  return readCompose(COMPOSE_FILE, EXAMPLE_ENV);
}

const ctx = useServices('compose', {
  async start(services) {
    const compose = readPlan();
    const ports = await assignPorts(compose, freePort);
    const context = { compose, ports };
    const running = {};
    for (const s of startOrder(compose)) {
      if (s.kind === 'redis') {
        await services.startRedis(s.name, { port: ports.local[s.name][s.listens[0]] });
        running[s.name] = { kind: 'redis' };
        continue;
      }
      const launch = localLaunch(s, context);
      await services.startBinary(s.name, { bin: s.program, ...launch });
      running[s.name] = { kind: s.program, ...launch };
    }
    const sockets = {};
    for (const [name, s] of Object.entries(running)) {
      if (s.kind === 'consumer') sockets[name] = await DashboardSocket.connect(s.baseUrl);
    }
    return { compose, ports, context, running, sockets };
  },
  async stop({ sockets = {} }) {
    Object.values(sockets).forEach((socket) => socket.close());
  },
});

test('the compose file has a redis, a consumer and a producer service', () => {
  const kinds = Object.values(ctx.compose.services).map((s) => s.kind);
  for (const kind of ['redis', 'consumer', 'producer']) {
    assert.ok(kinds.includes(kind), `no service runs ${kind} (services: ${Object.keys(ctx.compose.services).join(', ')})`);
  }
});

test('every variable the compose file sets is one the program reads', () => {
  for (const s of Object.values(ctx.compose.services)) {
    if (s.kind === 'redis') continue;
    const help = spawnSync(binary(s.program), ['--help'], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(help.status, 0, `${s.program} --help failed: ${help.stderr}`);
    const known = envNamesFromHelp(help.stdout);
    const unknown = Object.keys(s.env).filter((name) => !known.has(name) && !LOGGING_VARS.has(name));
    assert.deepEqual(unknown, [], `service ${s.name} sets ${unknown.join(', ')}, which ${s.program} does not read ` +
      `(it reads ${[...known, ...LOGGING_VARS].join(', ')})`);
  }
});

test('every healthcheck URL answers 200', async () => {
  for (const s of Object.values(ctx.compose.services)) {
    const check = s.service.healthcheck?.test;
    if (s.kind === 'redis' || !check) continue;
    const urls = (Array.isArray(check) ? check : [check]).join(' ').match(/https?:\/\/\S+/g) ?? [];
    for (const url of urls) {
      const local = rewriteUrl(url, { ...ctx.context, self: s.name, variable: 'healthcheck' });
      const response = await fetch(local);
      assert.equal(response.status, 200, `service ${s.name}: healthcheck ${url} (here ${local}) answered ${response.status}`);
    }
  }
});

test(`a batch sent through the producer reaches every consumer's WebSocket, each task once`, async () => {
  const producers = Object.entries(ctx.running).filter(([, s]) => s.kind === 'producer');
  let sent = 0;
  for (const [name, producer] of producers) {
    const response = await fetch(`${producer.baseUrl}/producetasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ min: BATCH_SIZE, max: BATCH_SIZE, pace_ms: 0 }),
    });
    const text = await response.text();
    assert.equal(response.status, 202, `POST /producetasks on ${name} answered ${response.status}: ${text}`);
    const { batchid, total, events_url: eventsUrl } = JSON.parse(text);
    assert.equal(total, BATCH_SIZE);
    sent += total;

    // The producer's own account first: a wrong target URL, route or secret shows up here.
    const { done, failures } = await followBatch(new URL(eventsUrl, producer.baseUrl).href);
    const first = failures[0];
    assert.equal(done.delivered, BATCH_SIZE, `${name} delivered ${done.delivered} of ${BATCH_SIZE} tasks to ` +
      `${producer.env.WEBHOOK_RECEIVER_URL ?? 'its default target'}` +
      (first ? `; first failure: status ${first.status}, ${first.error}` : ''));

    for (const [consumer, socket] of Object.entries(ctx.sockets)) {
      const events = await socket.waitForBatch(batchid, BATCH_SIZE);
      assert.equal(events.length, BATCH_SIZE, `${consumer}'s dashboard got each task of ${name}'s batch once`);
      assert.deepEqual(duplicates(events), [], `${consumer}'s dashboard got no task twice`);
      const ids = events.map((e) => e.task.id).sort((a, b) => a - b);
      assert.equal(new Set(ids).size, BATCH_SIZE);
      const stats = await getJson(`${ctx.running[consumer].baseUrl}/api/stats`);
      assert.equal(stats.total, sent, `${consumer}'s /api/stats counts the batch`);
    }
  }
});
