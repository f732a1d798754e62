// Standard Webhooks signing (https://www.standardwebhooks.com), written independently of
// the Rust implementation so the tests check the consumer against the specification.

import { createHmac, randomBytes, randomUUID } from 'node:crypto';

/** A fresh secret, `whsec_` + base64 of 32 random bytes. */
export function newSecret() {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * The three Standard Webhooks headers for `body`:
 * signature `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`, keyed with the
 * base64-decoded part of the secret after `whsec_`.
 */
export function signHeaders(secret, body, { id = `msg_${randomUUID()}`, timestamp } = {}) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const ts = String(timestamp ?? Math.floor(Date.now() / 1000));
  const mac = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': ts,
    'webhook-signature': `v1,${mac}`,
  };
}

/** POSTs `task` to `url` as a signed webhook; returns `{ status, body }`. */
export async function postSignedTask(url, secret, task) {
  const body = JSON.stringify(task);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signHeaders(secret, body) },
    body,
    signal: AbortSignal.timeout(5_000),
  });
  return { status: response.status, body: await response.text() };
}
