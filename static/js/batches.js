// The batches shown on the producer page: each one's panel fed by its event stream, and
// its Stop and Redeliver failed buttons.
//
// Lines are keyed by task id (`task.id`, from 0, as the dashboard shows it): an event updates its task's line, it never appends a
// second one. So replaying a batch from its start (a reopened batch), resuming after a
// broken connection, and a redelivery (new events for tasks that already have a line)
// all end with one line per task in its latest state. Several batches may run at once.
// Task fields are untrusted text and reach the page through text nodes only.

import { postJson } from './api.js';
import { FINAL_STATES, createPanel, markDirty, renderElapsed, updateLine } from './batch-panel.js';
import { parseJson } from './common.js';
import { EventStream } from './event-stream.js';

/** How often the elapsed time of running batches is redrawn, in ms. */
const ELAPSED_TICK_MS = 250;

/** The batches on the page, by id. */
const shown = new Map();
/** Batches still running, whose elapsed time ticks. */
const running = new Set();
setInterval(() => running.forEach(renderElapsed), ELAPSED_TICK_MS);

/**
 * Shows the batch of `summary` (the answer of `POST /producetasks`, or an entry of `GET
 * /batches`) in a new panel at the top of `container`, replaying its events from the
 * start. A batch already on the page is not shown twice: its panel is returned.
 * `hooks.onOpenLine(batch, taskId, line)`: a task's line was activated;
 * `hooks.onChange()`: the batch finished, or started again (a redelivery).
 */
export function showBatch(summary, container, hooks) {
  const batchid = String(summary.batchid);
  const existing = shown.get(batchid);
  if (existing) return existing;
  const batch = createPanel(batchid, Number(summary.total), (taskId, line) => hooks.onOpenLine(batch, taskId, line));
  Object.assign(batch, {
    eventsUrl: summary.events_url,
    stopUrl: summary.stop_url,
    redeliverUrl: summary.redeliver_url ?? '',
    lastEventId: '',
    stream: null,
    onChange: hooks.onChange,
  });
  // A reopened batch started earlier: its elapsed time counts from its creation.
  if (typeof summary.created_at === 'number') batch.started = performance.now() - (Date.now() - summary.created_at);
  batch.stopButton.addEventListener('click', () => stop(batch));
  batch.redeliverButton.addEventListener('click', () => redeliver(batch));
  shown.set(batchid, batch);
  container.prepend(batch.panel);
  running.add(batch);
  follow(batch, '');
  return batch;
}

/** (Re)connects the batch's panel to its event stream, after event `lastEventId`. */
function follow(batch, lastEventId) {
  batch.stream?.close();
  batch.stream = new EventStream(batch.eventsUrl, {
    onOpen: () => {
      if (!batch.done) setStatus(batch, batch.redelivery ? 'Redelivering…' : 'Running…');
    },
    onEvent: (type, text, id) => onEvent(batch, type, text, id),
    onReconnecting: () => {
      if (!batch.done) setStatus(batch, 'Reconnecting to the batch\'s events…');
    },
    onEnd: () => {
      if (!batch.done) lost(batch, 'it sent no final count');
    },
    onLost: (reason) => {
      if (!batch.done) lost(batch, reason);
    },
  }, lastEventId);
}

/** One event of the stream: `task` updates a line, `done` ends the batch (for now). */
function onEvent(batch, type, text, id) {
  batch.lastEventId = id;
  const data = parseJson(text, 'the producer sent an event');
  if (!data) return;
  if (type === 'task' && typeof data.task?.id === 'number') {
    // A finished batch whose task starts again is being redelivered (perhaps from
    // another page, or earlier than this replay has reached).
    if (batch.done && !FINAL_STATES.includes(data.state)) resume(batch);
    updateLine(batch, data);
  } else if (type === 'done') {
    onDone(batch, data);
  }
}

/**
 * `event: done`: the final status line. The stream is left open: the server ends it,
 * and a batch replayed from its start may have a redelivery's events after this one.
 */
