// Driving the producer page through its contract: the #min, #max and #pace fields, the
// Produce Tasks button, and one `.batch[data-batchid]` panel per batch.

import assert from 'node:assert/strict';

/**
 * Fills in a batch of exactly `size` tasks (min = max) at `paceMs`, clicks Produce Tasks
 * and returns `{ batchid, total, panel }` from the page's `POST /producetasks`, whose
 * answer names the batch whose panel the test then watches.
 */
export async function clickProduceTasks(page, { size, paceMs }) {
  await page.fill('#min', String(size));
  await page.fill('#max', String(size));
  await page.fill('#pace', String(paceMs));
  const answer = page.waitForResponse((r) => r.url().endsWith('/producetasks') && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Produce Tasks' }).click();
  const response = await answer;
  assert.equal(response.status(), 202, `POST /producetasks answered ${response.status()}`);
  const { batchid, total } = await response.json();
  assert.equal(total, size, 'min = max, so the batch has exactly that many tasks');
  return { batchid, total, panel: page.locator(`.batch[data-batchid="${batchid}"]`) };
}

/**
 * The batch's tasks per priority, `{ Low, Moderate, Major, Critical }`, read from its
 * panel: each line's tooltip is the task as sent (JSON).
 */
export async function panelPriorities(panel) {
  return panel.locator('ol.lines button.line').evaluateAll((lines) => {
    const counts = { Low: 0, Moderate: 0, Major: 0, Critical: 0 };
    for (const line of lines) counts[JSON.parse(line.title).priority] += 1;
    return counts;
  });
}
