// The producer page: Produce Tasks starts a batch (POST /producetasks), and each batch
// gets a panel fed by its Server-Sent Events stream (batches.js); a task's line opens
// its attempts (attempts.js); recent batches can be reopened (recent.js).

import { postJson } from './api.js';
import { showAttempts } from './attempts.js';
import { redeliverTasks, showBatch } from './batches.js';
import { byId, followThisHost } from './common.js';
import { initRecent, recentIsOpen, refreshRecent } from './recent.js';

const el = {
  form: byId('produce-form'),
  min: byId('min'),
  max: byId('max'),
  pace: byId('pace'),
  produce: byId('produce'),
  error: byId('form-error'),
  batches: byId('batches'),
};

/** What a batch's panel asks of the rest of the page. */
const hooks = {
  onOpenLine: (batch, taskId, line) => {
    const redeliver = batch.redeliverUrl ? () => redeliverTasks(batch, [taskId]) : null;
    showAttempts(batch.batchid, taskId, line, redeliver);
  },
  onChange: () => {
    if (recentIsOpen()) refreshRecent();
  },
};

el.form.addEventListener('submit', (event) => {
  event.preventDefault();
  produce();
});
// The browser's own checks (min 1, whole numbers…) block a submit before it is sent and
// say why themselves; an older answer from the server would only contradict them.
el.form.addEventListener('invalid', () => { el.error.textContent = ''; }, true);
initRecent(reopen);
followThisHost();

async function produce() {
  el.error.textContent = '';
  el.produce.disabled = true;
  try {
    const body = { min: Number(el.min.value), max: Number(el.max.value), pace_ms: Number(el.pace.value) };
    const answer = await postJson('/producetasks', body);
    showBatch(answer, el.batches, hooks);
    hooks.onChange();
  } catch (err) {
    el.error.textContent = err.message;
  } finally {
    el.produce.disabled = false;
  }
}

/** Reopens a listed batch (or finds its panel) and takes the keyboard's focus to its log. */
function reopen(summary) {
  const batch = showBatch(summary, el.batches, hooks);
  batch.list.focus();
}
