// The consumer's dashboard: a WebSocket client of `/ws` that keeps the bar chart, the
// totals and the recent-task list in step with the server.
//
// The server sends a `snapshot` (which replaces everything) first on every connection
// and whenever this client must resync, then `events` frames; both carry events as
// arrays of values under a list of their `fields`, made into objects by `named`.
// Frames can arrive thousands of events a second, so a frame only updates `state` and
// queues the new tasks; the page is redrawn at most once per animation frame, and the
// list is updated incrementally and capped. Task fields are untrusted text: they reach
// the page through text nodes only, never as HTML.
//
// Once a second it also reads the counters no event carries, every replica together:
// retries answered `duplicate` (`/api/stats`) and, with the fault panel, what fault
// injection did (`/api/faults`), for the events-per-second chart of the last minute.
//
// For tests: `window.taskhooks = { chart, rateChart, state, counted }`, the live Chart.js
// instances, `state.totals` / `state.connected` / `state.duplicates`, and the counters as
// last read (`counted.refused` is null until the first read: the chart counts from there).

import { byId, followThisHost, named, parseJson, renderScheduler } from './common.js';
import { createFaultPanel, faultsRequest } from './fault-panel.js';
import { createRateChart, pushRate } from './rate-chart.js';

/** Priorities in display order: chart bars, totals, CSS classes. */
const PRIORITIES = ['Low', 'Moderate', 'Major', 'Critical'];
/** Most tasks shown in the list; older ones drop off its end. */
const LIST_CAP = 200;
/** First reconnect delay, in ms; doubled after every failed try. */
const RECONNECT_MIN_MS = 500;
/** Longest reconnect delay, in ms. */
const RECONNECT_MAX_MS = 5000;
/** Seconds the events-per-second figure averages over. */
const RATE_WINDOW_S = 5;
/** Latency samples kept for the percentiles (the most recent ones). */
const LATENCY_SAMPLES = 200;

const el = {
  connection: byId('connection'),
  rate: byId('rate'),
  latency: byId('latency'),
  empty: byId('empty'),
  tasks: byId('tasks'),
  totals: Object.fromEntries(PRIORITIES.map((p) => [p, byId(`total-${p}`)])),
  totalAll: byId('total-all'),
  duplicates: byId('duplicates'),
};

/** What the page shows, as last told by the server. */
const state = { totals: zeroTotals(), connected: false, seq: 0, duplicates: 0 };

/** What changed since the last render. */
const pending = {
  /** The list from a snapshot (newest first), which replaces the shown one. */
  reset: null,
  /** Events received since (oldest first); only the newest LIST_CAP are ever drawn. */
  added: [],
  latency: false,
};

const rate = { count: 0, buckets: [] };
const latency = { samples: new Float64Array(LATENCY_SAMPLES), size: 0, next: 0, last: 0 };
const scheduleRender = renderScheduler(render);

const chart = createChart(byId('chart'));
const rateChart = createRateChart(byId('rate-chart'));
const faultRoot = document.getElementById('faults');
const faultPanel = faultRoot ? createFaultPanel(faultRoot) : null;
/** The last counts read, to turn them into counts per second; null before the first. */
const counted = { duplicates: null, refused: null, reading: false };
window.taskhooks = { chart, rateChart, state, counted };

followThisHost();
connect(RECONNECT_MIN_MS);
setInterval(tickRate, 1000);

// ---- Connection ----

/** Opens the socket; on close, tries again after `delay` ms, doubling up to the maximum. */
function connect(delay) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  let nextDelay = delay;
  // Connected once the first snapshot arrives, not on `open`: a server that cannot
  // read its store accepts the socket and closes it at once.
  socket.addEventListener('message', (message) => {
    const kind = onFrame(message.data);
    // Only a snapshot proves the server is really serving us: reset the backoff then,
    // not on `open`, so a server that accepts and closes at once is not hammered.
    if (kind === 'snapshot') nextDelay = RECONNECT_MIN_MS;
  });
  socket.addEventListener('close', (event) => {
    showConnection('closed', event.reason, nextDelay);
    setTimeout(() => connect(Math.min(nextDelay * 2, RECONNECT_MAX_MS)), nextDelay);
  });
}

/**
 * The connection badge, in words and colour: `open` (live), `degraded` (connected, but
 * the consumer has lost Redis: no events until it is back) or `closed` (reconnecting).
 * The reason is shown in short and in full in the tooltip.
 */
