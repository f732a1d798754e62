// `docker compose up --build` for real (issue 9): scripts/compose-test builds the image,
// starts docker-compose.yml (Redis, two consumer replicas behind nginx, the producer) and
// runs this file, which uses the published ports only. Not part of scripts/e2e's default
// run: it needs the stack, and fails saying so without it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { VIEWPORT, launchBrowser, openPage } from './lib/browser.js';
import {
  DASHBOARD_URL, PRODUCER_URL, compose, containersOf, killContainer, requireComposeStack, stats,
  waitForTotal, waitHealthy,
} from './lib/compose.js';
import { waitForChart, waitForConnected } from './lib/dashboard.js';
import { clickProduceTasks } from './lib/producer.js';
import { PRIORITIES } from './lib/socket.js';
import { getJson, waitFor } from './lib/wait.js';

/** Consumer replicas docker-compose.yml runs (deploy.replicas). */
const REPLICAS = 2;
/** Dashboards open at once, each in its own browser context, spread over the replicas by nginx. */
const DASHBOARDS = 3;
/** How long a batch may take, retries through an outage included, in ms. */
const BATCH_TIMEOUT_MS = 120_000;
/** How long a dashboard may take to show the totals, a reconnection included, in ms. */
const CHART_TIMEOUT_MS = 30_000;

let browser;
let producer;
let dashboards = [];

before(async () => {
  requireComposeStack();
  browser = await launchBrowser();
  producer = await openPage(await browser.newContext({ viewport: VIEWPORT }));
  await producer.goto(PRODUCER_URL);
  for (let i = 0; i < DASHBOARDS; i += 1) {
    const page = await openPage(await browser.newContext({ viewport: VIEWPORT }));
    await page.goto(DASHBOARD_URL);
    await waitForConnected(page);
    dashboards.push(page);
  }
});

after(async () => {
  await browser?.close();
});

/**
 * Clicks Produce Tasks for `size` tasks; `during` runs once part of the batch is counted;
 * waits for "Complete" and checks every task was delivered and none failed.
 */
async function produceBatch(size, { paceMs = 10, during } = {}) {
  const { total: counted } = await stats();
  const { panel } = await clickProduceTasks(producer, { size, paceMs });
  if (during) {
    await waitForTotal(counted + Math.ceil(size / 10));
    await during();
  }
  const status = panel.locator('.batch-status');
  await status.filter({ hasText: 'Complete' }).waitFor({ timeout: BATCH_TIMEOUT_MS });
  const text = (await status.textContent()).trim();
  assert.match(text, new RegExp(`Complete\\D+${size} delivered\\D+0 failed`), 'every task delivered');
  return counted;
}

/** Every dashboard's chart shows `totals`, per priority (reconnected ones included). */
async function assertEveryDashboardShows(totals) {
  for (const [i, page] of dashboards.entries()) {
    const bars = await waitForChart(page, totals, { timeoutMs: CHART_TIMEOUT_MS });
    assert.deepEqual(bars, PRIORITIES.map((p) => totals[p]), `dashboard ${i + 1}'s bars`);
  }
}

/** The batch was counted exactly once: the total grew by `size`, and the pages agree. */
async function assertCountedOnce(countedBefore, size) {
  const now = await stats();
  assert.equal(now.total, countedBefore + size, `the total grew by exactly the batch (${size})`);
  await assertEveryDashboardShows(now.totals);
  return now;
}

test('every service is up and answers on the published ports only', async () => {
  assert.deepEqual(await containersOf('consumer'), [1, 2].map((n) => `${process.env.COMPOSE_PROJECT_NAME}-consumer-${n}`));
  assert.equal((await fetch(`${PRODUCER_URL}/healthz`)).status, 200, 'the producer on 5000');
  assert.equal((await fetch(`${DASHBOARD_URL}/readyz`)).status, 200, 'a consumer, through nginx on 5001, reaches Redis');
  const ports = await compose('port', 'redis', '6379').catch((err) => err.message);
  assert.doesNotMatch(ports, /:\d+$/, `Redis is not published: ${ports}`);
});

test('clicking Produce Tasks fills every dashboard with exactly the batch, per priority', async () => {
  const counted = await produceBatch(60);
  await assertCountedOnce(counted, 60);
});

test('a Redis restart keeps the totals, and tasks flow again afterwards', async () => {
  const kept = await stats();
  await compose('restart', '-t', '5', 'redis');
  await waitHealthy('redis', 1);
  await waitFor('/readyz through nginx', async () => (await fetch(`${DASHBOARD_URL}/readyz`)).status === 200);
  // /readyz through nginx proves one replica ready; the other may still be
  // reconnecting, and its reads answer 503 (retry later) until it is: so the
  // totals are read until a replica answers them, then compared.
  const totals = await waitFor('/api/stats to answer after the restart', () => getJson(`${DASHBOARD_URL}/api/stats`));
  assert.deepEqual(totals, kept, 'the totals after the restart');
  for (const page of dashboards) await page.reload();
  await assertEveryDashboardShows(kept.totals);
  const counted = await produceBatch(20);
  await assertCountedOnce(counted, 20);
});

test('a consumer replica killed mid-batch loses nothing and counts nothing twice', async () => {
  const [victim] = await containersOf('consumer');
  const counted = await produceBatch(100, { paceMs: 30, during: () => killContainer(victim) });
  await assertCountedOnce(counted, 100);
  await compose('start', 'consumer');
  await waitHealthy('consumer', REPLICAS);
});

test('every consumer killed mid-batch and started again: every task delivered and counted once', async () => {
  const counted = await produceBatch(100, {
    paceMs: 30,
    during: async () => {
      await compose('kill', 'consumer');
      await waitFor('the consumers to be gone', async () => (await fetch(`${DASHBOARD_URL}/healthz`)).status !== 200);
      await compose('start', 'consumer');
    },
  });
  await waitHealthy('consumer', REPLICAS);
  await assertCountedOnce(counted, 100);
});
