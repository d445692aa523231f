// PROTOCOL.md: rooms. Pushes go only to the task's room; subscribe/unsubscribe.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, sleep, ABSENCE_MS, assertTaskShape, CLUSTER } from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

for (const transport of TRANSPORTS) {
  describe(`rooms over ${transport}`, () => {
    test('a socket that did not subscribe never gets another socket\'s status/progress/result', async () => {
      const a = await server.connect(transport);
      const b = await server.connect(transport);
      try {
        const t1 = await a.submit({ kind: 'echo', input: { from: 'a' } });
        const t2 = await a.submit({ kind: 'primes', input: { limit: 20_000_000 } });
        await a.waitResult(t1.id);
        await a.waitResult(t2.id);
        await sleep(ABSENCE_MS);
        assert.deepEqual(b.about(t1.id), [], 'B saw events of A\'s echo task');
        assert.deepEqual(b.about(t2.id), [], 'B saw events of A\'s primes task');
        assert.deepEqual(b.events.filter((e) => e.event !== 'stats'), [], 'B got no pushes at all');
      } finally { a.close(); b.close(); }
    });

    test('a socket that subscribes while the task runs gets the result exactly once', async () => {
      const a = await server.connect(transport);
      const c = await server.connect(transport);
      try {
        const task = await a.submit({ kind: 'sleep', input: { ms: 1500 } });
        await a.waitStatus(task.id, 'running');
        const sub = await c.ack('subscribe', { task_id: task.id });
        assert.equal(sub.ok, true, JSON.stringify(sub));
        assertTaskShape(sub.task, 'subscribe snapshot');
        assert.equal(sub.task.id, task.id);
        assert.equal(sub.task.status, 'running');
        assert.equal(sub.task.attempt, 1);
        if (CLUSTER) {
          // The task runs on the worker node; a lookup on another node shows
          // `worker: null` while it runs (docs/protocol-notes.md, Cluster mode).
          assert.ok(sub.task.worker === null || typeof sub.task.worker === 'string', `worker ${sub.task.worker}`);
        } else {
          assert.equal(typeof sub.task.worker, 'string');
        }
        assert.equal(sub.task.output, null);
        const r = await c.waitResult(task.id);
        assert.equal(r.status, 'succeeded');
        assert.deepEqual(r.output, { slept_ms: 1500 });
        await a.waitResult(task.id);
        await sleep(ABSENCE_MS);
        assert.equal(c.all('result', (d) => d.id === task.id).length, 1, 'C: result exactly once');
        assert.equal(a.all('result', (d) => d.id === task.id).length, 1, 'A: result exactly once');
      } finally { a.close(); c.close(); }
    });

    test('subscribing after the task finished: final snapshot in the ack, no result event', async () => {
      const a = await server.connect(transport);
      const d = await server.connect(transport);
      try {
        const r = await a.run({ kind: 'sha256', input: { data: 'abc', rounds: 1 } });
        const sub = await d.ack('subscribe', { task_id: r.id });
        assert.equal(sub.ok, true, JSON.stringify(sub));
        assertTaskShape(sub.task, 'subscribe snapshot');
        assert.equal(sub.task.status, 'succeeded');
        assert.deepEqual(sub.task.output, r.output);
        assert.deepEqual(sub.task, r, 'snapshot equals the result that was pushed');
        await sleep(ABSENCE_MS);
        assert.deepEqual(d.about(r.id), [], 'no result (or any) event after a late subscribe');
        // same for the submitting socket re-subscribing
        const again = await a.ack('subscribe', { task_id: r.id });
        assert.equal(again.ok, true);
        assert.equal(again.task.status, 'succeeded');
        await sleep(ABSENCE_MS);
        assert.equal(a.all('result', (x) => x.id === r.id).length, 1, 'no second result for the submitter');
        // a failed task's snapshot keeps its error
        const f = await a.run({ kind: 'fail', input: { message: 'late' } });
        const fsub = await d.ack('subscribe', { task_id: f.id });
        assert.equal(fsub.ok, true);
        assert.equal(fsub.task.status, 'failed');
        assert.deepEqual(fsub.task.error, { code: 'task_failed', message: 'late' });
      } finally { a.close(); d.close(); }
    });

    test('unsubscribe stops pushes (for a subscriber and for the submitter)', async () => {
      const a = await server.connect(transport);
      const e = await server.connect(transport);
      const w = await server.connect(transport); // a witness that stays subscribed
      try {
        const task = await a.submit({ kind: 'sleep', input: { ms: 800 } });
        await a.waitStatus(task.id, 'running');
        assert.equal((await e.ack('subscribe', { task_id: task.id })).ok, true);
        assert.equal((await w.ack('subscribe', { task_id: task.id })).ok, true);
        const u1 = await e.ack('unsubscribe', { task_id: task.id });
        assert.equal(u1.ok, true, JSON.stringify(u1));
        const u2 = await a.ack('unsubscribe', { task_id: task.id });
        assert.equal(u2.ok, true, JSON.stringify(u2));
        const r = await w.waitResult(task.id);
        assert.equal(r.status, 'succeeded');
        await sleep(ABSENCE_MS);
        assert.deepEqual(e.about(task.id), [], 'unsubscribed socket E got pushes');
        assert.equal(a.all('result', (x) => x.id === task.id).length, 0, 'unsubscribed submitter A got the result');
      } finally { a.close(); e.close(); w.close(); }
    });

    test('a submitter that subscribes to its own task, or unsubscribes and subscribes again, gets each push once', async () => {
      const a = await server.connect(transport);
      try {
        const t1 = await a.submit({ kind: 'sleep', input: { ms: 600 } });
        const t2 = await a.submit({ kind: 'sleep', input: { ms: 600 } });
        assert.equal((await a.ack('subscribe', { task_id: t1.id })).ok, true);
        assert.equal((await a.ack('unsubscribe', { task_id: t2.id })).ok, true);
        assert.equal((await a.ack('subscribe', { task_id: t2.id })).ok, true);
        const r1 = await a.waitResult(t1.id);
        const r2 = await a.waitResult(t2.id);
        assert.deepEqual([r1.status, r2.status], ['succeeded', 'succeeded']);
        await sleep(ABSENCE_MS);
        for (const t of [t1, t2]) {
          assert.equal(a.all('result', (x) => x.id === t.id).length, 1, `${t.id}: result exactly once`);
          const running = a.all('status', (x) => x.task_id === t.id && x.status === 'running');
          assert.ok(running.length <= 1, `${t.id}: status running ${running.length} times`);
        }
      } finally { a.close(); }
    });

    test('a subscriber of a queued-then-running task sees status running and progress', async () => {
      const a = await server.connect(transport);
      const c = await server.connect(transport);
      try {
        const task = await a.submit({ kind: 'primes', input: { limit: 300_000_000 } });
        const sub = await c.ack('subscribe', { task_id: task.id });
        assert.equal(sub.ok, true);
        assert.ok(['queued', 'running'].includes(sub.task.status), sub.task.status);
        const r = await c.waitResult(task.id, 60_000);
        assert.deepEqual(r.output, { count: 16252325 });
        assert.ok(c.all('progress', (x) => x.task_id === task.id).length >= 1, 'subscriber got progress');
        if (sub.task.status === 'queued') {
          assert.equal(c.all('status', (x) => x.task_id === task.id && x.status === 'running').length, 1);
        }
      } finally { a.close(); c.close(); }
    });
  });
}
