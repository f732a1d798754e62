// A batch's panel: its heading and buttons, progress, counts, status line and the log
// of its tasks, one line per task, redrawn at most once per animation frame.
//
// Each line is a button (inside its list item) that opens the task's attempts. A batch
// may have 10,000 lines, so the lines are one Tab stop, not 10,000: only the current
// line has tabindex 0 ("roving tabindex"), the arrow keys, Home, End, Page Up and Page
// Down move between lines, and one set of listeners on the list serves every line.

import { renderScheduler } from './common.js';
import { button, element, httpStatus, seconds } from './format.js';

/** How close to the bottom (px) a list must be scrolled to keep following new lines. */
const FOLLOW_SLACK_PX = 16;
/** How many lines Page Up and Page Down move the focus by. */
const PAGE_LINES = 10;
/** States after which a task changes no more (until it is redelivered). */
export const FINAL_STATES = ['delivered', 'failed', 'cancelled'];
/** States a line is coloured by (style.css, ".lines"). */
const STYLED_STATES = ['queued', 'sending', 'retrying', ...FINAL_STATES];
/** The counts shown, in order; those in HIDDEN_WHEN_ZERO only when not zero. */
const COUNTS = ['finished', 'delivered', 'failed', 'retrying', 'queued', 'cancelled', 'elapsed'];
const HIDDEN_WHEN_ZERO = ['queued', 'cancelled'];

/** Batches whose counts, progress or scroll position must be redrawn. */
const dirty = new Set();
const scheduleRender = renderScheduler(render);

/**
 * Builds a batch's panel; returns the batch with handles on its parts. `onOpenLine(taskId,
 * line)` is called when a line is clicked, or activated with Enter or Space.
 */
export function createPanel(batchid, total, onOpenLine) {
  const panel = element('section', 'card batch');
  panel.dataset.batchid = batchid;
  const heading = element('h2', '', 'Batch ');
  heading.append(element('code', '', batchid));
  const redeliverButton = button('redeliver', 'Redeliver failed');
  redeliverButton.hidden = true;
  const stopButton = button('stop', 'Stop');
  const buttons = element('div', 'batch-buttons');
  buttons.append(redeliverButton, stopButton);
  const head = element('div', 'batch-head');
  head.append(heading, buttons);

  const progress = element('progress');
  progress.setAttribute('aria-label', `Tasks finished in batch ${batchid}`);
  const counts = element('p', 'counts');
  const count = {};
  for (const name of COUNTS) {
    count[name] = element('span', name);
    counts.append(count[name], ' ');
  }
  const status = element('p', 'batch-status', 'Starting…');
  status.setAttribute('role', 'status');
  const alert = element('p', 'alert');
  alert.setAttribute('role', 'alert');
  const list = taskLog(batchid);
  panel.append(head, progress, counts, status, alert, list);

  const batch = {
    batchid, total, panel, stopButton, redeliverButton, progress, count, status, alert, list,
    lines: new Map(), last: new Map(), tally: tallyOf(), started: performance.now(),
    elapsedMs: 0, follow: true, autoScrollTop: 0, done: false,
  };
  followScrolling(batch);
  handleLines(list, onOpenLine);
  renderCounts(batch);
  return batch;
}

/**
 * The log is a scroll region the keyboard can reach (style.css, "Focus"), and not a live
 * region: a batch may have 10,000 lines, far more than anyone can listen to. The status
 * line above it (role="status") announces the batch starting and ending.
 */
function taskLog(batchid) {
  const list = element('ol', 'lines scroll-region');
  list.tabIndex = 0;
  list.setAttribute('aria-label', `Delivery log of batch ${batchid}`);
  return list;
}

/**
 * Follow new lines until the reader scrolls up; follow again once they are back at the
 * bottom. Our own jumps to the bottom also fire 'scroll', often after more lines arrived
 * (so not at the bottom any more): only a position above our last jump is the reader's.
 */
function followScrolling(batch) {
  const { list } = batch;
  list.addEventListener('scroll', () => {
    if (list.scrollTop + list.clientHeight >= list.scrollHeight - FOLLOW_SLACK_PX) batch.follow = true;
    else if (list.scrollTop < batch.autoScrollTop - 1) batch.follow = false;
  });
}

/** One click and one keydown listener for all the lines of `list` (delegation). */
function handleLines(list, onOpenLine) {
  const lineOf = (target) => (target instanceof Element ? target.closest('button.line') : null);
  list.addEventListener('click', (event) => {
    const line = lineOf(event.target);
    if (line) onOpenLine(Number(line.dataset.task), line);
  });
  list.addEventListener('focusin', (event) => {
    const line = lineOf(event.target);
    if (line) makeCurrent(list, line);
  });
  list.addEventListener('keydown', (event) => {
    const line = lineOf(event.target);
    const to = line && lineAfterKey(line, event.key);
    if (!to) return;
    event.preventDefault();
    to.focus();
  });
}

