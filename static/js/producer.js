// The producer page: Produce Tasks starts a batch (POST /producetasks), and each batch
// gets a panel fed by its Server-Sent Events stream.
//
// The browser reconnects an EventSource by itself and sends Last-Event-ID; the server
// replays what was missed. Lines are therefore keyed by task index: an event updates
// its task's line, it never appends a second one. Several batches may run at once.
// Task fields are untrusted text and reach the page through text nodes only.

import { byId, parseJson, renderScheduler } from './common.js';

/** How often the elapsed time of running batches is redrawn, in ms. */
const ELAPSED_TICK_MS = 250;
/** How close to the bottom (px) a list must be scrolled to keep following new lines. */
const FOLLOW_SLACK_PX = 16;
/** States after which a task changes no more. */
const FINAL_STATES = ['delivered', 'failed', 'cancelled'];
/** Reason phrases for the status codes a webhook receiver usually answers. */
const REASONS = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  408: 'Request Timeout', 409: 'Conflict', 413: 'Content Too Large', 422: 'Unprocessable Content',
  429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

const el = {
  form: byId('produce-form'),
  min: byId('min'),
  max: byId('max'),
  pace: byId('pace'),
  produce: byId('produce'),
  error: byId('form-error'),
  batches: byId('batches'),
};

/** Batches whose counts, progress or scroll position must be redrawn. */
const dirty = new Set();
/** Batches still running, whose elapsed time ticks. */
const running = new Set();
const scheduleRender = renderScheduler(render);

el.form.addEventListener('submit', (event) => {
  event.preventDefault();
  produce();
});
// The browser's own checks (min 1, whole numbers…) block a submit before it is sent and
// say why themselves; an older answer from the server would only contradict them.
el.form.addEventListener('invalid', () => { el.error.textContent = ''; }, true);
setInterval(() => running.forEach(renderElapsed), ELAPSED_TICK_MS);

// ---- Starting and stopping a batch ----

async function produce() {
  el.error.textContent = '';
  el.produce.disabled = true;
  try {
    const body = { min: Number(el.min.value), max: Number(el.max.value), pace_ms: Number(el.pace.value) };
    const answer = await postJson('/producetasks', body);
    startBatch(answer);
  } catch (err) {
    el.error.textContent = err.message;
  } finally {
    el.produce.disabled = false;
  }
}

/**
 * POSTs `body` as JSON (the producer refuses any state-changing request that is not
 * `application/json`, so a foreign page cannot send one without a CORS preflight);
 * returns the JSON answer, or throws with the server's `error`.
 */
async function postJson(url, body) {
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(`Could not reach the producer (${err.message}); is it running?`);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(answer?.error ?? `The producer answered ${response.status} ${response.statusText}`);
  }
  return answer ?? {};
}

async function stop(batch) {
  batch.stopButton.disabled = true;
  batch.alert.textContent = '';
  try {
    await postJson(batch.stopUrl, {});
    if (!batch.done) batch.status.textContent = 'Stopping…';
  } catch (err) {
    batch.alert.textContent = `Could not stop the batch: ${err.message}`;
    batch.stopButton.disabled = batch.done;
  }
}

// ---- One batch: its panel and its event stream ----

function startBatch({ batchid, total, events_url: eventsUrl, stop_url: stopUrl }) {
  const batch = createPanel(String(batchid), Number(total));
  batch.stopUrl = stopUrl;
  batch.stopButton.addEventListener('click', () => stop(batch));
  el.batches.prepend(batch.panel);
  running.add(batch);

  const source = new EventSource(eventsUrl);
  batch.source = source;
  source.addEventListener('open', () => {
    if (!batch.done) batch.status.textContent = 'Running…';
  });
  source.addEventListener('task', (event) => onTask(batch, parseJson(event.data, 'the producer sent an event')));
  source.addEventListener('done', (event) => onDone(batch, parseJson(event.data, 'the producer sent an event')));
  source.addEventListener('error', () => onStreamError(batch));
}

/** Builds a batch's panel; returns the batch with handles on its parts. */
function createPanel(batchid, total) {
  const panel = element('section', 'card batch');
  panel.dataset.batchid = batchid;

  const heading = element('h2', '', 'Batch ');
  heading.append(element('code', '', batchid));
  const stopButton = element('button', 'stop', 'Stop');
  stopButton.type = 'button';
  const head = element('div', 'batch-head');
  head.append(heading, stopButton);

  const progress = element('progress');
  progress.max = Math.max(total, 1);
  progress.value = 0;
  progress.setAttribute('aria-label', `Tasks finished in batch ${batchid}`);

  const counts = element('p', 'counts');
  const count = {};
  for (const name of ['finished', 'delivered', 'failed', 'retrying', 'cancelled', 'elapsed']) {
    count[name] = element('span', name);
    counts.append(count[name], ' ');
  }

  const status = element('p', 'batch-status', 'Starting…');
  status.setAttribute('role', 'status');
  const alert = element('p', 'alert');
  alert.setAttribute('role', 'alert');
  // The log is a scroll region the keyboard can reach (style.css, "Focus"), and not a
  // live region: a batch may have 10,000 lines, far more than anyone can listen to.
  // The status line above it (role="status") announces the batch starting and ending.
  const list = element('ol', 'lines scroll-region');
  list.tabIndex = 0;
  list.setAttribute('aria-label', `Delivery log of batch ${batchid}`);

  panel.append(head, progress, counts, status, alert, list);
  const batch = {
    batchid, total, panel, stopButton, progress, count, status, alert, list,
    lines: new Map(), states: new Map(), tally: tallyOf(), started: performance.now(),
    elapsedMs: 0, follow: true, autoScrollTop: 0, done: false, source: null, stopUrl: '',
  };
  // Follow new lines until the reader scrolls up; follow again once they are back at
  // the bottom. Our own jumps to the bottom also fire 'scroll', often after more lines
  // arrived (so not at the bottom any more): only a position above our last jump is the
  // reader's doing.
  list.addEventListener('scroll', () => {
    if (list.scrollTop + list.clientHeight >= list.scrollHeight - FOLLOW_SLACK_PX) batch.follow = true;
    else if (list.scrollTop < batch.autoScrollTop - 1) batch.follow = false;
  });
  renderCounts(batch);
  return batch;
}

