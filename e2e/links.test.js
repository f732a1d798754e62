// The link from each page to the other program's (static/js/common.js, `peerUrl`): a demo
// started with HOST=0.0.0.0 gives each program the other's loopback address, which a
// browser on another machine cannot reach; the page then links to the same port on the
// host it was opened by. Plain functions, no browser needed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { peerUrl } from '../static/js/common.js';

test('a loopback link from a page opened by another host follows that host', () => {
  assert.equal(peerUrl('http://127.0.0.1:5001', '192.168.1.20'), 'http://192.168.1.20:5001/');
  assert.equal(peerUrl('http://localhost:5000/', 'demo.example'), 'http://demo.example:5000/');
  assert.equal(peerUrl('http://[::1]:5001/', '10.0.0.7'), 'http://10.0.0.7:5001/');
});

test('a link is kept as configured on the machine itself, or when it names a real host', () => {
  assert.equal(peerUrl('http://127.0.0.1:5001', '127.0.0.1'), 'http://127.0.0.1:5001');
  assert.equal(peerUrl('http://127.0.0.1:5001', 'localhost'), 'http://127.0.0.1:5001');
  assert.equal(peerUrl('https://dash.example/', '192.168.1.20'), 'https://dash.example/');
});

test('a link that is not an absolute URL is left for the browser to resolve', () => {
  assert.equal(peerUrl('/dashboard', '192.168.1.20'), '/dashboard');
});
