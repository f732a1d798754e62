// Reading a batch's Server-Sent Events with fetch rather than EventSource.
//
// Why not EventSource: it sends `Last-Event-ID` only on its own reconnections, never on
// a first connection. After a redelivery the page must reconnect to a stream the server
// ended (after its `done`) and receive only what follows the last event it saw, which
// takes that header on a new connection; fetch can send it. One reader for every case
// (first connection, reconnection, resumption) keeps a single code path.
//
// The parsing follows the HTML standard's event-stream rules (fields `event`, `data`,
// `id`, `retry`; comments; an event ends at a blank line), so a server that works with
// EventSource works with this.

/** Wait before reconnecting, in ms, until the server's `retry:` field says otherwise. */
const DEFAULT_RETRY_MS = 1_000;
/**
 * Events handled before the page gets a turn. One read may bring thousands of events (a
 * replayed batch, or a page that fell behind); EventSource would dispatch each as its own
 * task, and handling them all in one would freeze the page for as long.
 */
const EVENTS_PER_SLICE = 250;

/**
 * A followed event stream. `handlers`:
 * - `onOpen()`: connected (again);
 * - `onEvent(type, data, id)`: one event, its data as text;
 * - `onReconnecting(reason)`: the connection broke; it is tried again shortly;
 * - `onEnd()`: the server has nothing more (204), so the stream is over;
 * - `onLost(reason)`: the server refuses the stream (404 and other client errors).
 */
export class EventStream {
  constructor(url, handlers, lastEventId = '') {
    this.url = url;
    this.handlers = handlers;
    this.lastEventId = lastEventId;
    this.retryMs = DEFAULT_RETRY_MS;
    this.closed = false;
    this.controller = null;
    this.timer = 0;
    this.connect();
  }

  /** Stops following: the connection is aborted and never retried. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  /** One connection: its answer decides between events, the end, a loss or a retry. */
  async connect() {
    this.controller = new AbortController();
    const headers = { accept: 'text/event-stream' };
    if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
    let response;
    try {
      response = await fetch(this.url, { headers, cache: 'no-store', signal: this.controller.signal });
    } catch (err) {
      this.reconnect(`could not reach the producer (${err.message})`);
      return;
    }
    if (this.closed) return;
    if (response.status === 204) {
      this.handlers.onEnd?.();
    } else if (response.status >= 400 && response.status < 500) {
      const answer = await response.json().catch(() => null);
      this.handlers.onLost?.(answer?.error ?? `the producer answered ${response.status}`);
    } else if (!response.ok || !response.body) {
      this.reconnect(`the producer answered ${response.status}`);
    } else {
      this.handlers.onOpen?.();
      await this.read(response.body);
    }
  }

  /** Reads the body to its end, dispatching events; then reconnects unless closed. */
  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventParser(this.lastEventId);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
        if (parser.retryMs !== null) this.retryMs = parser.retryMs;
        await this.dispatch(parser.take());
      }
      this.lastEventId = parser.lastEventId;
      this.reconnect('the producer ended the stream');
    } catch (err) {
      this.lastEventId = parser.lastEventId;
      this.reconnect(`the connection broke (${err.message})`);
    }
  }

  /** Hands `events` to `onEvent`, letting the page run between slices of them. */
  async dispatch(events) {
    for (let i = 0; i < events.length; i += 1) {
      if (i > 0 && i % EVENTS_PER_SLICE === 0) await yieldToPage();
      if (this.closed) return;
      const { type, data, id } = events[i];
      this.lastEventId = id;
      this.handlers.onEvent?.(type, data, id);
    }
  }

  /** Connects again after the server's `retry` delay, unless closed. */
  reconnect(reason) {
    if (this.closed) return;
    this.handlers.onReconnecting?.(reason);
    this.timer = setTimeout(() => this.connect(), this.retryMs);
  }
}

/** Lets rendering and input run before going on (`scheduler.yield` where there is one). */
function yieldToPage() {
  if (globalThis.scheduler?.yield) return globalThis.scheduler.yield();
  return new Promise((resume) => { setTimeout(resume, 0); });
}

/** The event-stream format, fed text as it arrives; `take()` returns the events completed. */
class EventParser {
  constructor(lastEventId) {
    this.events = [];
    this.lastEventId = lastEventId;
    this.idBuffer = lastEventId;
    this.retryMs = null;
    this.pending = '';
    this.type = '';
    this.data = [];
  }

  /** Feeds the text received so far; complete lines are parsed, the rest kept. */
  push(text) {
    const lines = (this.pending + text).split(/\r\n|\r|\n/);
    // The last piece has no line end yet. A chunk ending in "\r" may be the first half
    // of "\r\n": keeping it pending costs nothing, the next chunk completes the line.
    this.pending = lines.pop();
    for (const line of lines) this.line(line);
  }

  /** One line: a field of the event being read, a comment, or its end. */
  line(line) {
    if (line === '') {
      this.end();
      return;
    }
    if (line.startsWith(':')) return; // a comment (the server's keep-alive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.idBuffer = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
  }

  /** The events completed since the last call, each `{ type, data, id }`. */
  take() {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** A blank line: the event so far is complete. */
  end() {
    this.lastEventId = this.idBuffer;
    const [type, data] = [this.type || 'message', this.data];
    this.type = '';
    this.data = [];
    if (data.length) this.events.push({ type, data: data.join('\n'), id: this.lastEventId });
  }
}
