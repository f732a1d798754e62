// Redis lost mid-batch, as a person watching the demo sees it (issue 4: status in words
// and colour): the dashboard says Redis is unavailable, the producer page shows tasks
// retrying with the consumer's reason; once Redis is back, the dashboard is live again
// and the batch completes with every task delivered. Both pages, in that state, pass the
// accessibility audit of a11y.test.js.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { auditPage, describeViolations } from './lib/a11y.js';
import { SCREENSHOTS, openPage } from './lib/browser.js';
import { openDashboard, waitForChartTotal } from './lib/dashboard.js';
import { clickProduceTasks } from './lib/producer.js';
import { useBrowserStack } from './lib/stack.js';
import { getJson } from './lib/wait.js';

const BATCH_SIZE = 120;
const PACE_MS = 20;

// Enough attempts to outlast the outage however slow the machine: the defaults (5,
// about 5–8 s with the consumer's Retry-After: 1) are what the test is not about.
const ctx = useBrowserStack('outage', { stack: { env: { MAX_ATTEMPTS: '10' } } });

test('Redis lost mid-batch: both pages say so in words, and the batch still completes', async () => {
  const { context, services, consumerUrl, producerUrl } = ctx;
  const dashboard = await openDashboard(context, consumerUrl);
  const badge = dashboard.locator('#connection');
  assert.equal(await badge.getAttribute('data-state'), 'open');

  const producer = await openPage(context);
  await producer.goto(producerUrl);
  const { panel } = await clickProduceTasks(producer, { size: BATCH_SIZE, paceMs: PACE_MS });
  await panel.locator('ol.lines li.delivered').nth(9).waitFor({ timeout: 10_000 });

  await services.kill('redis');
  await dashboard.waitForFunction(() => document.getElementById('connection').dataset.state === 'degraded',
    null, { timeout: 10_000 });
  assert.match(await badge.innerText(), /Redis unavailable/, 'the dashboard says what is wrong, in words');
  const retrying = panel.locator('ol.lines li.retrying').first();
  await retrying.waitFor({ timeout: 10_000 });
  assert.match(await retrying.innerText(), /retrying \(attempt \d\): HTTP 503 Service Unavailable/,
    'a retrying line names the consumer\'s answer');
  await dashboard.screenshot({ path: join(SCREENSHOTS, 'dashboard-redis-down.png') });
  await producer.screenshot({ path: join(SCREENSHOTS, 'producer-retrying.png') });
  // These states exist only here: both pages must read as well in them as in any other.
  for (const [page, state] of [[dashboard, 'the dashboard with Redis down'], [producer, 'the producer page, retrying']]) {
    const violations = await auditPage(page);
    assert.equal(violations.length, 0, `${state}: accessibility violations\n${describeViolations(violations)}`);
  }

  await services.restartRedis('redis');
  await dashboard.waitForFunction(() => document.getElementById('connection').dataset.state === 'open',
    null, { timeout: 15_000 });
  const status = panel.locator('.batch-status');
  await status.filter({ hasText: 'Complete' }).waitFor({ timeout: 60_000 });
  assert.match(await status.innerText(), new RegExp(`Complete\\D+${BATCH_SIZE} delivered\\D+0 failed`),
    'every task was delivered in the end');

  // Redis came back empty (it keeps nothing on disk): the page and the consumer agree on
  // what was counted since, and nothing is counted twice.
  const stats = await getJson(`${consumerUrl}/api/stats`);
  assert.ok(stats.total > 0 && stats.total <= BATCH_SIZE, `counted since the restart: ${stats.total}`);
  assert.equal(await waitForChartTotal(dashboard, stats.total), stats.total);
  assert.deepEqual(producer.problems, [], 'the producer page logged no errors');
});
