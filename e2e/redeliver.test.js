// Redeliver failed, as a person uses it (issue 12, item 4): the consumer dies in the
// middle of a batch, so the rest of the batch fails; the consumer comes back, Redeliver
// failed is clicked, every failed task's line goes back to running and ends delivered,
// and the dashboard's chart ends exactly equal to the batch, per priority: each task
// counted once, including any the consumer had counted before it died without answering
// (redelivered with the same webhook-id, it is answered "duplicate"). Then, with the
// keyboard alone, a redelivered task's attempts: the failed ones, then the successful one.
// Redeliver this task on one the consumer had counted: answered duplicate, counted once.
// Last, refusals: a batch the restarted producer lost (the panel says why), and a task
// another client has meanwhile sent again (the attempts view names it, from the 409).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCREENSHOTS, openPage } from './lib/browser.js';
import { openDashboard, waitForChart, waitForConnected } from './lib/dashboard.js';
import { clickProduceTasks, panelPriorities } from './lib/producer.js';
import { useBrowserStack } from './lib/stack.js';
import { getJson } from './lib/wait.js';

/** Tasks in the batch. */
const BATCH_SIZE = 40;
/** Delay between tasks, in ms: the batch lasts about 4 s, so the consumer dies early in it. */
const PACE_MS = 100;
/** Lines delivered before the consumer is killed. */
const DELIVERED_BEFORE_KILL = 5;
/** Attempts per task and backoff: a task fails about 0.2 s after the consumer is gone. */
const MAX_ATTEMPTS = 2;
const RETRY_BACKOFF_MS = 100;
/** Seconds one attempt may take: far longer than the last test keeps a task in flight. */
const TIMEOUT_SECS = 30;

const ctx = useBrowserStack('redeliver', {
  stack: {
    env: { MAX_ATTEMPTS: String(MAX_ATTEMPTS), RETRY_BACKOFF_MS: String(RETRY_BACKOFF_MS), TIMEOUT_SECS: String(TIMEOUT_SECS) },
  },
});

test('a batch failed by a dead consumer, redelivered once it is back, is counted exactly once', async () => {
  const { context, services, consumerUrl, producerUrl } = ctx;
  const dashboard = await openDashboard(context, consumerUrl);
  const producer = await openPage(context);
  await producer.goto(producerUrl);

  const { batchid, panel } = await clickProduceTasks(producer, { size: BATCH_SIZE, paceMs: PACE_MS });
  await panel.locator('ol.lines li.delivered').nth(DELIVERED_BEFORE_KILL - 1).waitFor({ timeout: 10_000 });
  await services.kill('consumer');
  const status = panel.locator('.batch-status');
  await status.filter({ hasText: 'Complete' }).waitFor({ timeout: 30_000 });
  const failed = await panel.locator('ol.lines li.failed').count();
  assert.ok(failed > 0, 'tasks sent after the consumer died failed');
  assert.match(await status.innerText(), new RegExp(`Complete — ${BATCH_SIZE - failed} delivered, ${failed} failed`));
  const redeliverButton = panel.getByRole('button', { name: 'Redeliver failed', exact: true });
  assert.ok(await redeliverButton.isVisible(), 'a batch with failed tasks offers Redeliver failed');

  await services.restartBinary('consumer');
  await waitForConnected(dashboard, { timeoutMs: 20_000 });
  const answer = producer.waitForResponse((r) => r.url().endsWith(`/batches/${batchid}/redeliver`));
  await redeliverButton.click();
  const redelivery = await (await answer).json();
  assert.equal(redelivery.redelivering.length, failed, 'every failed task is redelivered');
  await status.filter({ hasText: `Complete — ${BATCH_SIZE} delivered, 0 failed` }).waitFor({ timeout: 30_000 });
  assert.equal(await panel.locator('ol.lines li').count(), BATCH_SIZE, 'one line per task, updated in place');
  assert.equal(await panel.locator('ol.lines li.delivered').count(), BATCH_SIZE, 'every line ends delivered');
  assert.ok(!(await redeliverButton.isVisible()), 'nothing is left to redeliver');

  const expected = await panelPriorities(panel);
  const bars = await waitForChart(dashboard, expected);
  assert.equal(bars.reduce((a, b) => a + b, 0), BATCH_SIZE, 'the chart counts each task once');
  const stats = await getJson(`${consumerUrl}/api/stats`);
  assert.equal(stats.total, BATCH_SIZE, 'the consumer counted each task once');
  const summary = await getJson(`${producerUrl}/batches/${batchid}`);
  assert.deepEqual([summary.state, summary.delivered, summary.failed], ['done', BATCH_SIZE, 0]);
  await producer.screenshot({ path: join(SCREENSHOTS, 'producer-redelivered.png') });
  assert.deepEqual(producer.problems, [], 'the producer page logged no errors');
  // While the consumer was dead, Chromium logged each refused reconnection of the
  // dashboard's socket: that is the outage, not a fault of the page. So is a read of the
  // counters once a second (/api/stats) that was under way as it died (the page sends
  // none while its socket is down).
  const refused = /WebSocket connection to .* failed: .*ERR_CONNECTION_REFUSED|Failed to load resource: net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)/;
  assert.deepEqual(dashboard.problems.filter((p) => !refused.test(p)), [], 'the dashboard logged no other errors');
});

