// Reading the dashboard page through its contract: `window.taskhooks = { chart, state }`
// and the ids total-<Priority>, total-all, connection, ol#tasks, #empty.

import { openPage } from './browser.js';
import { PRIORITIES } from './socket.js';

/** Opens the dashboard at `consumerUrl` in a new page of `context`, once its WebSocket is open. */
export async function openDashboard(context, consumerUrl) {
  const page = await openPage(context);
  await page.goto(consumerUrl);
  await waitForConnected(page);
  return page;
}

/** Waits until the page's WebSocket is open. */
export async function waitForConnected(page, { timeoutMs = 10_000 } = {}) {
  await page.waitForFunction(() => window.taskhooks?.state?.connected === true, null, { timeout: timeoutMs });
}

/**
 * Waits until the live chart's bars equal `expected` (per priority), and returns the bars.
 * Updates are coalesced per animation frame, so the values are awaited, not read at once.
 */
export async function waitForChart(page, expected, { timeoutMs = 15_000 } = {}) {
  const want = PRIORITIES.map((p) => expected[p]);
  try {
    await page.waitForFunction((want) => {
      const bars = window.taskhooks?.chart?.data?.datasets?.[0]?.data ?? [];
      return want.every((n, i) => Number(bars[i]) === n);
    }, want, { timeout: timeoutMs });
  } catch (err) {
    const bars = await chartBars(page);
    throw new Error(`the chart's bars are ${JSON.stringify(bars)}, expected ${JSON.stringify(want)}: ${err.message}`);
  }
  return chartBars(page);
}

/** The live chart's bar values, in the order Low, Moderate, Major, Critical. */
export async function chartBars(page) {
  return page.evaluate(() => [...(window.taskhooks?.chart?.data?.datasets?.[0]?.data ?? [])].map(Number));
}

/** Waits until the chart's bars add up to `total`; returns the sum. */
export async function waitForChartTotal(page, total, { timeoutMs = 30_000 } = {}) {
  try {
    await page.waitForFunction((total) => {
      const bars = window.taskhooks?.chart?.data?.datasets?.[0]?.data ?? [];
      return bars.reduce((sum, n) => sum + Number(n), 0) === total;
    }, total, { timeout: timeoutMs, polling: 100 });
  } catch (err) {
    const bars = await chartBars(page);
    throw new Error(`the chart's bars are ${JSON.stringify(bars)}, expected a sum of ${total}: ${err.message}`);
  }
  return (await chartBars(page)).reduce((a, b) => a + b, 0);
}

/** The totals written on the page (digits only, so "1,234" reads 1234) and the empty state. */
export async function dashboardState(page) {
  return page.evaluate((priorities) => {
    const number = (id) => Number((document.getElementById(id)?.textContent ?? '').replace(/\D/g, ''));
    const totals = Object.fromEntries(priorities.map((p) => [p, number(`total-${p}`)]));
    totals.all = number('total-all');
    const empty = document.getElementById('empty');
    return {
      totals,
      empty: Boolean(empty && !empty.hidden && empty.offsetParent !== null),
      connection: document.getElementById('connection')?.dataset.state,
    };
  }, PRIORITIES);
}