function showConnection(kind, reason = '', retryMs = 0) {
  state.connected = kind !== 'closed';
  el.connection.dataset.state = kind;
  const short = reason.split(/[:(]/)[0].trim();
  if (kind === 'open') {
    el.connection.textContent = 'Connected';
    el.connection.title = 'Receiving tasks live';
  } else if (kind === 'degraded') {
    el.connection.textContent = 'Connected — Redis unavailable, no tasks arriving';
    el.connection.title = reason;
  } else {
    el.connection.textContent = short ? `Reconnecting… (${short})` : 'Reconnecting…';
    el.connection.title = `Connection lost${reason ? ` (${reason})` : ''}; trying again in ${retryMs / 1000} s`;
  }
}

/**
 * Applies one text frame; returns its type. The frames' shapes (snapshot, events,
 * status) are pinned on the server by the test
 * `ws::feed::tests::the_messages_the_dashboard_reads_keep_their_shape`.
 */
function onFrame(text) {
  const message = parseJson(text, 'the dashboard got a frame');
  if (message === null) return null;
  if (message.type === 'snapshot') {
    applySnapshot({ ...message, recent: named(message.fields, message.recent ?? []) });
    showConnection('open');
  } else if (message.type === 'events') {
    applyEvents(named(message.fields, message.events ?? []));
  } else if (message.type === 'status' && message.status === 'unavailable') {
    showConnection('degraded', String(message.error ?? ''));
  }
  return message.type;
}

// ---- State ----

function applySnapshot({ seq = 0, totals = {}, recent = [] }) {
  state.seq = seq;
  state.totals = zeroTotals();
  for (const p of PRIORITIES) state.totals[p] = Number(totals[p]) || 0;
  pending.reset = recent.slice(0, LIST_CAP);
  pending.added = [];
  scheduleRender();
}

function applyEvents(events) {
  const now = Date.now();
  for (const event of events) {
    // The server already skips what the snapshot held; this mirrors it.
    if (typeof event.seq === 'number' && event.seq <= state.seq) continue;
    if (typeof event.seq === 'number') state.seq = event.seq;
    const task = event.task ?? {};
    if (Object.hasOwn(state.totals, task.priority)) state.totals[task.priority] += 1;
    if (typeof task.created_at === 'number') recordLatency(now - task.created_at);
    rate.count += 1;
    pending.added.push(event);
  }
  // Keep the queue bounded while frames are not being drawn (a hidden tab):
  // everything but the newest LIST_CAP would be trimmed off the list anyway.
  if (pending.added.length > 2 * LIST_CAP) pending.added.splice(0, pending.added.length - LIST_CAP);
  scheduleRender();
}

function recordLatency(ms) {
  const value = Math.max(0, ms); // clocks of two machines may disagree a little
  latency.samples[latency.next] = value;
  latency.next = (latency.next + 1) % LATENCY_SAMPLES;
  latency.size = Math.min(latency.size + 1, LATENCY_SAMPLES);
  latency.last = value;
  pending.latency = true;
}

function tickRate() {
  const accepted = rate.count;
  rate.buckets.push(accepted);
  rate.count = 0;
  if (rate.buckets.length > RATE_WINDOW_S) rate.buckets.shift();
  const perSecond = rate.buckets.reduce((a, b) => a + b, 0) / rate.buckets.length;
  el.rate.textContent = `${Math.round(perSecond).toLocaleString()} /s`;
  readCounts().then(([duplicates, refused]) => pushRate(rateChart, [accepted, duplicates, refused]));
}

/**
 * Reads the duplicates (and, with the fault panel, what was injected) and returns how
 * many of each arrived since the last read; [0, 0] while a read is still under way, when
 * it fails, or while the socket is down (the consumer is then most likely gone too: no
 * request is sent to add a refused connection to the console's); the next read catches up.
 */
async function readCounts() {
  if (counted.reading || !state.connected) return [0, 0];
  counted.reading = true;
  try {
    const answer = faultPanel ? await faultsRequest() : await getStats();
    const duplicates = Number(faultPanel ? answer.injected?.duplicates : answer.duplicates) || 0;
    const refused = Number(answer.injected?.refused) || 0;
    if (faultPanel) faultPanel.show(answer);
    state.duplicates = duplicates;
    el.duplicates.textContent = duplicates.toLocaleString();
    const since = (now, before) => (before === null ? 0 : Math.max(0, now - before));
    const delta = [since(duplicates, counted.duplicates), since(refused, counted.refused)];
    Object.assign(counted, { duplicates, refused });
    return delta;
  } catch (err) {
    console.debug('the counters could not be read:', err.message);
    return [0, 0];
  } finally {
    counted.reading = false;
  }
}

async function getStats() {
  const response = await fetch('/api/stats', { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) throw new Error(`/api/stats answered ${response.status}`);
  return response.json();
}

// ---- Rendering, at most once per animation frame ----

function render() {
  renderList();
  renderTotals();
  renderChart();
  if (pending.latency) renderLatency();
}

function renderList() {
  if (pending.reset) {
    const fragment = document.createDocumentFragment();
    for (const event of pending.reset) fragment.append(taskItem(event));
    el.tasks.replaceChildren(fragment);
    pending.reset = null;
  }
  const added = pending.added;
  if (added.length > 0) {
    const fragment = document.createDocumentFragment();
    const oldest = Math.max(0, added.length - LIST_CAP);
    for (let i = added.length - 1; i >= oldest; i -= 1) fragment.append(taskItem(added[i]));
    el.tasks.prepend(fragment);
    pending.added = [];
    while (el.tasks.childElementCount > LIST_CAP) el.tasks.lastElementChild.remove();
  }
}

/** One list item: "Batch ID … — Task ID … — Owner … — Priority …", as text nodes. */
function taskItem(event) {
  const task = event?.task ?? {};
  const li = document.createElement('li');
  li.append(
    label('Batch ID'), ` ${text(task.batchid)} — `,
    label('Task ID'), ` ${text(task.id)} — `,
    label('Owner'), ` ${text(task.owner)} — `,
    label('Priority'), ' ', priorityBadge(task.priority),
  );
  return li;
}

function label(words) {
  const span = document.createElement('span');
  span.className = 'label';
  span.textContent = words;
  return span;
}

function priorityBadge(priority) {
  const span = document.createElement('span');
  const known = PRIORITIES.includes(priority);
  span.className = known ? `priority priority-${priority.toLowerCase()}` : 'priority';
  span.textContent = text(priority);
  return span;
}

function text(value) {
  return value === undefined || value === null ? '?' : String(value);
}

function renderTotals() {
  let all = 0;
  for (const p of PRIORITIES) {
    all += state.totals[p];
    el.totals[p].textContent = state.totals[p].toLocaleString();
  }
  el.totalAll.textContent = all.toLocaleString();
  el.empty.hidden = all > 0 || el.tasks.childElementCount > 0;
}

function renderChart() {
  if (!chart) return;
  const bars = chart.data.datasets[0].data;
  PRIORITIES.forEach((p, i) => { bars[i] = state.totals[p]; });
  // Animating a hidden tab is wasted work; its bars are simply set.
  chart.update(document.hidden ? 'none' : undefined);
}

function renderLatency() {
  pending.latency = false;
  const sorted = latency.samples.slice(0, latency.size).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  el.latency.textContent =
    `last\u00a0${duration(latency.last)} · p50\u00a0${duration(at(0.5))} · p95\u00a0${duration(at(0.95))}`;
}

/** A duration, its number and unit kept on one line. */
function duration(ms) {
  return ms < 1000 ? `${Math.round(ms)}\u00a0ms` : `${(ms / 1000).toFixed(1)}\u00a0s`;
}

// ---- Chart ----

/** The bar chart, coloured from the stylesheet's --priority-* properties. */
function createChart(canvas) {
  const { Chart } = window;
  if (!Chart) {
    console.error('Chart.js did not load from /static/vendor/chart.js/; the chart is left out');
    return null;
  }
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim();
  Chart.defaults.font.family = colour('--font') || Chart.defaults.font.family;
  Chart.defaults.color = colour('--muted') || Chart.defaults.color;
  const chart = new Chart(canvas, {
    type: 'bar',
    data: {
      labels: PRIORITIES,
      datasets: [{
        label: 'Tasks',
        data: PRIORITIES.map(() => 0),
        backgroundColor: PRIORITIES.map((p) => colour(`--priority-${p.toLowerCase()}`)),
        borderRadius: 4,
      }],
    },
    options: chartOptions(colour('--text')),
  });
  // Lets a test wait for the bars to settle before a screenshot.
  Object.defineProperty(chart, 'animating', { get: () => Chart.animator.running(chart) });
  return chart;
}

function chartOptions(titleColour) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: { duration: 300 },
    interaction: { mode: 'index', intersect: false },
    plugins: {
      title: {
        display: true, text: 'Tasks Priority Matrix', color: titleColour,
        font: { size: 16, weight: 'bold' },
      },
      legend: { display: false },
      tooltip: { mode: 'index', intersect: false },
    },
    scales: {
      x: { title: { display: true, text: 'Priority' } },
      y: { beginAtZero: true, title: { display: true, text: 'Total' }, ticks: { precision: 0 } },
    },
  };
}

// ---- Helpers ----

function zeroTotals() {
  return Object.fromEntries(PRIORITIES.map((p) => [p, 0]));
}