test('with the keyboard alone: a redelivered task\'s attempts, failed ones then the successful one', async () => {
  const { context, producerUrl } = ctx;
  const page = await openPage(context);
  await page.goto(producerUrl);
  // The batch of the first test, reopened from Recent batches: its last task was sent
  // after the consumer died, so it failed MAX_ATTEMPTS times before its redelivery.
  await page.locator('#recent > summary').focus();
  await page.keyboard.press('Enter');
  const open = page.locator('#recent-list button.open').first();
  await open.waitFor({ timeout: 5_000 });
  await open.focus();
  // The list is read again when a batch ends or Refresh is pressed, and rebuilt: the
  // reader stays on the same batch's new Open button (an Enter right after a refresh
  // opened nothing when the focus fell back to the page).
  const batchid = await open.getAttribute('data-batchid');
  await open.evaluate((button) => { button.dataset.before = 'yes'; });
  await page.evaluate(() => document.getElementById('recent-refresh').click());
  await page.locator('#recent-list button.open:not([data-before])').first().waitFor({ timeout: 5_000 });
  assert.ok(await page.evaluate((id) => document.activeElement.matches(`#recent-list button[data-batchid="${id}"]`)
    && !document.activeElement.dataset.before, batchid), 'a refresh of the list keeps the focus on that batch');
  await page.keyboard.press('Enter');
  const panel = page.locator('.batch').first();
  await panel.locator('.batch-status', { hasText: `Complete — ${BATCH_SIZE} delivered` }).waitFor({ timeout: 10_000 });

  // The log's lines are one Tab stop: Tab from the log lands on the current line, End
  // moves to the last one, Enter opens its attempts.
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(() => document.activeElement.matches('ol.lines button.line')), 'Tab reaches a line');
  await page.keyboard.press('End');
  const last = panel.locator('ol.lines li').last().locator('button.line');
  assert.ok(await last.evaluate((b) => b === document.activeElement && b.matches(':focus-visible')),
    'End moves the focus, visibly, to the last line');
  await page.keyboard.press('Enter');

  const dialog = page.getByRole('dialog', { name: `Task ${BATCH_SIZE - 1} of batch` });
  await dialog.waitFor({ timeout: 5_000 });
  const attempts = dialog.locator('#attempts-list li');
  await attempts.nth(MAX_ATTEMPTS).waitFor({ timeout: 5_000 });
  const results = await attempts.locator('.result').allInnerTexts();
  assert.equal(results.length, MAX_ATTEMPTS + 1, `${MAX_ATTEMPTS} failed attempts and the redelivery: ${results}`);
  for (const result of results.slice(0, MAX_ATTEMPTS)) assert.match(result, /^failed: /);
  assert.match(results[MAX_ATTEMPTS], /^succeeded: 200 OK/);
  assert.match(await dialog.locator('#attempts-facts').innerText(), /delivered[\s\S]*msg_/);
  await page.screenshot({ path: join(SCREENSHOTS, 'producer-attempts.png') });

  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden', timeout: 5_000 });
  assert.ok(await last.evaluate((b) => b === document.activeElement), 'Escape returns the focus to the line');
  assert.deepEqual(page.problems, [], 'the producer page logged no errors');
});

test('Redeliver this task, on a task the consumer already counted: answered duplicate, counted once', async () => {
  const { context, consumerUrl, producerUrl } = ctx;
  const counted = (await getJson(`${consumerUrl}/api/stats`)).total;
  const page = await openPage(context);
  await page.goto(producerUrl);
  await page.locator('#recent > summary').click();
  await page.locator('#recent-list button.open').first().click();
  const panel = page.locator('.batch').first();
  const status = panel.locator('.batch-status');
  await status.filter({ hasText: `Complete — ${BATCH_SIZE} delivered` }).waitFor({ timeout: 10_000 });

  // With the keyboard: Enter on the first line, Tab from Close to Redeliver this task, Enter.
  const first = panel.locator('ol.lines button.line').first();
  await first.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: `Task 0 of batch` });
  const redeliver = dialog.getByRole('button', { name: 'Redeliver this task', exact: true });
  await redeliver.waitFor({ timeout: 5_000 });
  await page.keyboard.press('Tab');
  assert.ok(await redeliver.evaluate((b) => b === document.activeElement), 'Tab reaches Redeliver this task');
  const answer = page.waitForResponse((r) => r.url().endsWith('/redeliver'));
  await page.keyboard.press('Enter');
  assert.deepEqual((await (await answer).json()).redelivering, [0]);
  await dialog.waitFor({ state: 'hidden', timeout: 5_000 });
  assert.ok(await first.evaluate((b) => b === document.activeElement), 'the focus is back on the line');

  // The line follows the redelivery to its end; its attempts then end with a duplicate.
  await status.filter({ hasText: `Complete — ${BATCH_SIZE} delivered, 0 failed` }).waitFor({ timeout: 30_000 });
  await page.keyboard.press('Enter');
  const attempts = dialog.locator('#attempts-list li');
  await dialog.locator('#attempts-status', { hasText: /^\d+ attempts?\.$/ }).waitFor({ timeout: 5_000 });
  const lastAttempt = attempts.last();
  assert.match(await lastAttempt.locator('.result').innerText(), /^succeeded: 200 OK/);
  assert.match(await lastAttempt.locator('.response').innerText(), /"duplicate"/, 'the consumer answered duplicate');
  assert.ok(await attempts.count() >= 2, 'the first attempt and the redelivery');
  await page.keyboard.press('Escape');
  assert.equal((await getJson(`${consumerUrl}/api/stats`)).total, counted, 'the consumer did not count it again');
  assert.deepEqual(page.problems, [], 'the producer page logged no errors');
});

