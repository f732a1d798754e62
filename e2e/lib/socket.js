// A WebSocket client of the consumer's /ws, as the dashboard is: it reads the snapshot,
// then counts every event it is sent, so a test can check that each task arrived exactly once.

import WebSocket from 'ws';
import { named } from '../../static/js/common.js';
import { waitFor } from './wait.js';

/** The consumer's WebSocket URL for its base HTTP URL. */
export function wsUrl(baseUrl) {
  return `${baseUrl.replace(/^http/, 'ws')}/ws`;
}

/** A connected dashboard socket that records what it receives. */
export class DashboardSocket {
  constructor(url) {
    this.url = url;
    this.snapshots = [];
    /** @type {{ seq: number, task: { batchid: string, id: number, owner: string, priority: string } }[]} */
    this.events = [];
    this.errors = [];
  }

  /** Opens the socket and waits for the first snapshot. */
  static async connect(baseUrl) {
    const socket = new DashboardSocket(wsUrl(baseUrl));
    socket.ws = new WebSocket(socket.url);
    socket.ws.on('message', (data) => socket.receive(String(data)));
    socket.ws.on('error', (err) => socket.errors.push(err.message));
    await waitFor(`the first snapshot on ${socket.url}`, () => {
      if (socket.errors.length) throw new Error(socket.errors.join('; '));
      return socket.snapshots.length > 0;
    });
    return socket;
  }

  receive(text) {
    const message = JSON.parse(text);
    if (message.type === 'snapshot') this.snapshots.push({ ...message, recent: eventsOf(message) });
    else if (message.type === 'events') this.events.push(...eventsOf(message));
  }

  /** The events of one batch. */
  batch(batchid) {
    return this.events.filter((event) => event.task.batchid === batchid);
  }

  /** Waits until `count` events of `batchid` have arrived; returns them. */
  async waitForBatch(batchid, count, { timeoutMs = 30_000 } = {}) {
    await waitFor(`${count} events of batch ${batchid} on ${this.url}`,
      () => this.batch(batchid).length >= count, { timeoutMs });
    return this.batch(batchid);
  }

  close() {
    this.ws?.close();
  }
}

/**
 * The events of a snapshot (`recent`) or an events frame (`events`) as `{ seq, task }`,
 * read as the dashboard reads them (`named` in static/js/common.js); a message without
 * its `fields` list fails the test.
 */
function eventsOf(message) {
  if (!Array.isArray(message.fields)) throw new Error(`a ${message.type} message without fields`);
  return named(message.fields, message.type === 'snapshot' ? message.recent : message.events);
}

/** Tasks per priority, in the chart's order. */
export const PRIORITIES = ['Low', 'Moderate', 'Major', 'Critical'];

/** Counts `events` per priority, as `{ Low: n, Moderate: n, Major: n, Critical: n }`. */
export function countByPriority(events) {
  const counts = Object.fromEntries(PRIORITIES.map((p) => [p, 0]));
  for (const { task } of events) counts[task.priority] += 1;
  return counts;
}

/** Task ids that occur more than once in `events` (a task delivered twice). */
export function duplicates(events) {
  const seen = new Set();
  const twice = new Set();
  for (const { task } of events) {
    const key = `${task.batchid}/${task.id}`;
    if (seen.has(key)) twice.add(key);
    seen.add(key);
  }
  return [...twice];
}
