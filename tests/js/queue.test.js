// Server limits from flags: --queue-capacity (queue_full) and --default-timeout-ms
// (a task with timeout_ms null gets the server default).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertErrorAck, http, sleep, ABSENCE_MS, totalTasks, CLUSTER } from './helpers.js';

let server;
before(async () => {
  server = await startServer(['--workers', '1', '--cpu-slots', '1', '--queue-capacity', '3', '--default-timeout-ms', '400']);
});
after(async () => { await server?.stop(); });

test('more than --queue-capacity queued tasks is queue_full (socket and HTTP), batch refused whole', {
  timeout: 60_000,
  skip: CLUSTER && 'a cluster has no --queue-capacity: its queue is the database (docs/protocol-notes.md, Cluster mode)',
}, async () => {
  const a = await server.connect('websocket');
  try {
    const blocker = await a.submit({ kind: 'sha256', input: { data: 'x', rounds: 10_000_000 }, timeout_ms: 60_000 });
    await a.waitStatus(blocker.id, 'running');
    const queued = [];
    for (let i = 0; i < 3; i++) {
      queued.push(await a.submit({ kind: 'sha256', input: { data: `q${i}`, rounds: 1 } }));
    }
    assertErrorAck(await a.ack('task', { kind: 'sha256', input: { data: 'over', rounds: 1 } }), 'queue_full', '4th queued task');
    const before = totalTasks((await a.ack('dashboard', {})).stats);
    const h = await http(`${server.url}/tasks`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'sha256', input: { data: 'http', rounds: 1 } }),
    });
    assert.equal(h.status, 503, 'HTTP status for queue_full');
    const body = JSON.parse(await h.text());
    assert.equal(body.error?.code, 'queue_full');
    assertErrorAck(await a.ack('tasks', { tasks: [{ kind: 'echo', input: 1 }, { kind: 'echo', input: 2 }] }),
      'queue_full', 'batch over capacity');
    await sleep(ABSENCE_MS);
    assert.equal(totalTasks((await a.ack('dashboard', {})).stats), before, 'refused tasks were not created');
    // free the slot: the three queued tasks run, and there is room again
    assert.equal((await a.ack('cancel', { task_id: blocker.id })).ok, true);
    for (const t of queued) assert.equal((await a.waitResult(t.id)).status, 'succeeded');
    const r = await a.run({ kind: 'echo', input: 'room again' });
    assert.equal(r.output, 'room again');
    assert.deepEqual(a.disconnects, []);
  } finally { a.close(); }
});

test('timeout_ms null uses --default-timeout-ms', async () => {
  const a = await server.connect('websocket');
  try {
    const t = await a.submit({ kind: 'sleep', input: { ms: 60_000 } });
    assert.equal(t.timeout_ms, null, 'timeout_ms: null = server default');
    const r = await a.waitResult(t.id);
    assert.equal(r.status, 'timed_out');
    assert.equal(r.error?.code, 'timed_out');
    const explicitNull = await a.submit({ kind: 'sleep', input: { ms: 60_000 }, timeout_ms: null });
    assert.equal((await a.waitResult(explicitNull.id)).status, 'timed_out');
  } finally { a.close(); }
});
