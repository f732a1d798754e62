// The producer's JSON API as the page calls it: every answer parsed, every failure an
// Error whose message is the server's own `error` (or says the producer is unreachable).

/**
 * POSTs `body` as JSON (the producer refuses any state-changing request that is not
 * `application/json`, so a foreign page cannot send one without a CORS preflight);
 * returns the JSON answer, or throws with the server's `error`. The error carries the
 * whole answer as `err.answer` (a 409 of a redelivery names the tasks in `in_flight`).
 */
export async function postJson(url, body) {
  return request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** GETs `url`; returns the JSON answer, or throws with the server's `error`. */
export async function getJson(url) {
  return request(url, { headers: { accept: 'application/json' }, cache: 'no-store' });
}

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new Error(`Could not reach the producer (${err.message}); is it running?`);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const err = new Error(answer?.error ?? `The producer answered ${response.status} ${response.statusText}`);
    err.status = response.status;
    err.answer = answer;
    throw err;
  }
  return answer ?? {};
}