/** The line the key moves the focus to from `line`, or null for any other key. */
function lineAfterKey(line, key) {
  const item = line.parentElement;
  const items = item.parentElement.children;
  const at = Array.prototype.indexOf.call(items, item);
  const moves = {
    ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1,
    PageDown: at + PAGE_LINES, PageUp: at - PAGE_LINES,
  };
  if (!(key in moves)) return null;
  const to = Math.min(Math.max(moves[key], 0), items.length - 1);
  return items[to]?.querySelector('button.line') ?? null;
}

/** Makes `line` the log's one Tab stop. */
function makeCurrent(list, line) {
  const current = list.querySelector('button.line[tabindex="0"]');
  if (current === line) return;
  if (current) current.tabIndex = -1;
  line.tabIndex = 0;
}

/**
 * Creates or updates the line of task `data.task.id` (the id the dashboard shows too)
 * and counts its new state.
 */
export function updateLine(batch, data) {
  const id = data.task.id;
  const previous = batch.last.get(id);
  if (previous) batch.tally[previous.state] -= 1;
  batch.tally[data.state] = (batch.tally[data.state] ?? 0) + 1;
  batch.last.set(id, data);
  if (typeof data.total === 'number') batch.total = data.total;

  let line = batch.lines.get(id);
  if (!line) {
    line = button('line', '');
    line.dataset.task = String(id);
    line.tabIndex = batch.lines.size === 0 ? 0 : -1;
    line.setAttribute('aria-haspopup', 'dialog');
    const item = element('li');
    item.append(line);
    batch.lines.set(id, line);
    batch.list.append(item);
  }
  fillLine(line, data);
  markDirty(batch);
}

/**
 * "task <id> — <status> — <owner> · <priority>", coloured by state and always in words;
 * the task by the id the dashboard shows ("Task ID"), how far the batch got is the
 * panel's counts. The batch id is the panel's heading; the whole task, as sent, is the
 * line's tooltip.
 */
function fillLine(line, data) {
  line.parentElement.className = STYLED_STATES.includes(data.state) ? data.state : '';
  line.title = JSON.stringify(data.task ?? null);
  const task = data.task ?? {};
  const status = element('span', 'status', statusText(data));
  const summary = `${task.owner ?? '?'} · ${task.priority ?? '?'}`;
  line.replaceChildren(`task ${task.id ?? '?'} — `, status, ` — ${summary}`);
}

/** A task's state in words, with the attempt, the answer or error, and the next try. */
function statusText({ state, attempt, status, error, retry_in_ms: retryInMs }) {
  switch (state) {
    case 'queued':
      return 'queued for redelivery';
    case 'sending':
      return attempt > 1 ? `sending (attempt ${attempt})` : 'sending';
    case 'delivered':
      return status ? httpStatus(status) : 'delivered';
    case 'retrying': {
      const next = typeof retryInMs === 'number' ? `, next try in ${seconds(retryInMs)}` : '';
      return `retrying (attempt ${attempt}): ${error ?? httpStatus(status)}${next}`;
    }
    case 'failed':
      return `failed: ${error ?? httpStatus(status)}`;
    case 'cancelled':
      return error ? `cancelled: ${error}` : 'cancelled';
    default:
      return String(state);
  }
}

/** Asks for the batch's counts, progress and scroll position to be redrawn. */
export function markDirty(batch) {
  dirty.add(batch);
  scheduleRender();
}

/** Redraws every dirty batch: counts, progress, and the log scrolled to its end when followed. */
function render() {
  for (const batch of dirty) {
    renderCounts(batch);
    // A reader on a line (keyboard focus) keeps their place: the log does not jump.
    const onLine = batch.list.contains(document.activeElement) && document.activeElement !== batch.list;
    if (batch.follow && !onLine) {
      batch.list.scrollTop = batch.list.scrollHeight;
      batch.autoScrollTop = batch.list.scrollTop;
    }
  }
  dirty.clear();
}

/** The progress bar and the counts, from the batch's tally of task states. */
function renderCounts(batch) {
  const { tally, count } = batch;
  const finished = tally.delivered + tally.failed + tally.cancelled;
  batch.progress.max = Math.max(batch.total, 1);
  batch.progress.value = finished;
  count.finished.textContent = `${finished} of ${batch.total} done`;
  for (const name of ['delivered', 'failed', 'retrying', 'queued', 'cancelled']) {
    count[name].textContent = `${tally[name]} ${name}`;
  }
  for (const name of HIDDEN_WHEN_ZERO) count[name].hidden = tally[name] === 0;
  renderElapsed(batch);
}

/** Writes the batch's elapsed time: the final one once done, else the time so far. */
export function renderElapsed(batch) {
  const ms = batch.done ? batch.elapsedMs : performance.now() - batch.started;
  batch.count.elapsed.textContent = `${seconds(ms)} elapsed`;
}

/** Zero tasks in every state. */
function tallyOf() {
  return { queued: 0, sending: 0, retrying: 0, delivered: 0, failed: 0, cancelled: 0 };
}
