// How the producer page writes things: elements with text (never HTML), HTTP statuses in
// words, durations and times.

/** Reason phrases for the status codes a webhook receiver usually answers. */
const REASONS = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  408: 'Request Timeout', 409: 'Conflict', 413: 'Content Too Large', 422: 'Unprocessable Content',
  429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** "503 Service Unavailable", or "no answer" when there was no HTTP status. */
export function httpStatus(code) {
  if (code === null || code === undefined) return 'no answer';
  return REASONS[code] ? `${code} ${REASONS[code]}` : String(code);
}

/** "1.5 s". */
export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Options of a clock time to the millisecond ("14:03:07.125"). */
const CLOCK = { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3, hour12: false };

/**
 * A Unix time in ms as the reader's local time to the millisecond, with the date before
 * it unless it is today.
 */
export function clockTime(unixMs) {
  if (typeof unixMs !== 'number') return '?';
  const when = new Date(unixMs);
  const time = when.toLocaleTimeString([], CLOCK);
  const today = when.toDateString() === new Date().toDateString();
  return today ? time : `${when.toLocaleDateString()} ${time}`;
}

/** A new element with a class and text content (never HTML). */
export function element(tag, className = '', text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** A button of type "button" (never submitting a form) with a class and text. */
export function button(className, text) {
  const node = element('button', className, text);
  node.type = 'button';
  return node;
}
