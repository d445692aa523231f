// PROTOCOL.md "v1.1 additions": delays, retries with backoff, idempotency
// keys, dependencies and concurrency keys, through the wire protocol only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, assertErrorAck, assertTaskShape, http, ISO_MS, ABSENCE_MS, sleep,
} from './helpers.js';

const V11_KEYS = ['run_at', 'key', 'after', 'retry_on_failure', 'backoff_ms', 'concurrency_key',
  'concurrency_limit', 'retry_of'];

let server;
before(async () => { server = await startServer(['--workers', '2']); });
after(async () => { await server?.stop(); });

function statuses(rec, id) {
  return rec.all('status', (d) => d.task_id === id).map((d) => d.status);
}

test('every task object carries the v1.1 fields with their defaults', async () => {
  const rec = await server.connect();
  try {
    const task = await rec.submit({ kind: 'echo', input: 1 });
    assertTaskShape(task);
    for (const k of V11_KEYS) assert.ok(k in task, `task lacks ${k}`);
    assert.deepEqual(
      Object.fromEntries(V11_KEYS.map((k) => [k, task[k]])),
      { run_at: null, key: null, after: [], retry_on_failure: false, backoff_ms: 1000,
        concurrency_key: null, concurrency_limit: 1, retry_of: null },
    );
    const res = await rec.ack('task', { kind: 'echo', input: 1 });
    assert.equal(res.deduplicated, false, 'a task ack says deduplicated: false');
  } finally {
    rec.close();
  }
});

test('a delayed task is scheduled, then queued at its time, then runs', async () => {
  const rec = await server.connect();
  try {
    const sent = Date.now();
    const task = await rec.submit({ kind: 'echo', input: 'later', delay_ms: 400 });
    assert.equal(task.status, 'scheduled');
    assert.match(task.run_at, ISO_MS);
    assert.equal(Date.parse(task.run_at) - Date.parse(task.created_at), 400);
    const result = await rec.waitResult(task.id);
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(result.output, 'later');
    assert.deepEqual(statuses(rec, task.id), ['queued', 'running']);
    const queuedAt = rec.events.find((e) => e.event === 'status' && e.data.task_id === task.id).at;
    assert.ok(queuedAt >= Date.parse(task.run_at), 'not queued before run_at');
    assert.ok(queuedAt - sent < 400 + 1000, `queued ${queuedAt - sent} ms after submit`);
    assert.equal(result.run_at, task.run_at, 'run_at is kept after it came');
  } finally {
    rec.close();
  }
});

test('run_at in the past runs at once; with delay_ms too it is refused', async () => {
  const rec = await server.connect();
  try {
    const past = new Date(Date.now() - 60_000).toISOString();
    const task = await rec.submit({ kind: 'echo', input: 1, run_at: past });
    assert.equal(task.status, 'queued');
    assert.equal(task.run_at, past);
    await rec.waitResult(task.id);
    assertErrorAck(await rec.ack('task', { kind: 'echo', run_at: past, delay_ms: 5 }), 'invalid_payload');
    for (const bad of [{ delay_ms: -1 }, { delay_ms: 'soon' }, { run_at: 'tomorrow' },
      { key: '' }, { key: 7 }, { after: 'x' }, { retry_on_failure: 'yes' },
      { backoff_ms: 3_600_001 }, { concurrency_limit: 0 }, { concurrency_key: '' }]) {
      assertErrorAck(await rec.ack('task', { kind: 'echo', ...bad }), 'invalid_payload', JSON.stringify(bad));
    }
  } finally {
    rec.close();
  }
});

test('a scheduled task can be cancelled and never runs', async () => {
  const rec = await server.connect();
  try {
    const task = await rec.submit({ kind: 'echo', delay_ms: 60_000 });
    const { stats } = await rec.ack('dashboard', {});
    assert.ok(stats.scheduled >= 1, `stats.scheduled = ${stats.scheduled}`);
    const res = await rec.ack('cancel', { task_id: task.id });
    assert.equal(res.ok, true);
    assert.equal(res.task.status, 'cancelled');
    const result = await rec.waitResult(task.id);
    assert.equal(result.error.code, 'cancelled');
    assert.equal(result.attempt, 0);
  } finally {
    rec.close();
  }
});

