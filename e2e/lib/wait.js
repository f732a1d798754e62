// Waiting on conditions, never on the clock: every wait polls a condition and gives up
// after a timeout with a message saying what it waited for and what it last saw.

import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until it returns a truthy value, and returns that value.
 * `probe` may throw while the condition is not yet reachable (a connection refused,
 * say); the last error or value is quoted in the timeout message.
 *
 * @param {string} what  what is awaited, for the error message
 * @param {() => Promise<any> | any} probe
 * @param {{ timeoutMs?: number, intervalMs?: number }} [options]
 */
export async function waitFor(what, probe, { timeoutMs = 15_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'nothing yet';
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = `last value: ${JSON.stringify(value)}`;
    } catch (err) {
      last = `last error: ${err.message}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${last})`);
    }
    // A poll interval, not a synchronisation sleep: the condition decides when we go on.
    await sleep(intervalMs);
  }
}

/** GETs `url` and parses the JSON body; throws on a non-2xx answer. */
export async function getJson(url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}
