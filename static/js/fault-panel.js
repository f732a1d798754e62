// The dashboard's fault panel (only with the consumer's --fault-injection): one small
// form per fault, each sending just its own field to `PUT /api/faults` (the others keep
// their value), a button that clears them all, and the counters of what was injected,
// every replica together. The figures come from `GET /api/faults`, which the dashboard
// polls once a second and hands to `show`.

/**
 * Wires the panel under `root`; returns `{ show(answer) }`, which writes an answer of
 * `/api/faults` (`{ settings, injected }`) into it.
 */
export function createFaultPanel(root) {
  const message = root.querySelector('#fault-message');
  const say = (text, kind = 'info') => {
    message.textContent = text;
    message.dataset.kind = kind;
  };
  const panel = {
    show(answer) {
      for (const [field, value] of Object.entries(answer.settings ?? {})) {
        const now = root.querySelector(`[data-now="${field}"]`);
        if (now) now.textContent = String(value);
      }
      const injected = answer.injected ?? {};
      for (const name of ['refused', 'dropped', 'duplicates']) {
        root.querySelector(`#fault-${name}`).textContent = Number(injected[name] ?? 0).toLocaleString();
      }
    },
  };
  const send = async (method, body, done) => {
    try {
      panel.show(await faultsRequest(method, body));
      say(done);
    } catch (err) {
      say(err.message, 'error');
    }
  };
  for (const form of root.querySelectorAll('form.fault')) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const field = form.dataset.field;
      const input = form.elements[field];
      const value = Number(input.value);
      send('PUT', { [field]: value }, `Set ${field} to ${value}.`);
    });
  }
  root.querySelector('#fault-clear').addEventListener('click', () => {
    send('DELETE', undefined, 'Every fault cleared; the counts stay.');
  });
  return panel;
}

/**
 * Sends `method /api/faults` as JSON (the consumer refuses a change sent as anything
 * else, so a foreign page cannot make one without a CORS preflight); returns the
 * answer, or throws with the consumer's own `error`.
 */
export async function faultsRequest(method = 'GET', body = undefined) {
  const init = { method, headers: { accept: 'application/json' }, cache: 'no-store' };
  if (method !== 'GET') {
    init.headers['content-type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch('/api/faults', init);
  } catch (err) {
    throw new Error(`Could not reach the consumer (${err.message}); is it running?`);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(answer?.error ?? `The consumer answered ${response.status} ${response.statusText}`);
  }
  return answer ?? {};
}
