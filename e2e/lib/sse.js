// Follows a producer batch's Server-Sent Events (`event: task` … `event: done`), so a test
// that waits for tasks elsewhere can say *why* they never came: the producer's own account
// of each failed delivery.

/**
 * Reads `eventsUrl` until `event: done`; resolves to `{ done, failures }` where `done` is
 * the final summary (`{ delivered, failed, cancelled, elapsed_ms }`) and `failures` the
 * data of every `task` event whose state is "failed".
 */
export async function followBatch(eventsUrl, { timeoutMs = 60_000 } = {}) {
  const response = await fetch(eventsUrl, {
    headers: { accept: 'text/event-stream' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`GET ${eventsUrl} answered ${response.status}: ${await response.text()}`);
  const failures = [];
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (frame.event === 'done') {
        await response.body.cancel().catch(() => {});
        return { done: JSON.parse(frame.data), failures };
      }
      if (frame.event === 'task') {
        const data = JSON.parse(frame.data);
        if (data.state === 'failed') failures.push(data);
      }
    }
  }
  throw new Error(`${eventsUrl} ended without an "event: done"`);
}

function parseFrame(text) {
  const frame = { event: 'message', data: '' };
  for (const line of text.split('\n')) {
    if (line.startsWith('event:')) frame.event = line.slice(6).trim();
    else if (line.startsWith('data:')) frame.data += line.slice(5).trimStart();
  }
  return frame;
}
