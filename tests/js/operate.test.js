// PROTOCOL.md v1.1 "Looking up and operating on tasks": `retry` and
// `POST /tasks/{id}/retry`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertErrorAck, assertTaskShape, http } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '1']); });
after(async () => { await server?.stop(); });

test('retry runs a cancelled task again as a new task with retry_of', async () => {
  const rec = await server.connect();
  try {
    const old = await rec.submit({ kind: 'sleep', input: { ms: 60_000 }, priority: 3, max_attempts: 2 });
    await rec.ack('cancel', { task_id: old.id });
    await rec.waitResult(old.id);
    const res = await rec.ack('retry', { task_id: old.id });
    assert.equal(res.ok, true, JSON.stringify(res));
    const task = res.task;
    assertTaskShape(task);
    assert.notEqual(task.id, old.id);
    assert.equal(task.retry_of, old.id);
    assert.equal(task.status, 'queued');
    assert.deepEqual([task.kind, task.input, task.priority, task.max_attempts],
      [old.kind, old.input, old.priority, old.max_attempts]);
    // The socket follows the new task; the old one is unchanged.
    await rec.waitStatus(task.id, 'running');
    await rec.ack('cancel', { task_id: task.id });
    assert.equal((await rec.waitResult(task.id)).status, 'cancelled');
    const again = await http(`${server.url}/tasks/${old.id}`);
    assert.equal((await again.json()).status, 'cancelled');
  } finally {
    rec.close();
  }
});

test('a failed task retried over HTTP is 202 and the new task', async () => {
  const rec = await server.connect();
  try {
    const old = await rec.run({ kind: 'fail', input: { message: 'boom' } });
    assert.equal(old.status, 'failed');
    const r = await http(`${server.url}/tasks/${old.id}/retry`, { method: 'POST' });
    assert.equal(r.status, 202);
    const task = await r.json();
    assert.equal(task.retry_of, old.id);
    assert.equal(task.kind, 'fail');
  } finally {
    rec.close();
  }
});

test('only failed, cancelled or timed-out tasks can be retried', async () => {
  const rec = await server.connect();
  try {
    const ok = await rec.run({ kind: 'echo', input: 1 });
    assertErrorAck(await rec.ack('retry', { task_id: ok.id }), 'invalid_payload', 'succeeded');
    const running = await rec.submit({ kind: 'sleep', input: { ms: 60_000 } });
    await rec.waitStatus(running.id, 'running');
    assertErrorAck(await rec.ack('retry', { task_id: running.id }), 'invalid_payload', 'running');
    await rec.ack('cancel', { task_id: running.id });
    assertErrorAck(await rec.ack('retry', { task_id: '0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40' }), 'not_found');
    assertErrorAck(await rec.ack('retry', { task_id: 5 }), 'invalid_payload');
    const r = await http(`${server.url}/tasks/${ok.id}/retry`, { method: 'POST' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, 'invalid_payload');
  } finally {
    rec.close();
  }
});
