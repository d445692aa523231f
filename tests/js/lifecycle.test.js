// PROTOCOL.md lifecycle: "A worker that dies or disconnects while running a task
// puts it back to `queued` (attempt kept) until `max_attempts` is reached; then
// it is `failed` with code `worker_lost`." We kill the local worker process that
// runs the task (its pid comes from the dashboard's `workers`, and we only kill
// it after checking it is a child of the server this test started).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, sleep, ABSENCE_MS, assertErrorAck, WAIT_MS } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '1']); });
after(async () => { await server?.stop(); });

function parentPid(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The worker processes killed so far. */
const killed = new Set();

/**
 * Kills the worker process running `taskId`; returns false if the server
 * exposes no pid. Asks the dashboard until it lists a worker, not killed
 * before, running the task: in a cluster the workers run on another node and
 * are listed as of its last heartbeat, so a worker killed a moment ago may
 * still be shown running it.
 */
async function killWorkerOf(rec, taskId) {
  const deadline = Date.now() + WAIT_MS;
  let w;
  for (;;) {
    const { stats } = await rec.ack('dashboard', {});
    if (stats.workers.length > 0 && stats.workers.every((x) => !Number.isInteger(x?.pid))) return false;
    w = stats.workers.find((x) => x && x.current_task === taskId && !killed.has(x.pid));
    if (w) break;
    if (Date.now() > deadline) assert.fail(`no worker listed running ${taskId}: ${JSON.stringify(stats.workers)}`);
    await sleep(50);
  }
  assert.equal(parentPid(w.pid), server.workerProc.pid, 'the worker is a child of our server');
  process.kill(w.pid, 'SIGKILL');
  killed.add(w.pid);
  return true;
}

test('a lost worker re-queues the task (attempt kept), then worker_lost at max_attempts', { timeout: 60_000 }, async (t) => {
  const a = await server.connect('websocket');
  try {
    const task = await a.submit({ kind: 'sleep', input: { ms: 600_000 }, max_attempts: 2 });
    const r1 = await a.waitFor('status', (s) => s.task_id === task.id && s.status === 'running' && s.attempt === 1, 'running attempt 1');
    assert.equal(typeof r1.worker, 'string');
    if (!(await killWorkerOf(a, task.id))) {
      t.skip('the dashboard exposes no worker pid; cannot kill a worker from outside');
      return;
    }
    const q = await a.waitFor('status', (s) => s.task_id === task.id && s.status === 'queued', 'status queued after the worker died');
    assert.equal(q.attempt, 1, 'attempt kept when re-queued');
    const r2 = await a.waitFor('status', (s) => s.task_id === task.id && s.status === 'running' && s.attempt === 2, 'running attempt 2');
    assert.equal(typeof r2.worker, 'string');
    assert.equal(a.all('result', (x) => x.id === task.id).length, 0, 'no result while retrying');
    assert.ok(await killWorkerOf(a, task.id));
    const res = await a.waitResult(task.id);
    assert.equal(res.status, 'failed');
    assert.equal(res.error?.code, 'worker_lost');
    assert.equal(res.attempt, 2);
    await sleep(ABSENCE_MS);
    assert.equal(a.all('result', (x) => x.id === task.id).length, 1, 'result exactly once');
    assertErrorAck(await a.ack('cancel', { task_id: task.id }), 'already_finished', 'cancel after worker_lost');
    // the pool recovers: new tasks still run
    const e = await a.run({ kind: 'echo', input: 'recovered' });
    assert.equal(e.output, 'recovered');
  } finally { a.close(); }
});

test('a task whose worker died once still finishes with its real output', { timeout: 60_000 }, async (t) => {
  const a = await server.connect('websocket');
  try {
    const task = await a.submit({ kind: 'sleep', input: { ms: 1500 } });
    await a.waitFor('status', (s) => s.task_id === task.id && s.status === 'running', 'running');
    if (!(await killWorkerOf(a, task.id))) { t.skip('no worker pid exposed'); return; }
    await a.waitFor('status', (s) => s.task_id === task.id && s.status === 'queued', 're-queued');
    const r = await a.waitResult(task.id);
    assert.equal(r.status, 'succeeded');
    assert.deepEqual(r.output, { slept_ms: 1500 });
    assert.equal(r.attempt, 2);
  } finally { a.close(); }
});
