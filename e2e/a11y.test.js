// Pages everyone can use (issue 12, item 5): both pages pass an axe-core audit with no
// serious or critical violation in the states a person sees them in (empty, reconnecting,
// and full after a batch), and a person with only a keyboard can fill in and submit the
// Produce Tasks form and reach every scrolling region, seeing where the focus is.
// (The dashboard with Redis down and the producer page with tasks retrying are audited
// in outage.test.js, which makes those states for real.)

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { auditPage, describeViolations } from './lib/a11y.js';
import { SCREENSHOTS, openPage } from './lib/browser.js';
import { openDashboard, waitForChartTotal } from './lib/dashboard.js';
import { clickProduceTasks } from './lib/producer.js';
import { useBrowserStack } from './lib/stack.js';

/** Tasks in the batch: enough to make both lists scroll. */
const BATCH_SIZE = 40;
/** Delay between tasks, in ms. */
const PACE_MS = 5;
/** How long a batch may take to complete, in ms. */
const BATCH_TIMEOUT_MS = 60_000;
/** The most Tab presses it may take to reach a control; more means it is unreachable. */
const MAX_TABS = 30;
/** WCAG 2.1 non-text contrast (1.4.11): a focus indicator against what surrounds it. */
const MIN_FOCUS_CONTRAST = 3;

// The consumer with --fault-injection, so every audit and the keyboard's Tab stops on the
// dashboard include its fault panel (issue 27).
const ctx = useBrowserStack('a11y', { stack: { env: { FAULT_INJECTION: 'true' } } });

/**
 * Audits each `[page, state]` and then fails, listing every serious or critical violation
 * with its rule, help and nodes, unless there were none on any page.
 */
async function assertAccessible(...audits) {
  const report = [];
  for (const [page, state] of audits) {
    const violations = await auditPage(page);
    if (violations.length) report.push(`${state}: ${violations.length} serious or critical\n${describeViolations(violations)}`);
  }
  assert.equal(report.length, 0, `accessibility violations\n${report.join('\n')}`);
}

/**
 * Presses Tab until `selector` has the focus, checking at every stop on the way that the
 * focus is visible; fails after MAX_TABS presses.
 */
async function tabTo(page, selector) {
  for (let i = 0; i < MAX_TABS; i += 1) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 80) ?? 'nothing');
    await assertFocusVisible(page, `Tab stop ${i + 1} on the way to ${selector}, ${at}`);
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
  }
  const at = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 120));
  assert.fail(`${MAX_TABS} presses of Tab never reached ${selector}; the focus is on ${at}`);
}

/**
 * The focused element's focus indicator: whether it matches :focus-visible, its outline's
 * width and style, and the contrast of the outline as seen (its colour painted over the
 * background, so a translucent ring counts as the lighter colour it shows) with the first
 * opaque background behind it. An outline drawn outside the element (a positive offset)
 * lies on the parent's background, one drawn inside on the element's own. The colours
 * are read back from a canvas, which understands every CSS colour syntax.
 */
function focusIndicator() {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const pen = document.createElement('canvas').getContext('2d', { willReadFrequently: true });
  const paint = (...colours) => {
    pen.clearRect(0, 0, 1, 1);
    for (const colour of ['#fff', ...colours]) {
      pen.fillStyle = colour;
      pen.fillRect(0, 0, 1, 1);
    }
    return [...pen.getImageData(0, 0, 1, 1).data.slice(0, 3)];
  };
  const luminance = (rgb) => rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  // Opaque: it looks the same painted over black as over white.
  const opaque = (node) => {
    const colour = getComputedStyle(node).backgroundColor;
    return paint('#000', colour).join() === paint('#fff', colour).join();
  };
  let behind = parseFloat(style.outlineOffset) < 0 ? el : el.parentElement;
  while (behind && !opaque(behind)) behind = behind.parentElement;
  const back = behind ? getComputedStyle(behind).backgroundColor : '#fff';
  const [hi, lo] = [luminance(paint(back, style.outlineColor)), luminance(paint(back))].sort((x, y) => y - x);
  return {
    element: el.outerHTML.slice(0, 80),
    focusVisible: el.matches(':focus-visible'),
    outline: `${style.outlineWidth} ${style.outlineStyle} ${style.outlineColor} on ${back}`,
    width: parseFloat(style.outlineWidth),
    styled: style.outlineStyle !== 'none',
    contrast: Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100,
  };
}

