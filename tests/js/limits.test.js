// PROTOCOL.md: "A larger message is refused with payload_too_large or a clean
// disconnect of that socket only; the server and every other client carry on."
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, WAIT_MS, http, sleep, ABSENCE_MS, withTimeout } from './helpers.js';

const LIMIT = 65536;
let server;
before(async () => { server = await startServer(['--max-message-bytes', String(LIMIT)]); });
after(async () => { await server?.stop(); });

/** Emits an oversized task and resolves to {kind:'ack', res} or {kind:'disconnect', reason}. */
function sendOversized(rec, bytes) {
  const input = { blob: 'y'.repeat(bytes) };
  const acked = rec.socket.timeout(WAIT_MS).emitWithAck('task', { kind: 'echo', input })
    .then((res) => ({ kind: 'ack', res }), () => new Promise(() => {})); // a missing ack is only a failure if no disconnect came either
  const disconnected = new Promise((resolve) => {
    if (!rec.socket.connected) resolve({ kind: 'disconnect', reason: 'already' });
    rec.socket.once('disconnect', (reason) => resolve({ kind: 'disconnect', reason }));
  });
  return withTimeout(Promise.race([acked, disconnected]), WAIT_MS,
    'an error ack (payload_too_large) or a disconnect of the offending socket');
}

for (const big of TRANSPORTS) {
  for (const other of TRANSPORTS) {
    describe(`oversized message over ${big}, bystander over ${other}`, () => {
      test('200 KB message: payload_too_large ack or disconnect of that socket only', async (t) => {
        const x = await server.connect(big);
        const y = await server.connect(other);
        try {
          // a message under the limit works on the same server
          const small = await x.run({ kind: 'echo', input: { s: 'z'.repeat(20 * 1024) } });
          assert.equal(small.status, 'succeeded');
          assert.equal(small.output.s.length, 20 * 1024);

          const outcome = await sendOversized(x, 200 * 1024);
          t.diagnostic(`outcome: ${JSON.stringify(outcome)}`);
          if (outcome.kind === 'ack') {
            assert.equal(outcome.res?.ok, false, `oversized message was accepted: ${JSON.stringify(outcome.res).slice(0, 200)}`);
            assert.equal(outcome.res.error?.code, 'payload_too_large', JSON.stringify(outcome.res));
            // refused with an ack: the socket is still usable
            assert.ok(x.socket.connected);
            const again = await x.run({ kind: 'echo', input: 'x still works' });
            assert.equal(again.output, 'x still works');
          }
          // the bystander keeps working and was not disconnected
          const r = await y.run({ kind: 'echo', input: { bystander: true } });
          assert.deepEqual(r.output, { bystander: true });
          await sleep(ABSENCE_MS);
          assert.deepEqual(y.disconnects, [], 'the other socket was disconnected');
          assert.ok(y.socket.connected);
          // and a new client can still connect and run tasks
          const z = await server.connect(big);
          const rz = await z.run({ kind: 'sha256', input: { data: 'abc', rounds: 1 } });
          assert.equal(rz.status, 'succeeded');
          z.close();
        } finally { x.close(); y.close(); }
      });
    });
  }
}

test('HTTP POST /tasks over the limit -> 413 payload_too_large', async () => {
  const body = JSON.stringify({ kind: 'echo', input: { blob: 'q'.repeat(200 * 1024) } });
  const r = await http(`${server.url}/tasks`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
  });
  assert.equal(r.status, 413);
  const j = JSON.parse(await r.text());
  assert.equal(j.error?.code, 'payload_too_large');
  // and the server carries on
  const ok = await http(`${server.url}/healthz`);
  assert.equal(ok.status, 200);
});
