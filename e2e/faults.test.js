// Watching a webhook pipeline fail and recover (issue 27), as a person does it: with the
// consumer's --fault-injection, the dashboard's fault panel is set with the keyboard alone
// to "fail the next 5" and "drop the next 3"; Produce Tasks for 40 on the producer page
// then shows tasks retrying and ends with 40 delivered, and the dashboard counts exactly
// 40 tasks, 5 refused, 3 answers dropped and the 3 retries of those answered duplicate.
// The page with the panel open passes the axe-core audit of a11y.test.js.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { auditPage, describeViolations } from './lib/a11y.js';
import { SCREENSHOTS, openPage } from './lib/browser.js';
import { dashboardState, openDashboard, waitForChartTotal } from './lib/dashboard.js';
import { clickProduceTasks } from './lib/producer.js';
import { ROOT } from './lib/services.js';
import { useBrowserStack } from './lib/stack.js';
import { getJson } from './lib/wait.js';

const BATCH_SIZE = 40;
/** Slow enough that the chart of the last minute shows the dip and the recovery. */
const PACE_MS = 100;
const FAIL_NEXT = 5;
const DROP_NEXT = 3;
/** The README's picture; rewritten only with UPDATE_SCREENSHOTS=1. */
const DOCS_SCREENSHOTS = join(ROOT, 'docs', 'screenshots');

// The consumer with fault injection; the producer retrying soon (the default backoff is
// what the test is not about) and often enough that no task can run out of attempts
// even if every refusal fell on it.
const ctx = useBrowserStack('faults', {
  stack: { env: { FAULT_INJECTION: 'true', RETRY_BACKOFF_MS: '50', MAX_ATTEMPTS: '10' } },
});

/** Sets one fault from the panel with the keyboard: Tab to its field, type, Enter. */
async function setFault(page, field, value) {
  const input = `#fault-${field}`;
  for (let i = 0; i < 40; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s), input)) break;
  }
  assert.ok(await page.evaluate((s) => document.activeElement?.matches(s), input), `Tab reaches ${input}`);
  await page.keyboard.press('Control+a');
  await page.keyboard.type(String(value));
  await page.keyboard.press('Enter');
  await page.locator(`[data-now="${field}"]`).filter({ hasText: new RegExp(`^${value}$`) })
    .waitFor({ timeout: 5_000 });
}

/** Waits until the element `id` of the page reads `value` (digits only). */
async function waitForNumber(page, id, value) {
  try {
    await page.waitForFunction(([id, value]) =>
      Number(document.getElementById(id)?.textContent.replace(/\D/g, '')) === value, [id, value], { timeout: 15_000 });
  } catch (err) {
    const shown = await page.locator(`#${id}`).textContent();
    throw new Error(`#${id} reads "${shown}", expected ${value}: ${err.message}`);
  }
}

test('fail the next 5, drop the next 3: the batch still delivers 40, counted once, with 3 duplicates', async () => {
  const { context, consumerUrl, producerUrl } = ctx;
  const dashboard = await openDashboard(context, consumerUrl);
  await dashboard.locator('#faults').waitFor();
  await setFault(dashboard, 'fail_next', FAIL_NEXT);
  await setFault(dashboard, 'drop_next', DROP_NEXT);
  const violations = await auditPage(dashboard);
  assert.equal(violations.length, 0, `the dashboard with its fault panel\n${describeViolations(violations)}`);

  // The chart counts what happened since the page's first read of the counters.
  await dashboard.waitForFunction(() => window.taskhooks.counted.refused !== null, null, { timeout: 10_000 });

  const producer = await openPage(context);
  await producer.goto(producerUrl);
  const { panel } = await clickProduceTasks(producer, { size: BATCH_SIZE, paceMs: PACE_MS });
  const retrying = panel.locator('ol.lines li.retrying').first();
  await retrying.waitFor({ timeout: 10_000 });
  assert.match(await retrying.innerText(), /retrying \(attempt \d\)/, 'a refused task is shown retrying');
  const status = panel.locator('.batch-status');
  await status.filter({ hasText: 'Complete' }).waitFor({ timeout: 60_000 });
  assert.match(await status.innerText(), new RegExp(`Complete\\D+${BATCH_SIZE} delivered\\D+0 failed`));

  assert.equal(await waitForChartTotal(dashboard, BATCH_SIZE), BATCH_SIZE, 'each task counted once');
  assert.equal((await dashboardState(dashboard)).totals.all, BATCH_SIZE);
  await waitForNumber(dashboard, 'duplicates', DROP_NEXT);
  await waitForNumber(dashboard, 'fault-duplicates', DROP_NEXT);
  await waitForNumber(dashboard, 'fault-refused', FAIL_NEXT);
  await waitForNumber(dashboard, 'fault-dropped', DROP_NEXT);
  const stats = await getJson(`${consumerUrl}/api/stats`);
  assert.deepEqual([stats.total, stats.duplicates], [BATCH_SIZE, DROP_NEXT], '/api/stats agrees');
  const refusals = () => window.taskhooks.rateChart.data.datasets[2].data.reduce((a, b) => a + b, 0);
  await dashboard.waitForFunction(`(${refusals})() === ${FAIL_NEXT}`, null, { timeout: 10_000 })
    .catch(() => {}); // the assertion below says what the chart shows instead
  assert.equal(await dashboard.evaluate(refusals), FAIL_NEXT, 'the chart of the last minute shows every refusal');

  await dashboard.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await dashboard.screenshot({ path: join(SCREENSHOTS, 'dashboard-faults.png') });
  if (process.env.UPDATE_SCREENSHOTS === '1') {
    mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    await dashboard.screenshot({ path: join(DOCS_SCREENSHOTS, 'dashboard-faults.png') });
  }
  assert.deepEqual(dashboard.problems, [], 'the dashboard logged no errors');
});

test('Clear all faults, with the keyboard, leaves none in force and keeps the counts', async () => {
  const { context, consumerUrl } = ctx;
  const dashboard = await openDashboard(context, consumerUrl);
  await dashboard.locator('#fault-clear').focus();
  await dashboard.keyboard.press('Enter');
  await dashboard.locator('#fault-message').filter({ hasText: 'cleared' }).waitFor({ timeout: 5_000 });
  const faults = await getJson(`${consumerUrl}/api/faults`);
  assert.deepEqual(faults.settings,
    { fail_next: 0, fail_status: 503, fail_percent: 0, delay_ms: 0, drop_next: 0 });
  assert.deepEqual(faults.injected, { refused: FAIL_NEXT, dropped: DROP_NEXT, duplicates: DROP_NEXT });
});