test('retry_on_failure retries a failing handler with backoff, the last failure is final', async () => {
  const rec = await server.connect();
  try {
    const task = await rec.submit({
      kind: 'fail', input: { message: 'flaky' }, retry_on_failure: true, backoff_ms: 100, max_attempts: 3,
    });
    const result = await rec.waitResult(task.id);
    assert.equal(result.status, 'failed');
    assert.equal(result.error.code, 'task_failed');
    assert.equal(result.attempt, 3);
    assert.deepEqual(statuses(rec, task.id),
      ['running', 'scheduled', 'queued', 'running', 'scheduled', 'queued', 'running']);
    const scheduled = rec.all('status', (d) => d.task_id === task.id && d.status === 'scheduled');
    assert.deepEqual(scheduled.map((d) => d.attempt), [1, 2]);

    const plain = await rec.submit({ kind: 'fail', input: { message: 'once' }, max_attempts: 3 });
    const once = await rec.waitResult(plain.id);
    assert.equal(once.attempt, 1, 'without retry_on_failure a handler error is final');
  } finally {
    rec.close();
  }
});

test('one key, one task: a second submit gets it with deduplicated: true', async () => {
  const a = await server.connect('websocket');
  const b = await server.connect('polling');
  try {
    const key = `charge-${Date.now()}-${Math.random()}`;
    // Two sockets racing with the same key.
    const [ra, rb] = await Promise.all([
      a.ack('task', { kind: 'sleep', input: { ms: 200 }, key }),
      b.ack('task', { kind: 'echo', input: 'other spec', key }),
    ]);
    assert.equal(ra.ok, true);
    assert.equal(rb.ok, true);
    assert.equal(ra.task.id, rb.task.id, 'one task');
    assert.deepEqual([ra.deduplicated, rb.deduplicated].sort(), [false, true]);
    assert.equal(ra.task.key, key);
    // Both sockets are in its room.
    const [x, y] = await Promise.all([a.waitResult(ra.task.id), b.waitResult(ra.task.id)]);
    assert.equal(x.id, y.id);
    // Finished, within the window: still that task, over HTTP too (200, not 202).
    const again = await a.ack('task', { kind: 'echo', key });
    assert.equal(again.deduplicated, true);
    assert.equal(again.task.status, x.status);
    const r = await http(`${server.url}/tasks`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'echo', key }),
    });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).id, ra.task.id);
    const fresh = await http(`${server.url}/tasks`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'echo', key: `${key}-2` }),
    });
    assert.equal(fresh.status, 202);
    // In one batch: each item says whether it was deduplicated.
    const batch = await a.ack('tasks', { tasks: [{ kind: 'echo', key }, { kind: 'echo' }] });
    assert.equal(batch.ok, true);
    assert.deepEqual(batch.deduplicated, [true, false]);
    assert.equal(batch.tasks[0].id, ra.task.id);
  } finally {
    a.close();
    b.close();
  }
});