test('Redeliver failed on a batch the producer no longer has is refused, and the panel says why', async () => {
  const { context, services, producerUrl } = ctx;
  await services.kill('consumer');
  const page = await openPage(context);
  await page.goto(producerUrl);
  const { panel } = await clickProduceTasks(page, { size: 3, paceMs: 0 });
  await panel.locator('.batch-status', { hasText: 'Complete — 0 delivered, 3 failed' }).waitFor({ timeout: 30_000 });

  // Without REDIS_URL the producer keeps its batches in memory: restarted, it has none.
  await services.restartBinary('producer');
  const answer = page.waitForResponse((r) => r.url().endsWith('/redeliver'));
  await panel.getByRole('button', { name: 'Redeliver failed', exact: true }).click();
  assert.equal((await answer).status(), 404);
  const alert = panel.locator('.alert');
  await alert.filter({ hasText: 'Could not redeliver' }).waitFor({ timeout: 5_000 });
  assert.match(await alert.innerText(), /Could not redeliver: no batch .* start a new one/, 'the panel says why, in the server\'s words');
  assert.ok(await panel.getByRole('button', { name: 'Redeliver failed', exact: true }).isEnabled(), 'it may be tried again');
  assert.match(await panel.locator('.batch-status').innerText(), /Complete — 0 delivered, 3 failed/, 'the status line is kept');
  // The refused POST is the only error the page logged (the browser reports every 4xx).
  assert.deepEqual(page.problems.filter((p) => !/status of 404/.test(p)), [], 'the producer page logged no other errors');
});

test('Redeliver this task while another client has it in flight: the 409 is written in the attempts view', async () => {
  const { context, consumerUrl, producerUrl } = ctx;
  // The consumer is dead since the test above (and the producer restarted).
  const page = await openPage(context);
  await page.goto(producerUrl);
  const { batchid, panel } = await clickProduceTasks(page, { size: 3, paceMs: 0 });
  await panel.locator('.batch-status', { hasText: 'Complete — 0 delivered, 3 failed' }).waitFor({ timeout: 30_000 });
  await panel.locator('ol.lines button.line').nth(1).click();
  const dialog = page.getByRole('dialog', { name: `Task 1 of batch ${batchid}` });
  const redeliver = dialog.getByRole('button', { name: 'Redeliver this task', exact: true });
  await redeliver.waitFor({ timeout: 5_000 });

  // Where the consumer was, a receiver that never answers: task 1, sent again by another
  // client while the view is open, stays "sending" for TIMEOUT_SECS.
  const blackHole = await holdRequests(new URL(consumerUrl).port);
  try {
    const other = await fetch(`${producerUrl}/batches/${batchid}/redeliver`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tasks: [1] }),
    });
    assert.equal(other.status, 202, 'another client redelivers task 1');
    await blackHole.received;
    const answer = page.waitForResponse((r) => r.url().endsWith('/redeliver'));
    await redeliver.click();
    const refusal = await answer;
    assert.equal(refusal.status(), 409);
    assert.deepEqual((await refusal.json()).in_flight, [1]);
    const error = dialog.locator('#attempts-error');
    await error.filter({ hasText: 'Could not redeliver' }).waitFor({ timeout: 5_000 });
    assert.match(await error.innerText(), /task\(s\) 1 still queued, sending or retrying/, 'the view names the task in flight');
    assert.ok(await dialog.isVisible() && await redeliver.isEnabled(), 'the view stays open; it may be tried again');
  } finally {
    await blackHole.close();
  }
  assert.deepEqual(page.problems.filter((p) => !/status of 409/.test(p)), [], 'the producer page logged no other errors');
});

/**
 * An HTTP server on 127.0.0.1:`port` that takes requests and never answers; `received`
 * resolves at the first request, `close()` drops every connection and stops listening.
 */
async function holdRequests(port) {
  const sockets = new Set();
  let arrived;
  const received = new Promise((ok) => { arrived = ok; });
  const server = createServer(() => arrived());
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(Number(port), '127.0.0.1', ok);
  });
  const close = () => new Promise((ok) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => ok());
  });
  return { received, close };
}
