// Recent batches (`GET /batches`, newest first, with counts), in a collapsible section
// from which a batch is reopened; and whether deliveries are durable, from the same
// answer's `durable`, said beside the form.

import { getJson } from './api.js';
import { byId } from './common.js';
import { button, clockTime, element } from './format.js';

/** What the page says about where deliveries are kept (contract12.md). */
const DURABILITY = {
  true: 'Deliveries are kept in Redis: they survive a producer restart.',
  false: 'Deliveries are kept in this process\'s memory only: a producer restart loses the batch.',
};

const el = {
  durability: byId('durability'),
  details: byId('recent'),
  status: byId('recent-status'),
  refresh: byId('recent-refresh'),
  list: byId('recent-list'),
};

/** The listed batches' summaries, by id, for the Open buttons. */
const summaries = new Map();
/** Counts the reads asked for, so an older answer never replaces a newer one. */
let asked = 0;

/**
 * Reads the list once now (the durability note needs it) and again whenever the section
 * is opened or Refresh is pressed. `onOpen(summary)` reopens a batch.
 */
export function initRecent(onOpen) {
  el.details.addEventListener('toggle', () => {
    if (el.details.open) refreshRecent();
  });
  el.refresh.addEventListener('click', refreshRecent);
  // One listener for every Open button (delegation): the list is rebuilt on each read.
  el.list.addEventListener('click', (event) => {
    const open = event.target instanceof Element ? event.target.closest('button[data-batchid]') : null;
    const summary = open && summaries.get(open.dataset.batchid);
    if (summary) onOpen(summary);
  });
  refreshRecent();
}

/** Reads `GET /batches` again; the list is redrawn only while the section is open. */
export async function refreshRecent() {
  asked += 1;
  const ask = asked;
  el.status.textContent = 'Reading the recent batches…';
  try {
    const answer = await getJson('/batches');
    if (ask !== asked) return;
    el.durability.textContent = typeof answer.durable === 'boolean' ? DURABILITY[answer.durable] : '';
    showList(Array.isArray(answer.batches) ? answer.batches : []);
  } catch (err) {
    if (ask !== asked) return;
    el.status.textContent = `Could not read the recent batches: ${err.message}`;
  }
}

/** Whether the section is open (a finished or restarted batch then refreshes it). */
export function recentIsOpen() {
  return el.details.open;
}

/**
 * Rebuilds the list (it is short: the batches the producer keeps) and says how many. A
 * reader on an Open button stays on that batch's new button: rebuilt from under them,
 * the focus fell back to the page, and an Enter pressed just after a refresh opened
 * nothing (seen as a failed keyboard test in e2e/redeliver.test.js).
 */
function showList(batches) {
  const focused = el.list.contains(document.activeElement)
    ? document.activeElement.closest('button[data-batchid]')?.dataset.batchid
    : undefined;
  summaries.clear();
  for (const summary of batches) summaries.set(String(summary.batchid), summary);
  el.list.replaceChildren(...batches.map(entry));
  if (focused !== undefined) {
    const again = [...el.list.querySelectorAll('button[data-batchid]')].find((b) => b.dataset.batchid === focused);
    again?.focus();
  }
  el.status.textContent = batches.length === 0
    ? 'No batch yet.'
    : `${batches.length} ${batches.length === 1 ? 'batch' : 'batches'}, newest first.`;
}

/** "<id> · started <time> · 40 tasks · done: 38 delivered, 2 failed" and an Open button. */
function entry(summary) {
  const id = String(summary.batchid);
  const item = element('li', `recent-batch ${summary.state === 'done' ? 'done' : 'running'}`);
  const text = element('span', 'recent-text');
  text.append(element('code', '', id), ` · started ${clockTime(summary.created_at)} · ${summary.total} tasks · `,
    element('span', 'recent-state', `${summary.state}: ${countsText(summary)}`));
  const open = button('open', 'Open');
  open.dataset.batchid = id;
  open.setAttribute('aria-label', `Open batch ${id}`);
  item.append(text, open);
  return item;
}

/** "3 queued, 2 in flight, 5 delivered, 0 failed": delivered and failed always, the rest when not zero. */
function countsText(summary) {
  const parts = [];
  for (const name of ['queued', 'in_flight', 'delivered', 'failed', 'cancelled']) {
    const n = Number(summary[name] ?? 0);
    if (n > 0 || name === 'delivered' || name === 'failed') parts.push(`${n} ${name.replace('_', ' ')}`);
  }
  return parts.join(', ');
}
