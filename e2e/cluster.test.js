// A Redis Cluster master lost mid-batch, as a person watching the demo sees it: both
// programs on a private six-node cluster (the producer with its durable outbox there
// too), the master holding the consumer's keys crashes while a batch is running, its
// replica takes over, the crashed node comes back as a replica; the batch still ends
// with every task delivered, and the dashboard counts each task exactly once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage } from './lib/browser.js';
import { openDashboard, waitForChartTotal } from './lib/dashboard.js';
import { clickProduceTasks } from './lib/producer.js';
import { useBrowserStack } from './lib/stack.js';
import { getJson } from './lib/wait.js';

const BATCH_SIZE = 60;
const PACE_MS = 20;
/** Lines delivered before the master is killed. */
const DELIVERED_BEFORE_KILL = 10;
/** Every key of the consumer is in this key's slot, so its master holds them all. */
const CONSUMER_KEY = '{taskhooks}:seq';

// Enough attempts to outlast the failover and the restart however slow the machine:
// writes are answered 503 from the crash until the killed node is back as a replica
// (WAIT 1 has no replica to count on before), and the consumer asks for a retry in 1 s.
const ctx = useBrowserStack('cluster', {
  stack: { redis: 'cluster', durableProducer: true, env: { MAX_ATTEMPTS: '20' } },
});

/** Keeps, in the page, every text the dashboard's connection badge shows, to report them. */
async function recordBadge(page) {
  await page.evaluate(() => {
    const badge = document.getElementById('connection');
    window.badgeSeen = [`${badge.dataset.state}: ${badge.textContent}`];
    new MutationObserver(() => {
      const seen = `${badge.dataset.state}: ${badge.textContent}`;
      if (window.badgeSeen.at(-1) !== seen) window.badgeSeen.push(seen);
    }).observe(badge, { attributes: true, childList: true, characterData: true, subtree: true });
  });
}

test('a cluster master crashes mid-batch: it fails over, the batch completes, each task counted once', async (t) => {
  const { context, cluster, consumerUrl, producerUrl } = ctx;
  const ready = await getJson(`${consumerUrl}/readyz`);
  assert.equal(ready.broker, 'redis-cluster', `/readyz: ${JSON.stringify(ready)}`);
  const dashboard = await openDashboard(context, consumerUrl);
  await recordBadge(dashboard);
  const producer = await openPage(context);
  await producer.goto(producerUrl);
  const master = await cluster.masterOf(CONSUMER_KEY);

  const started = Date.now();
  const { panel } = await clickProduceTasks(producer, { size: BATCH_SIZE, paceMs: PACE_MS });
  await panel.locator('ol.lines li.delivered').nth(DELIVERED_BEFORE_KILL - 1).waitFor({ timeout: 10_000 });
  await cluster.kill(master);
  // Until the killed node is back as a replica no write can reach one (WAIT 1): 503, retried.
  const retrying = panel.locator('ol.lines li.retrying').first();
  await retrying.waitFor({ timeout: 15_000 });
  assert.match(await retrying.innerText(), /retrying \(attempt \d+\): HTTP 503 Service Unavailable/,
    'a retrying line names the consumer\'s answer');
  t.diagnostic(`a retrying line: ${await retrying.innerText()}`);
  const promoted = await cluster.waitForFailover(CONSUMER_KEY, master);
  t.diagnostic(`node ${master} killed, node ${promoted} promoted after ${Date.now() - started} ms`);
  await cluster.restart(master);
  t.diagnostic(`node ${master} back as a replica after ${Date.now() - started} ms`);

  const status = panel.locator('.batch-status');
  await status.filter({ hasText: 'Complete' }).waitFor({ timeout: 90_000 });
  assert.match(await status.innerText(), new RegExp(`Complete\\D+${BATCH_SIZE} delivered\\D+0 failed`),
    'every task was delivered in the end');
  assert.equal(await panel.locator('ol.lines li.delivered').count(), BATCH_SIZE, 'one delivered line per task');
  const stats = await getJson(`${consumerUrl}/api/stats`);
  assert.equal(stats.total, BATCH_SIZE, 'the consumer counted each task once');
  assert.equal(await waitForChartTotal(dashboard, stats.total), BATCH_SIZE, 'the chart agrees with /api/stats');
  t.diagnostic(`batch complete after ${Date.now() - started} ms`);
  t.diagnostic(`the dashboard's badge showed: ${(await dashboard.evaluate(() => window.badgeSeen)).join(' | ')}`);
  // The page's own read of /api/stats may meet the outage (answered 503, the page reads it
  // again later); Chromium logs that load as an error: that is the crash, not the page.
  const outage = /Failed to load resource: the server responded with a status of 503/;
  assert.deepEqual(dashboard.problems.filter((p) => !outage.test(p)), [], 'the dashboard logged no other errors');
  assert.deepEqual(producer.problems, [], 'the producer page logged no errors');
});