/** `event: task`: creates or updates the line of task `index`. */
function onTask(batch, data) {
  if (!data || typeof data.index !== 'number') return;
  const previous = batch.states.get(data.index);
  if (previous) batch.tally[previous] -= 1;
  batch.tally[data.state] = (batch.tally[data.state] ?? 0) + 1;
  batch.states.set(data.index, data.state);
  if (typeof data.total === 'number') batch.total = data.total;

  let line = batch.lines.get(data.index);
  if (!line) {
    line = element('li');
    batch.lines.set(data.index, line);
    batch.list.append(line);
  }
  fillLine(line, data);
  markDirty(batch);
}

/**
 * "i out of n — <status> — task <id> · <owner> · <priority>", coloured by state and
 * always in words. The batch id is the panel's heading; the whole task, as sent, is
 * the line's tooltip.
 */
function fillLine(line, data) {
  const known = ['sending', ...FINAL_STATES, 'retrying'].includes(data.state);
  line.className = known ? data.state : '';
  line.title = JSON.stringify(data.task ?? null);
  const task = data.task ?? {};
  const status = element('span', 'status', statusText(data));
  const summary = `task ${task.id ?? '?'} · ${task.owner ?? '?'} · ${task.priority ?? '?'}`;
  line.replaceChildren(`${data.index} out of ${data.total ?? '?'} — `, status, ` — ${summary}`);
}

function statusText({ state, attempt, status, error, retry_in_ms: retryInMs }) {
  switch (state) {
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

/** `event: done`: the final status line; the stream and the Stop button are finished. */
function onDone(batch, data) {
  batch.source.close();
  batch.done = true;
  running.delete(batch);
  batch.stopButton.disabled = true;
  const { delivered = 0, failed = 0, cancelled = 0, elapsed_ms: elapsedMs } = data ?? {};
  const word = cancelled > 0 ? 'Stopped' : 'Complete';
  const tail = cancelled > 0 ? `, ${cancelled} cancelled` : '';
  batch.status.textContent = `${word} — ${delivered} delivered, ${failed} failed${tail}`;
  batch.status.className = `batch-status ${cancelled > 0 ? 'stopped' : failed > 0 ? 'with-failures' : 'complete'}`;
  batch.elapsedMs = typeof elapsedMs === 'number' ? elapsedMs : performance.now() - batch.started;
  renderElapsed(batch);
  markDirty(batch);
}

/** The browser retries by itself unless the stream is gone for good (CLOSED). */
function onStreamError(batch) {
  if (batch.done) return;
  if (batch.source.readyState === EventSource.CLOSED) {
    running.delete(batch);
    batch.stopButton.disabled = true;
    batch.status.textContent = 'Lost — the producer no longer serves this batch\'s events (was it restarted?)';
    batch.status.className = 'batch-status broken';
  } else {
    batch.status.textContent = 'Reconnecting to the batch\'s events…';
  }
}

// ---- Rendering, at most once per animation frame ----

function markDirty(batch) {
  dirty.add(batch);
  scheduleRender();
}

function render() {
  for (const batch of dirty) {
    renderCounts(batch);
    if (batch.follow) {
      batch.list.scrollTop = batch.list.scrollHeight;
      batch.autoScrollTop = batch.list.scrollTop;
    }
  }
  dirty.clear();
}

function renderCounts(batch) {
  const { tally, count } = batch;
  const finished = tally.delivered + tally.failed + tally.cancelled;
  batch.progress.max = Math.max(batch.total, 1);
  batch.progress.value = finished;
  count.finished.textContent = `${finished} of ${batch.total} done`;
  count.delivered.textContent = `${tally.delivered} delivered`;
  count.failed.textContent = `${tally.failed} failed`;
  count.retrying.textContent = `${tally.retrying} retrying`;
  count.cancelled.textContent = `${tally.cancelled} cancelled`;
  count.cancelled.hidden = tally.cancelled === 0;
  renderElapsed(batch);
}

function renderElapsed(batch) {
  const ms = batch.done ? batch.elapsedMs : performance.now() - batch.started;
  batch.count.elapsed.textContent = `${seconds(ms)} elapsed`;
}

// ---- Helpers ----

function tallyOf() {
  return { sending: 0, retrying: 0, delivered: 0, failed: 0, cancelled: 0 };
}

function httpStatus(code) {
  if (code === null || code === undefined) return 'no answer';
  return REASONS[code] ? `${code} ${REASONS[code]}` : String(code);
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A new element with a class and text content (never HTML). */
function element(tag, className = '', text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}