function onDone(batch, data) {
  batch.done = true;
  batch.redelivery = false;
  running.delete(batch);
  batch.stopButton.disabled = true;
  const { delivered = 0, failed = 0, cancelled = 0, elapsed_ms: elapsedMs } = data;
  const word = cancelled > 0 ? 'Stopped' : 'Complete';
  const tail = cancelled > 0 ? `, ${cancelled} cancelled` : '';
  const kind = cancelled > 0 ? 'stopped' : failed > 0 ? 'with-failures' : 'complete';
  setStatus(batch, `${word} — ${delivered} delivered, ${failed} failed${tail}`, kind);
  batch.redeliverButton.hidden = !batch.redeliverUrl || failed + cancelled === 0;
  batch.redeliverButton.disabled = false;
  batch.elapsedMs = typeof elapsedMs === 'number' ? elapsedMs : performance.now() - batch.started;
  renderElapsed(batch);
  markDirty(batch);
  batch.onChange?.();
}

/**
 * The batch runs again (a redelivery): its elapsed time goes on from where it stopped,
 * and Stop works again (the producer gives a redelivery a fresh stop token).
 */
function resume(batch) {
  if (!batch.done) return;
  batch.done = false;
  batch.redelivery = true;
  batch.started = performance.now() - batch.elapsedMs;
  batch.stopButton.disabled = false;
  running.add(batch);
  // The button disappears while the redelivery runs; its keyboard user lands on the log.
  if (document.activeElement === batch.redeliverButton) batch.list.focus();
  batch.redeliverButton.hidden = true;
  setStatus(batch, 'Redelivering…');
  batch.onChange?.();
}

/** The stream is gone for good: say so, and stop ticking. */
function lost(batch, reason) {
  running.delete(batch);
  batch.stopButton.disabled = true;
  setStatus(batch, `Lost — the producer no longer serves this batch's events (${reason}); was it restarted?`, 'broken');
}

/** The batch's status line (announced: role="status"), coloured by `kind` (style.css). */
function setStatus(batch, text, kind = '') {
  batch.status.textContent = text;
  batch.status.className = kind ? `batch-status ${kind}` : 'batch-status';
}

/** Stop: nothing more of the batch is sent; the tasks not yet delivered end cancelled. */
async function stop(batch) {
  batch.stopButton.disabled = true;
  batch.alert.textContent = '';
  try {
    await postJson(batch.stopUrl, {});
    if (!batch.done) setStatus(batch, 'Stopping…');
  } catch (err) {
    batch.alert.textContent = `Could not stop the batch: ${err.message}`;
    batch.stopButton.disabled = batch.done;
  }
}

/**
 * Redeliver failed: `POST redeliver_url {}` sends every failed or cancelled task again;
 * a refusal is written in the panel, in the server's words.
 */
async function redeliver(batch) {
  batch.redeliverButton.disabled = true;
  batch.alert.textContent = '';
  try {
    const tasks = await redeliverTasks(batch);
    if (tasks.length === 0) {
      batch.redeliverButton.hidden = true;
      setStatus(batch, 'Nothing to redeliver: no task has failed or been cancelled');
    }
  } catch (err) {
    batch.alert.textContent = `Could not redeliver: ${err.message}`;
    batch.redeliverButton.disabled = false;
  }
}

/**
 * Sends tasks of `batch` again: `tasks` (task ids, whatever their final state), or every
 * failed and cancelled one when omitted. Resolves to the ids redelivered; throws the
 * server's refusal (a 409 names the tasks still in flight). Their lines say "queued for
 * redelivery" at once; a finished batch's panel then follows the stream on from the last
 * event it saw (the server ended it after the batch's `done`).
 */
export async function redeliverTasks(batch, tasks) {
  const answer = await postJson(batch.redeliverUrl, tasks ? { tasks } : {});
  const chosen = Array.isArray(answer.redelivering) ? answer.redelivering : [];
  if (chosen.length === 0) return chosen;
  const wasDone = batch.done;
  resume(batch);
  if (wasDone) setStatus(batch, `Redelivering ${chosen.length} ${chosen.length === 1 ? 'task' : 'tasks'}…`);
  for (const id of chosen) {
    const last = batch.last.get(id);
    if (last && FINAL_STATES.includes(last.state)) updateLine(batch, { ...last, state: 'queued' });
  }
  // A running batch's stream is still open and brings the redelivery's events itself.
  if (wasDone) follow(batch, batch.lastEventId);
  return chosen;
}
