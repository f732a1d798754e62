// HTTPS targets work (issue 3): `producer send` delivers signed webhooks to a receiver
// behind TLS whose certificate chains to a test CA that the producer is told to trust
// (SSL_CERT_FILE, which the producer's certificate verifier reads like OpenSSL does), and
// refuses the same receiver when it does not trust that CA: verification is real.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Services } from './lib/services.js';
import { newSecret, signHeaders } from './lib/signing.js';

const COUNT = 20;
const services = new Services('https');
const dir = mkdtempSync(join(tmpdir(), 'taskhooks-tls-'));
const secret = newSecret();
/** Every request the receiver got: `{ id, verified, task }`. */
const received = [];
let server;
let target;

/** A CA and a server certificate for localhost and 127.0.0.1 signed by it, made with openssl. */
function makeCertificates() {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Taskhooks test CA');
  // A second CA that signed nothing here: trusting only it must not let the server in.
  openssl('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=Another CA');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'server.ext'), [
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    'basicConstraints=CA:FALSE',
    'keyUsage=digitalSignature',
    'extendedKeyUsage=serverAuth',
  ].join('\n'));
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
}

before(async () => {
  makeCertificates();
  server = createServer({
    key: readFileSync(join(dir, 'server.key')),
    cert: readFileSync(join(dir, 'server.pem')),
  }, (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = req.headers['webhook-id'];
      const expected = signHeaders(secret, body, { id, timestamp: req.headers['webhook-timestamp'] });
      const verified = req.headers['webhook-signature'] === expected['webhook-signature'];
      received.push({ id, verified, task: JSON.parse(body) });
      res.writeHead(verified ? 200 : 401, { 'content-type': 'application/json' });
      res.end(verified ? '{"status":"ok"}' : '{"error":"bad signature"}');
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  target = `https://localhost:${server.address().port}/consumetasks`;
});

after(async () => {
  await new Promise((ok) => server?.close(ok) ?? ok());
  await services.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

function send(name, env, url = target) {
  return services.run(name, 'producer', ['send', '--count', String(COUNT), '--max-attempts', '1', '--target', url],
    { WEBHOOK_SECRET: secret, ...env }, { timeoutMs: 60_000 });
}

/** An environment in which no CA certificate at all can be found (a slim container, say). */
function noCertificates() {
  const empty = mkdtempSync(join(dir, 'no-certs-'));
  writeFileSync(join(empty, 'none.pem'), '');
  return { SSL_CERT_FILE: join(empty, 'none.pem'), SSL_CERT_DIR: empty };
}

test('a receiver behind HTTPS gets every task, signed, when its CA is trusted', async () => {
  const { code, output } = await send('send-trusted', { SSL_CERT_FILE: join(dir, 'ca.pem') });
  assert.equal(code, 0, `producer send failed:\n${output}`);
  assert.equal(received.length, COUNT, 'one request per task');
  assert.ok(received.every((r) => r.verified), 'every request carries a valid signature');
  assert.equal(new Set(received.map((r) => r.id)).size, COUNT, 'a webhook-id per task');
  assert.deepEqual(received.map((r) => r.task.id).sort((a, b) => a - b), [...Array(COUNT).keys()]);
});

test('the same receiver is refused when its certificate is not trusted', async () => {
  const before = received.length;
  // Trust only another CA (and no directory of certificates): the server's is unknown.
  const noDir = mkdtempSync(join(dir, 'no-certs-'));
  const { code, output } = await send('send-untrusted', { SSL_CERT_FILE: join(dir, 'other.pem'), SSL_CERT_DIR: noDir });
  assert.notEqual(code, 0, 'producer send exits non-zero when tasks fail');
  assert.match(output, /task \d+ failed: .*certificate/i, `each task fails naming the certificate:\n${output}`);
  assert.match(output, /delivered\s+0\b/, `nothing is delivered:\n${output}`);
  assert.equal(received.length, before, 'nothing reached the receiver');
});

test('without any CA certificate, plain HTTP still works and HTTPS says what to install', async () => {
  let plain = 0;
  const http = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => { plain += 1; res.writeHead(200).end('{}'); });
  });
  await new Promise((ok) => http.listen(0, '127.0.0.1', ok));
  try {
    const url = `http://127.0.0.1:${http.address().port}/consumetasks`;
    const ok = await send('send-http-no-certs', noCertificates(), url);
    assert.equal(ok.code, 0, `plain HTTP needs no certificates:\n${ok.output}`);
    assert.equal(plain, COUNT);

    const refused = await send('send-https-no-certs', noCertificates());
    assert.notEqual(refused.code, 0);
    assert.match(refused.output, /install ca-certificates, or set SSL_CERT_FILE/, refused.output);
  } finally {
    await new Promise((ok) => http.close(ok));
  }
});
