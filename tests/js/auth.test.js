// `taskwire serve --token`: the handshake `auth: {token}` (Socket.IO) and
// `Authorization: Bearer` (HTTP) are required; `GET /healthz` stays open.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, http } from './helpers.js';

const TOKEN = 's3cret';

let server;
before(async () => { server = await startServer(['--token', TOKEN]); });
after(async () => { await server?.stop(); });

const unauthorized = (err) => {
  assert.match(err.message, /^unauthorized/, `connect_error message: ${err.message}`);
  return true;
};

for (const transport of TRANSPORTS) {
  describe(`access token over ${transport}`, () => {
    test('no token or a wrong one: connect_error "unauthorized..."', async () => {
      await assert.rejects(server.connect(transport), unauthorized);
      await assert.rejects(server.connect(transport, { auth: { token: 'wrong' } }), unauthorized);
      await assert.rejects(server.connect(transport, { auth: { token: 42 } }), unauthorized);
    });

    test('the right token: tasks and the dashboard work', async () => {
      const a = await server.connect(transport, { auth: { token: TOKEN } });
      try {
        const done = await a.run({ kind: 'echo', input: { via: transport } });
        assert.equal(done.status, 'succeeded');
        assert.deepEqual(done.output, { via: transport });
        const res = await a.ack('dashboard', {});
        assert.equal(res.ok, true, JSON.stringify(res));
        await a.waitFor('stats', () => true, 'a stats push', 3000);
      } finally { a.close(); }
    });
  });
}

test('HTTP: 401 unauthorized without the bearer token, 202 with it; /healthz open', async () => {
  const post = (headers = {}) => http(`${server.url}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ kind: 'echo', input: 1 }),
  });
  for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
    const r = await post(headers);
    assert.equal(r.status, 401, JSON.stringify(headers));
    const body = await r.json();
    assert.equal(body.error?.code, 'unauthorized', JSON.stringify(body));
    assert.equal(typeof body.error.message, 'string');
  }
  const r = await post({ authorization: `Bearer ${TOKEN}` });
  assert.equal(r.status, 202);
  const task = await r.json();
  const g = await http(`${server.url}/tasks/${task.id}`);
  assert.equal(g.status, 401);
  await g.body?.cancel();
  const h = await http(`${server.url}/healthz`);
  assert.equal(h.status, 200);
  await h.body?.cancel();
});
