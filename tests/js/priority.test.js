// PROTOCOL.md: "priority: higher runs first; default 0". One worker, one CPU slot.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, sleep, ABSENCE_MS, assertErrorAck } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '1', '--cpu-slots', '1']); });
after(async () => { await server?.stop(); });

const PRIOS = [0, 5, 0, 10, 5, -1];
// indexes into PRIOS in the order they must start: p10, first p5, second p5, first p0, second p0, p-1
const EXPECTED = [3, 1, 4, 0, 2, 5];

async function occupyCpu(a) {
  const blocker = await a.submit({ kind: 'sha256', input: { data: 'x', rounds: 10_000_000 } });
  await a.waitStatus(blocker.id, 'running');
  return blocker;
}

async function releaseCpu(a, blocker) {
  const c = await a.ack('cancel', { task_id: blocker.id });
  assert.equal(c.ok, true, JSON.stringify(c));
  assert.equal(c.task.status, 'cancelled');
  const r = await a.waitResult(blocker.id);
  assert.equal(r.status, 'cancelled');
}

async function checkOrder(a, tasks) {
  const results = await Promise.all(tasks.map((t) => a.waitResult(t.id, 30_000)));
  for (const r of results) {
    assert.equal(r.status, 'succeeded');
    assert.equal(r.output.hex.length, 64);
  }
  const ids = new Set(tasks.map((t) => t.id));
  const started = a.all('status', (s) => s.status === 'running' && ids.has(s.task_id)).map((s) => s.task_id);
  const got = started.map((id) => tasks.findIndex((t) => t.id === id));
  const label = (idxs) => idxs.map((i) => `#${i}(p${PRIOS[i]})`).join(', ');
  assert.deepEqual(got, EXPECTED, `start order was [${label(got)}], expected [${label(EXPECTED)}]`);
}

for (const transport of TRANSPORTS) {
  describe(`priority over ${transport}`, () => {
    test('queued tasks start by priority, FIFO within a priority (`task` events)', { timeout: 60_000 }, async () => {
      const a = await server.connect(transport);
      try {
        const blocker = await occupyCpu(a);
        const tasks = [];
        for (const [i, priority] of PRIOS.entries()) {
          const t = await a.submit({ kind: 'sha256', input: { data: `p${i}`, rounds: 1 }, priority });
          assert.equal(t.priority, priority);
          assert.equal(t.status, 'queued');
          tasks.push(t);
        }
        await sleep(ABSENCE_MS);
        for (const t of tasks) {
          assert.equal(a.all('status', (s) => s.task_id === t.id).length, 0, 'nothing started while the CPU slot is busy');
        }
        await releaseCpu(a, blocker);
        await checkOrder(a, tasks);
      } finally { a.close(); }
    });
  });
}

test('queued tasks start by priority, FIFO within a priority (`tasks` batch)', { timeout: 60_000 }, async () => {
  const a = await server.connect('websocket');
  try {
    const blocker = await occupyCpu(a);
    const res = await a.ack('tasks', {
      tasks: PRIOS.map((priority, i) => ({ kind: 'sha256', input: { data: `b${i}`, rounds: 1 }, priority })),
    });
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.deepEqual(res.tasks.map((t) => t.priority), PRIOS);
    await releaseCpu(a, blocker);
    await checkOrder(a, res.tasks);
  } finally { a.close(); }
});

test('cancelling a queued task: cancelled at once, never runs, result once', { timeout: 60_000 }, async () => {
  const a = await server.connect('websocket');
  try {
    const blocker = await occupyCpu(a);
    const q = await a.submit({ kind: 'sha256', input: { data: 'q', rounds: 1 } });
    const c = await a.ack('cancel', { task_id: q.id });
    assert.equal(c.ok, true, JSON.stringify(c));
    assert.equal(c.task.status, 'cancelled');
    assert.equal(c.task.error?.code, 'cancelled');
    assert.equal(c.task.attempt, 0, 'a task cancelled while queued never started');
    const r = await a.waitResult(q.id);
    assert.equal(r.status, 'cancelled');
    assert.equal(r.error?.code, 'cancelled');
    assertErrorAck(await a.ack('cancel', { task_id: q.id }), 'already_finished', 'second cancel');
    await releaseCpu(a, blocker);
    const next = await a.run({ kind: 'sha256', input: { data: 'abc', rounds: 1 } });
    assert.equal(next.status, 'succeeded');
    await sleep(ABSENCE_MS);
    assert.equal(a.all('status', (s) => s.task_id === q.id).length, 0, 'the cancelled task never ran');
    assert.equal(a.all('result', (d) => d.id === q.id).length, 1, 'result exactly once');
  } finally { a.close(); }
});
