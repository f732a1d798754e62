// A dashboard that keeps up (issue 4): with the dashboard open, a burst of 10,000 signed
// webhooks from `producer send`; the chart ends exactly at 10,000 and the page never
// froze (PerformanceObserver "longtask": none over FREEZE_LIMIT_MS). The 200 ms budget
// of a smooth page is a performance goal: reported here (BUDGET_MS), asserted by no
// test, since on two shared cores it measured 63-288 ms from run to run; it is a
// benchmark instead: with E2E_BURST_REPORT=<file> the test also writes its figures
// there as one JSON line, which scripts/bench's browser stage prints beside the budget.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCREENSHOTS, openPage } from './lib/browser.js';
import { dashboardState, waitForChartTotal, waitForConnected } from './lib/dashboard.js';
import { PRIORITIES } from './lib/socket.js';
import { useBrowserStack } from './lib/stack.js';
import { getJson } from './lib/wait.js';

/** Tasks in the burst. */
const COUNT = Number(process.env.E2E_BURST_COUNT ?? 10_000);
/** The consumer's `--ws-flush-interval` (its own default when unset), to compare frame policies. */
const FLUSH_INTERVAL = process.env.E2E_BURST_FLUSH_INTERVAL;
/** Concurrent deliveries by `producer send`. */
const CONCURRENCY = 32;
/** The longest the page may block its main thread before it counts as frozen, in ms. */
const FREEZE_LIMIT_MS = 1000;
/** The budget of a smooth page, in ms: reported, not asserted (see above). */
const BUDGET_MS = 200;
/** How long the burst may take to be sent, in ms (debug build, 2 shared cores). */
const SEND_TIMEOUT_MS = 120_000;

const ctx = useBrowserStack('burst', {
  stack: { producer: false, env: FLUSH_INTERVAL ? { WS_FLUSH_INTERVAL: FLUSH_INTERVAL } : {} },
  // The consumer (a debug build), the producer and Redis take both cores during the
  // burst; niced, they leave the browser what a user's browser would have, so a long
  // task measures the page's own work rather than the machine's load.
  nice: 10,
});

/** Installed before the page's own scripts: records every long task from the start. */
function collectLongTasks() {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.__longTasks.push({ start: Math.round(entry.startTime), duration: Math.round(entry.duration) });
    }
  }).observe({ type: 'longtask', buffered: true });
}

test(`a burst of ${COUNT} tasks ends with exact totals and never freezes the page`, async (t) => {
  const { context, services, consumerUrl, secret } = ctx;
  const page = await openPage(context);
  await page.addInitScript(collectLongTasks);
  // Every WebSocket frame the page receives, to report the frames a second it handled.
  const frames = { count: 0 };
  page.on('websocket', (socket) => socket.on('framereceived', () => { frames.count += 1; }));
  await page.goto(consumerUrl);
  await waitForConnected(page);

  const burstStartInPage = await page.evaluate(() => Math.round(performance.now()));
  const started = performance.now();
  const send = await services.run('producer-send', 'producer', [
    'send', '--count', String(COUNT), '--concurrency', String(CONCURRENCY),
    '--target', `${consumerUrl}/consumetasks`,
  ], { WEBHOOK_SECRET: secret }, { timeoutMs: SEND_TIMEOUT_MS });
  const sentMs = performance.now() - started;
  assert.equal(send.code, 0, `producer send failed:\n${send.output}`);

  const chartTotal = await waitForChartTotal(page, COUNT);
  const shownMs = performance.now() - started;
  const framesDuringBurst = frames.count;
  const stats = await getJson(`${consumerUrl}/api/stats`);
  assert.equal(stats.total, COUNT, '/api/stats counts every task once');
  assert.equal(chartTotal, COUNT, 'the chart counts every task once');
  const shown = await dashboardState(page);
  assert.deepEqual(shown.totals, { ...stats.totals, all: COUNT }, 'the totals written on the page');
  assert.ok(await page.locator('ol#tasks > li').count() <= 200, 'the task list stays capped');

  const longTasks = await page.evaluate(() => window.__longTasks);
  // Only the burst's own work counts: loading and parsing the page (Chart.js) comes
  // before it and once took 253 ms on a busy machine, which says nothing about the burst.
  const duringBurst = longTasks.filter(({ start, duration }) => start + duration > burstStartInPage);
  const longest = duringBurst.reduce((max, { duration }) => Math.max(max, duration), 0);
  const rate = Math.round(COUNT / (sentMs / 1000));
  t.diagnostic(`sent ${COUNT} in ${Math.round(sentMs)} ms (${rate} tasks/s, concurrency ${CONCURRENCY}); ` +
    `chart complete after ${Math.round(shownMs)} ms; ${duringBurst.length} long tasks during the burst, longest ${longest} ms; ` +
    `totals ${PRIORITIES.map((p) => `${p} ${stats.totals[p]}`).join(', ')}`);
  const framesPerSecond = Math.round(framesDuringBurst / (shownMs / 1000));
  t.diagnostic(`${framesDuringBurst} WebSocket frames until the chart was complete (${framesPerSecond} a second)`);
  if (process.env.E2E_BURST_REPORT) {
    writeFileSync(process.env.E2E_BURST_REPORT, `${JSON.stringify({
      count: COUNT, sent_ms: Math.round(sentMs), tasks_per_s: rate, shown_ms: Math.round(shownMs),
      frames: framesDuringBurst, frames_per_s: framesPerSecond, long_tasks: duringBurst.length,
      longest_ms: longest, budget_ms: BUDGET_MS,
    })}\n`);
  }
  t.diagnostic(`long tasks (start ms after navigation: duration ms; the burst began at ${burstStartInPage}): ` +
    longTasks.map(({ start, duration }) => `${start}: ${duration}`).join(', '));
  await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-after-burst.png') });

  t.diagnostic(`longest long task during the burst ${longest} ms: ` +
    (longest <= BUDGET_MS ? `within the ${BUDGET_MS} ms budget` : `OVER the ${BUDGET_MS} ms budget`));
  assert.ok(longest <= FREEZE_LIMIT_MS,
    `the page froze: a long task of ${longest} ms during the burst (limit ${FREEZE_LIMIT_MS}): ${JSON.stringify(duringBurst)}`);
  assert.deepEqual(page.problems, [], 'the dashboard logged no errors');
});
