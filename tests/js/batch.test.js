// PROTOCOL.md: the `tasks` batch event.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, sleep, ABSENCE_MS, assertTaskShape, WAIT_MS } from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

for (const transport of TRANSPORTS) {
  describe(`batch over ${transport}`, () => {
    test('`tasks` with 1000 echo tasks: acked in order, 1000 results exactly once', { timeout: 90_000 }, async () => {
      const a = await server.connect(transport);
      try {
        const N = 1000;
        const items = Array.from({ length: N }, (_, i) => ({ kind: 'echo', input: { i, tag: `t${i}` } }));
        // Count results as they arrive (registered before emitting).
        const counts = new Map();
        a.socket.on('result', (t) => counts.set(t.id, (counts.get(t.id) ?? 0) + 1));
        const res = await a.ack('tasks', { tasks: items });
        assert.equal(res.ok, true, JSON.stringify(res).slice(0, 300));
        assert.ok(Array.isArray(res.tasks), 'ack.tasks is an array');
        assert.equal(res.tasks.length, N);
        const ids = new Set();
        res.tasks.forEach((t, i) => {
          if (i % 100 === 0) assertTaskShape(t, `ack.tasks[${i}]`);
          assert.equal(t.kind, 'echo');
          assert.deepEqual(t.input, { i, tag: `t${i}` }, `ack.tasks[${i}] is out of submission order`);
          assert.equal(t.status, 'queued');
          assert.equal(t.attempt, 0);
          ids.add(t.id);
        });
        assert.equal(ids.size, N, 'all task ids are distinct');
        await a.until(() => [...ids].every((id) => counts.has(id)), `${N} results`, Math.max(WAIT_MS, 60_000));
        await sleep(ABSENCE_MS);
        const results = a.all('result');
        assert.equal(results.length, N, 'no duplicate or foreign results');
        for (const [id, n] of counts) {
          assert.ok(ids.has(id), `result for a task not in the batch: ${id}`);
          assert.equal(n, 1, `result for ${id} arrived ${n} times`);
        }
        const byId = new Map(res.tasks.map((t) => [t.id, t]));
        for (const r of results) {
          assert.equal(r.status, 'succeeded');
          assert.deepEqual(r.output, byId.get(r.id).input);
        }
        // every task was seen running exactly once by the submitting socket
        const running = a.all('status', (s) => s.status === 'running');
        assert.equal(new Set(running.map((s) => s.task_id)).size, N);
        assert.equal(running.length, N);
        assert.deepEqual(a.disconnects, []);
      } finally { a.close(); }
    });

    test('`tasks` with one task and with mixed kinds', async () => {
      const a = await server.connect(transport);
      try {
        const res = await a.ack('tasks', {
          tasks: [
            { kind: 'sha256', input: { data: 'abc', rounds: 1 }, priority: 3 },
            { kind: 'sleep', input: { ms: 10 } },
            { kind: 'fail', input: { message: 'in batch' } },
            { kind: 'primes', input: { limit: 100 } },
          ],
        });
        assert.equal(res.ok, true, JSON.stringify(res));
        assert.deepEqual(res.tasks.map((t) => t.kind), ['sha256', 'sleep', 'fail', 'primes']);
        assert.equal(res.tasks[0].priority, 3);
        const [h, s, f, p] = await Promise.all(res.tasks.map((t) => a.waitResult(t.id)));
        assert.equal(h.output.hex, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
        assert.deepEqual(s.output, { slept_ms: 10 });
        assert.equal(f.status, 'failed');
        assert.deepEqual(f.error, { code: 'task_failed', message: 'in batch' });
        assert.deepEqual(p.output, { count: 25 });
        const one = await a.ack('tasks', { tasks: [{ kind: 'echo', input: 'solo' }] });
        assert.equal(one.ok, true);
        assert.equal(one.tasks.length, 1);
        assert.equal((await a.waitResult(one.tasks[0].id)).output, 'solo');
      } finally { a.close(); }
    });
  });
}
