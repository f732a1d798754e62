// The attempts view: a task's state, webhook-id and every delivery attempt (when it
// started, how long it took, the answer in words, the response's first bytes), read from
// `GET /batches/{id}/tasks/{task id}`.
//
// Why a native modal <dialog> (templates/producer.html, #attempts) rather than a row
// that unfolds in the log: showModal() gives, with no code of ours, the dialog role and
// its name, focus moved into it, the rest of the page inert (neither Tab nor a screen
// reader wanders out), and Escape to close. A row unfolding inside a list of 10,000
// lines would also move every line below it and fight the log's follow-the-bottom
// scrolling. What we add: focus back on the task's line when it closes.

import { getJson } from './api.js';
import { FINAL_STATES } from './batch-panel.js';
import { byId } from './common.js';
import { clockTime, element, httpStatus } from './format.js';

const el = {
  dialog: byId('attempts'),
  title: byId('attempts-title'),
  close: byId('attempts-close'),
  redeliver: byId('attempts-redeliver'),
  status: byId('attempts-status'),
  error: byId('attempts-error'),
  facts: byId('attempts-facts'),
  heading: byId('attempts-heading'),
  list: byId('attempts-list'),
};

/** The line that opened the view, focused again when it closes. */
let opener = null;
/** Redelivers the task shown (a promise; rejects with the server's refusal), or null. */
let redeliverShown = null;
/** Counts the views asked for, so a slow answer for an earlier task is dropped. */
let asked = 0;

el.close.addEventListener('click', () => el.dialog.close());
el.redeliver.addEventListener('click', redeliverTask);
el.dialog.addEventListener('close', () => {
  asked += 1;
  opener?.focus();
  opener = null;
});

/**
 * Opens the attempts of task `taskId` of `batchid`; `line` gets the focus back afterwards.
 * `redeliver()`, when given, sends the task again (the view's Redeliver this task).
 */
export async function showAttempts(batchid, taskId, line, redeliver = null) {
  opener = line;
  redeliverShown = redeliver;
  el.redeliver.hidden = true;
  el.redeliver.disabled = false;
  asked += 1;
  const ask = asked;
  el.title.textContent = `Task ${taskId} of batch ${batchid}`;
  el.status.textContent = 'Reading its attempts…';
  el.error.textContent = '';
  el.facts.replaceChildren();
  el.list.replaceChildren();
  showList(false);
  if (!el.dialog.open) el.dialog.showModal();
  try {
    const task = await getJson(`/batches/${encodeURIComponent(batchid)}/tasks/${taskId}`);
    if (ask === asked) fill(task);
  } catch (err) {
    if (ask !== asked) return;
    el.status.textContent = '';
    el.error.textContent = `Could not read the attempts: ${err.message}`;
  }
}

/** Writes the task's state, webhook-id and task, and a row per attempt. */
function fill({ state, webhook_id: webhookId, task, attempts }) {
  const { id = '?', owner = '?', priority = '?' } = task ?? {};
  addFact('State', element('span', `state ${state}`, String(state)));
  addFact('Webhook id', element('code', '', String(webhookId ?? '?')));
  addFact('Task', `${id} · ${owner} · ${priority}`);
  // As on GitHub's Recent Deliveries, any task that has ended may be sent again.
  el.redeliver.hidden = !redeliverShown || !FINAL_STATES.includes(state);
  const list = Array.isArray(attempts) ? attempts : [];
  el.list.replaceChildren(...list.map(attemptItem));
  showList(list.length > 0);
  el.status.textContent = list.length === 0
    ? 'No attempt yet: the task waits for its turn.'
    : `${list.length} ${list.length === 1 ? 'attempt' : 'attempts'}.`;
}

/**
 * Redeliver this task: on success the view closes (the focus goes back to the task's
 * line, which follows the redelivery); a refusal, such as a 409 for a task that another
 * page or client has meanwhile sent again, is written in the view.
 */
async function redeliverTask() {
  if (!redeliverShown) return;
  const ask = asked;
  el.redeliver.disabled = true;
  el.error.textContent = '';
  try {
    await redeliverShown();
    if (ask === asked) el.dialog.close();
  } catch (err) {
    if (ask !== asked) return;
    el.error.textContent = `Could not redeliver: ${err.message}`;
    el.redeliver.disabled = false;
  }
}

/** One term and its value in the facts list. */
function addFact(term, value) {
  const definition = element('dd');
  definition.append(value);
  el.facts.append(element('dt', '', term), definition);
}

function showList(shown) {
  el.heading.hidden = !shown;
  el.list.hidden = !shown;
}

/**
 * One attempt: "Attempt 2 — failed: 503 Service Unavailable", when it started and how
 * long it took, and the response's first bytes (as text). A list rather than a table:
 * a response excerpt needs the full width, and on a phone five columns do not fit.
 */
function attemptItem(attempt) {
  const item = element('li', 'attempt');
  const [kind, result] = attemptResult(attempt);
  const head = element('p', 'attempt-head', `Attempt ${attempt.number ?? '?'} — `);
  head.append(element('span', `result ${kind}`, result));
  const took = typeof attempt.duration_ms === 'number' ? `took ${attempt.duration_ms} ms` : 'still waiting for an answer';
  const when = element('p', 'attempt-when', `started ${clockTime(attempt.started_at)} · ${took}`);
  const response = typeof attempt.response === 'string' && attempt.response !== ''
    ? element('pre', 'response', attempt.response)
    : element('p', 'none', 'No response body.');
  item.append(head, when, response);
  return item;
}

/** `[kind, words]`: "succeeded: 200 OK", "failed: 503 Service Unavailable", "failed: <error>". */
function attemptResult({ status, error, duration_ms: durationMs }) {
  if (status == null && !error && durationMs == null) return ['sending', 'in progress'];
  const answer = [status == null ? '' : httpStatus(status), error ?? ''].filter(Boolean).join(': ');
  const ok = status >= 200 && status < 300;
  return ok ? ['delivered', `succeeded: ${answer}`] : ['failed', `failed: ${answer || 'no answer'}`];
}