/** Fails unless the focused element shows a :focus-visible outline that passes contrast. */
async function assertFocusVisible(page, what) {
  const focus = await page.evaluate(focusIndicator);
  assert.ok(focus.focusVisible, `${what} matches :focus-visible: ${JSON.stringify(focus)}`);
  assert.ok(focus.styled && focus.width >= 2, `${what} has an outline of 2 px or more: ${JSON.stringify(focus)}`);
  assert.ok(focus.contrast >= MIN_FOCUS_CONTRAST,
    `${what}'s outline contrasts ${MIN_FOCUS_CONTRAST}:1 with its background: ${JSON.stringify(focus)}`);
}

test('both pages pass the audit empty, before any task', async () => {
  const { context, consumerUrl, producerUrl } = ctx;
  const dashboard = await openDashboard(context, consumerUrl);
  await dashboard.locator('#empty').waitFor({ state: 'visible', timeout: 5_000 });
  await dashboard.locator('#faults').waitFor({ state: 'visible', timeout: 5_000 });
  const producer = await openPage(context);
  await producer.goto(producerUrl);
  await producer.locator('#produce').waitFor({ timeout: 5_000 });
  await assertAccessible([dashboard, 'the empty dashboard'], [producer, 'the producer page before a batch']);
  await Promise.all([dashboard.close(), producer.close()]);
});

test('the dashboard passes the audit while it cannot reach its socket', async () => {
  const { context, consumerUrl } = ctx;
  const dashboard = await openPage(context);
  // The browser is refused the WebSocket, as when the consumer is down: the badge says
  // "Reconnecting…" in its amber look.
  await dashboard.routeWebSocket(/\/ws$/, (ws) => ws.close());
  await dashboard.goto(consumerUrl);
  await dashboard.locator('#connection', { hasText: 'Reconnecting' }).waitFor({ timeout: 10_000 });
  assert.equal(await dashboard.locator('#connection').getAttribute('data-state'), 'closed');
  await assertAccessible([dashboard, 'the dashboard, reconnecting']);
  await dashboard.close();
});

test('both pages pass the audit after a batch: log, counts, chart and recent tasks full', async () => {
  const { context, consumerUrl, producerUrl } = ctx;
  const dashboard = await openDashboard(context, consumerUrl);
  const producer = await openPage(context);
  await producer.goto(producerUrl);

  const { panel } = await clickProduceTasks(producer, { size: BATCH_SIZE, paceMs: PACE_MS });
  await panel.locator('.batch-status', { hasText: 'Complete' }).waitFor({ timeout: BATCH_TIMEOUT_MS });
  await waitForChartTotal(dashboard, BATCH_SIZE);
  await dashboard.locator('ol#tasks > li').nth(BATCH_SIZE - 1).waitFor({ timeout: 5_000 });
  await dashboard.waitForFunction(() => !window.taskhooks.chart.animating, null, { timeout: 5_000 });

  await assertAccessible([producer, 'the producer page after a batch'], [dashboard, 'the dashboard after a batch']);
  assert.deepEqual(producer.problems, [], 'the producer page logged no errors (nor a CSP violation)');
  assert.deepEqual(dashboard.problems, [], 'the dashboard logged no errors (nor a CSP violation)');
  await Promise.all([dashboard.close(), producer.close()]);
});

test('with the keyboard alone: fill in and submit Produce Tasks, then reach the task log', async () => {
  const { context, producerUrl } = ctx;
  const page = await openPage(context);
  await page.goto(producerUrl);
  await page.locator('#produce').waitFor({ timeout: 5_000 });

  for (const [id, value] of [['min', '30'], ['max', '30'], ['pace', '5']]) {
    await tabTo(page, `#${id}`);
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type(value);
  }
  await tabTo(page, '#produce');
  const answer = page.waitForResponse((r) => r.url().endsWith('/producetasks') && r.request().method() === 'POST');
  await page.keyboard.press('Enter');
  const { batchid, total } = await (await answer).json();
  assert.equal(total, 30, 'the batch has the size typed in');

  const panel = page.locator(`.batch[data-batchid="${batchid}"]`);
  await panel.locator('.batch-status', { hasText: 'Complete' }).waitFor({ timeout: BATCH_TIMEOUT_MS });
  const log = `.batch[data-batchid="${batchid}"] ol.lines`;
  assert.ok(await page.locator(log).evaluate((ol) => ol.scrollHeight > ol.clientHeight), 'the log scrolls');
  await tabTo(page, log);
  await page.screenshot({ path: join(SCREENSHOTS, 'producer-keyboard-log.png') });
  // Focused, the log scrolls with the keyboard.
  await page.keyboard.press('Home');
  await page.waitForFunction((s) => document.querySelector(s).scrollTop === 0, log, { timeout: 5_000 });
  assert.deepEqual(page.problems, [], 'the producer page logged no errors');
  await page.close();
});