test('after: a chain runs in order; a failed dependency fails what waits', async () => {
  const rec = await server.connect();
  try {
    const first = await rec.submit({ kind: 'sleep', input: { ms: 150 } });
    const second = await rec.submit({ kind: 'echo', input: 2, after: [first.id] });
    assert.equal(second.status, 'waiting');
    assert.deepEqual(second.after, [first.id]);
    const r1 = await rec.waitResult(first.id);
    const r2 = await rec.waitResult(second.id);
    assert.equal(r2.status, 'succeeded');
    assert.ok(Date.parse(r2.started_at) >= Date.parse(r1.finished_at), 'second started after first ended');
    assert.deepEqual(statuses(rec, second.id), ['queued', 'running']);

    // Named by index in one batch; the failure cascades.
    const res = await rec.ack('tasks', { tasks: [
      { kind: 'fail', input: { message: 'no' } },
      { kind: 'echo', after: ['#0'] },
      { kind: 'echo', after: ['#1'] },
    ] });
    assert.equal(res.ok, true, JSON.stringify(res));
    const [f, w1, w2] = res.tasks;
    assert.deepEqual(res.tasks.map((t) => t.status), ['queued', 'waiting', 'waiting']);
    assert.deepEqual(w1.after, [f.id]);
    for (const t of [w1, w2]) {
      const r = await rec.waitResult(t.id);
      assert.equal(r.status, 'failed');
      assert.equal(r.error.code, 'dependency_failed');
      assert.equal(r.attempt, 0);
    }

    // A dependency that already failed: the ack shows the task failed.
    const late = await rec.ack('task', { kind: 'echo', after: [f.id] });
    assert.equal(late.ok, true);
    assert.equal(late.task.status, 'failed');
    assert.equal(late.task.error.code, 'dependency_failed');
    const pushed = await rec.waitResult(late.task.id);
    assert.equal(pushed.error.code, 'dependency_failed');

    // Unknown ids are not_found; an index outside a batch is invalid.
    assertErrorAck(await rec.ack('task', { kind: 'echo', after: ['0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40'] }), 'not_found');
    assertErrorAck(await rec.ack('task', { kind: 'echo', after: ['#0'] }), 'invalid_payload');
  } finally {
    rec.close();
  }
});

test('a diamond joins once both sides succeeded', async () => {
  const rec = await server.connect();
  try {
    const res = await rec.ack('tasks', { tasks: [
      { kind: 'echo', input: 'top' },
      { kind: 'sleep', input: { ms: 100 }, after: ['#0'] },
      { kind: 'sleep', input: { ms: 200 }, after: ['#0'] },
      { kind: 'echo', input: 'join', after: ['#1', '#2'] },
    ] });
    assert.equal(res.ok, true, JSON.stringify(res));
    const ids = res.tasks.map((t) => t.id);
    const results = [];
    for (const id of ids) results.push(await rec.waitResult(id));
    assert.ok(results.every((r) => r.status === 'succeeded'));
    const join = results[3];
    for (const side of [results[1], results[2]]) {
      assert.ok(Date.parse(join.started_at) >= Date.parse(side.finished_at), 'join after both sides');
    }
  } finally {
    rec.close();
  }
});

test('a concurrency key runs its tasks one at a time and holds back no other task', async () => {
  const rec = await server.connect();
  try {
    const key = `customer-${Date.now()}`;
    const keyed = [];
    for (let i = 0; i < 3; i++) {
      keyed.push(await rec.submit({ kind: 'sleep', input: { ms: 150 }, concurrency_key: key }));
    }
    const other = await rec.submit({ kind: 'sleep', input: { ms: 10 } });
    const otherResult = await rec.waitResult(other.id);
    const results = [];
    for (const t of keyed) results.push(await rec.waitResult(t.id));
    assert.ok(Date.parse(otherResult.finished_at) < Date.parse(results[1].started_at),
      'the unkeyed task ran while keyed ones waited');
    for (let i = 1; i < results.length; i++) {
      assert.ok(Date.parse(results[i].started_at) >= Date.parse(results[i - 1].finished_at),
        `keyed task ${i} started before ${i - 1} ended`);
    }
    assert.equal(results[0].concurrency_key, key);
    assert.equal(results[0].concurrency_limit, 1);
  } finally {
    rec.close();
  }
});

test('no status event on creation of a scheduled or waiting task', async () => {
  const rec = await server.connect();
  try {
    const a = await rec.submit({ kind: 'echo', delay_ms: 60_000 });
    const b = await rec.submit({ kind: 'echo', after: [a.id] });
    await sleep(ABSENCE_MS);
    assert.deepEqual(rec.about(a.id).filter((e) => e.event === 'status'), []);
    assert.deepEqual(rec.about(b.id).filter((e) => e.event === 'status'), []);
    await rec.ack('cancel', { task_id: a.id });
    const r = await rec.waitResult(b.id);
    assert.equal(r.error.code, 'dependency_failed');
  } finally {
    rec.close();
  }
});
