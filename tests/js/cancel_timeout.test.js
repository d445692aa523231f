// PROTOCOL.md: cancel and per-attempt timeout.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, sleep, ABSENCE_MS, assertTaskShape, assertErrorAck } from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

for (const transport of TRANSPORTS) {
  describe(`cancel and timeout over ${transport}`, () => {
    test('cancel a running sleep {ms:600000}: ack cancelled, result cancelled exactly once', async () => {
      const a = await server.connect(transport);
      try {
        const task = await a.submit({ kind: 'sleep', input: { ms: 600_000 } });
        await a.waitStatus(task.id, 'running');
        const t0 = Date.now();
        const res = await a.ack('cancel', { task_id: task.id });
        assert.equal(res.ok, true, JSON.stringify(res));
        assertTaskShape(res.task, 'cancel ack task');
        assert.equal(res.task.id, task.id);
        assert.equal(res.task.status, 'cancelled');
        assert.equal(res.task.error?.code, 'cancelled');
        assert.equal(res.task.output, null);
        const r = await a.waitResult(task.id);
        assert.ok(Date.now() - t0 < 5000, 'the sleep stopped at once');
        assert.equal(r.status, 'cancelled');
        assert.equal(r.error?.code, 'cancelled');
        assert.match(r.finished_at, /Z$/);
        await sleep(ABSENCE_MS);
        assert.equal(a.all('result', (d) => d.id === task.id).length, 1, 'result exactly once');
        assertErrorAck(await a.ack('cancel', { task_id: task.id }), 'already_finished', 'second cancel');
        // the worker is free again
        const e = await a.run({ kind: 'echo', input: 'next' });
        assert.equal(e.output, 'next');
      } finally { a.close(); }
    });

    test('another subscriber sees the cancellation as a result', async () => {
      const a = await server.connect(transport);
      const b = await server.connect(transport);
      try {
        const task = await a.submit({ kind: 'sleep', input: { ms: 600_000 } });
        await a.waitStatus(task.id, 'running');
        assert.equal((await b.ack('subscribe', { task_id: task.id })).ok, true);
        assert.equal((await b.ack('cancel', { task_id: task.id })).ok, true);
        const rb = await b.waitResult(task.id);
        const ra = await a.waitResult(task.id);
        assert.equal(rb.status, 'cancelled');
        assert.equal(ra.status, 'cancelled');
        await sleep(ABSENCE_MS);
        assert.equal(a.all('result', (d) => d.id === task.id).length, 1);
        assert.equal(b.all('result', (d) => d.id === task.id).length, 1);
      } finally { a.close(); b.close(); }
    });

    test('timeout: sleep {ms:60000} with timeout_ms 200 ends timed_out / timed_out', async () => {
      const a = await server.connect(transport);
      try {
        const t0 = Date.now();
        const task = await a.submit({ kind: 'sleep', input: { ms: 60_000 }, timeout_ms: 200 });
        assert.equal(task.timeout_ms, 200);
        const r = await a.waitResult(task.id);
        const took = Date.now() - t0;
        assert.equal(r.status, 'timed_out');
        assert.equal(r.error?.code, 'timed_out');
        assert.equal(typeof r.error.message, 'string');
        assert.equal(r.output, null);
        assert.ok(took >= 150 && took < 10_000, `timed out after ${took} ms`);
        await sleep(ABSENCE_MS);
        assert.equal(a.all('result', (d) => d.id === task.id).length, 1, 'result exactly once');
        assert.equal(a.all('status', (d) => d.task_id === task.id && d.status === 'running').length, 1,
          'a timed-out attempt is not retried');
        assertErrorAck(await a.ack('cancel', { task_id: task.id }), 'already_finished', 'cancel timed-out');
      } finally { a.close(); }
    });

    test('a task that finishes within its timeout succeeds', async () => {
      const a = await server.connect(transport);
      try {
        const r = await a.run({ kind: 'sleep', input: { ms: 20 }, timeout_ms: 5000 });
        assert.equal(r.status, 'succeeded');
        assert.deepEqual(r.output, { slept_ms: 20 });
      } finally { a.close(); }
    });
  });
}