test('with the keyboard alone: a batch started with Space, then the recent-tasks list reached', async () => {
  const { context, producerUrl, consumerUrl } = ctx;
  const producer = await openPage(context);
  await producer.goto(producerUrl);
  await tabTo(producer, '#produce');
  const answer = producer.waitForResponse((r) => r.url().endsWith('/producetasks') && r.request().method() === 'POST');
  await producer.keyboard.press('Space');
  assert.equal((await answer).status(), 202, 'Space on Produce Tasks starts a batch');

  const dashboard = await openDashboard(context, consumerUrl);
  await dashboard.waitForFunction(() => {
    const list = document.getElementById('tasks');
    return list.scrollHeight > list.clientHeight;
  }, null, { timeout: BATCH_TIMEOUT_MS });
  await tabTo(dashboard, '#tasks');
  await dashboard.screenshot({ path: join(SCREENSHOTS, 'dashboard-keyboard-tasks.png'), fullPage: true });
  await dashboard.keyboard.press('End');
  await dashboard.waitForFunction(() => document.getElementById('tasks').scrollTop > 0, null, { timeout: 5_000 });
  assert.deepEqual(dashboard.problems, [], 'the dashboard logged no errors');
});

test('with the keyboard alone: the recent batches listed, a task\'s attempts opened and closed; both pass the audit', async () => {
  const { context, producerUrl } = ctx;
  const page = await openPage(context);
  await page.goto(producerUrl);
  const { batchid, panel } = await clickProduceTasks(page, { size: 5, paceMs: PACE_MS });
  await panel.locator('.batch-status', { hasText: 'Complete' }).waitFor({ timeout: BATCH_TIMEOUT_MS });
  assert.match(await page.locator('#durability').innerText(), /memory only/, 'the page says deliveries are not durable');

  await tabTo(page, '#recent > summary');
  await page.keyboard.press('Enter');
  const open = page.locator(`#recent-list button.open[data-batchid="${batchid}"]`);
  await open.waitFor({ timeout: 5_000 });
  await assertAccessible([page, 'the producer page, recent batches listed']);
  await tabTo(page, `#recent-list button.open[data-batchid="${batchid}"]`);
  // Its panel is already on the page: Open takes the focus to its log, not to a second panel.
  await page.keyboard.press('Enter');
  assert.ok(await page.evaluate((id) => document.activeElement.matches(`.batch[data-batchid="${id}"] ol.lines`), batchid),
    'Open focuses the batch\'s log');
  assert.equal(await page.locator(`.batch[data-batchid="${batchid}"]`).count(), 1, 'a batch has one panel');

  await tabTo(page, `.batch[data-batchid="${batchid}"] button.line`);
  await page.keyboard.press('ArrowDown');
  await assertFocusVisible(page, 'the second line, reached with ArrowDown');
  const line = await page.evaluate(() => document.activeElement.dataset.task);
  assert.equal(line, '1', 'ArrowDown moves to the next line, task 1 (ids count from 0)');
  await page.keyboard.press('Space');
  const dialog = page.getByRole('dialog', { name: `Task 1 of batch ${batchid}` });
  await dialog.locator('#attempts-list li').first().waitFor({ timeout: 5_000 });
  assert.match(await dialog.locator('.result').first().innerText(), /^succeeded: 200 OK/);
  await assertFocusVisible(page, 'the focus inside the attempts view');
  await page.screenshot({ path: join(SCREENSHOTS, 'producer-keyboard-attempts.png') });
  await assertAccessible([page, 'the producer page, a task\'s attempts open']);

  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden', timeout: 5_000 });
  assert.ok(await page.evaluate(() => document.activeElement.matches('button.line[data-task="1"]')),
    'Escape closes the attempts and returns the focus to the line');
  assert.deepEqual(page.problems, [], 'the producer page logged no errors');
  await page.close();
});
