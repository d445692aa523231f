// Namespace `/worker`: a remote worker written against PROTOCOL.md alone,
// with the official client, on a server without local workers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startServer, TRANSPORTS, withTimeout, WAIT_MS, ABSENCE_MS, sleep } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '0']); });
after(async () => { await server?.stop(); });

function connectWorker(transport, auth) {
  const w = io(`${server.url}/worker`, { transports: [transport], forceNew: true, reconnection: false, auth });
  const ready = new Promise((resolve, reject) => {
    w.once('connect', resolve);
    w.once('connect_error', reject);
  });
  return { w, ready: withTimeout(ready, WAIT_MS, 'worker connect') };
}

test('a bad worker auth is refused with connect_error', async () => {
  const { w, ready } = connectWorker('websocket', { name: '', kinds: [] });
  await assert.rejects(ready, (err) => /^invalid_payload/.test(err.message));
  w.close();
});

for (const transport of TRANSPORTS) {
  test(`remote worker over ${transport}: job, progress, done, fail, cancel, concurrency`, async () => {
    const name = `js-${transport}`;
    const { w, ready } = connectWorker(transport, { token: 'ignored', name, kinds: ['echo', 'shout'], concurrency: 2 });
    const running = new Map();
    let maxAtOnce = 0;
    const cancels = [];
    w.on('cancel', ({ task_id }) => { cancels.push(task_id); running.delete(task_id); });
    w.on('job', async (task) => {
      running.set(task.id, task);
      maxAtOnce = Math.max(maxAtOnce, running.size);
      assert.equal(task.status, 'running');
      assert.ok(task.worker.startsWith(`${name}#`), task.worker);
      if (task.input?.hold) return; // left running: to be cancelled
      await sleep(30);
      if (!running.has(task.id)) return;
      running.delete(task.id);
      if (task.input?.fail) {
        const ack = await w.emitWithAck('fail', { task_id: task.id, error: { code: 'bad_input', message: 'nope' } });
        assert.deepEqual(ack, { ok: true });
        return;
      }
      assert.deepEqual(await w.emitWithAck('progress', { task_id: task.id, done: 1, total: 2 }), { ok: true });
      const output = task.kind === 'shout' ? String(task.input.text).toUpperCase() : task.input;
      assert.deepEqual(await w.emitWithAck('done', { task_id: task.id, output }), { ok: true });
    });
    await ready;

    const c = await server.connect(transport);
    try {
      // A kind only this remote worker offers is accepted.
      const shout = await c.run({ kind: 'shout', input: { text: 'hi' } });
      assert.equal(shout.status, 'succeeded');
      assert.equal(shout.output, 'HI');
      assert.ok(c.about(shout.id).some((e) => e.event === 'progress'), 'progress relayed to the room');

      const failed = await c.run({ kind: 'echo', input: { fail: true } });
      assert.equal(failed.status, 'failed');
      assert.deepEqual(failed.error, { code: 'task_failed', message: 'nope' });

      // Five at once, concurrency 2: never more than 2 jobs held.
      const many = await Promise.all([0, 1, 2, 3, 4].map((i) => c.run({ kind: 'echo', input: { i } })));
      many.forEach((t, i) => assert.deepEqual(t.output, { i }));
      assert.ok(maxAtOnce <= 2, `held ${maxAtOnce} jobs at once`);

      // Cancel reaches the worker.
      const held = await c.submit({ kind: 'echo', input: { hold: true } });
      await c.waitStatus(held.id, 'running');
      const ack = await c.ack('cancel', { task_id: held.id });
      assert.equal(ack.task.status, 'cancelled');
      await withTimeout((async () => { while (!cancels.includes(held.id)) await sleep(10); })(), WAIT_MS, 'cancel event');

      // A malformed report is an error ack, not a disconnect.
      const bad = await w.emitWithAck('done', { nope: 1 });
      assert.equal(bad.ok, false);
      assert.equal(bad.error.code, 'invalid_payload');
      assert.ok(w.connected);
    } finally {
      c.close();
      w.close();
    }
    await sleep(ABSENCE_MS);
  });
}

test('a worker that disconnects puts its job back in the queue', async () => {
  const first = connectWorker('websocket', { name: 'first', kinds: ['echo'], concurrency: 1 });
  let got;
  const jobSeen = new Promise((r) => first.w.on('job', (t) => { got = t; r(); }));
  await first.ready;
  const c = await server.connect('websocket');
  try {
    const t = await c.submit({ kind: 'echo', input: 'x', max_attempts: 3 });
    await withTimeout(jobSeen, WAIT_MS, 'job');
    assert.equal(got.id, t.id);
    first.w.close();
    const back = await c.waitStatus(t.id, 'queued');
    assert.equal(back.attempt, 1);
    const second = connectWorker('websocket', { name: 'second', kinds: ['echo'], concurrency: 1 });
    second.w.on('job', (task) => second.w.emit('done', { task_id: task.id, output: task.input }));
    await second.ready;
    const done = await c.waitResult(t.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempt, 2);
    assert.ok(done.worker.startsWith('second#'));
    second.w.close();
  } finally { c.close(); }
});

// Security review, issue 8: what a worker may offer and send.

test('a worker offering markup as a kind, or too many kinds, is refused', async () => {
  for (const kinds of [['</title><img src=x onerror=alert(1)>'], ['a b'], Array.from({ length: 65 }, (_, i) => `k${i}`)]) {
    const { w, ready } = connectWorker('websocket', { name: 'bad', kinds });
    await assert.rejects(ready, (err) => /^invalid_payload: /.test(err.message));
    w.close();
  }
});

test('progress from a worker reaches the task room at most every 100 ms, plus the final one', async () => {
  const { w, ready } = connectWorker('websocket', { name: 'chatty', kinds: ['chatty'], concurrency: 1 });
  let span;
  let doneAck;
  w.on('job', async (task) => {
    const started = Date.now();
    const acks = [];
    for (let i = 0; i < 2000; i++) acks.push(w.emitWithAck('progress', { task_id: task.id, done: i, total: 2000 }));
    // Thinned-out reports are still acked: nothing is wrong with them.
    for (const ack of await Promise.all(acks)) assert.deepEqual(ack, { ok: true });
    assert.deepEqual(await w.emitWithAck('progress', { task_id: task.id, done: 2000, total: 2000 }), { ok: true });
    span = Date.now() - started;
    doneAck = w.emitWithAck('done', { task_id: task.id, output: 'ok' });
  });
  await ready;
  const c = await server.connect('websocket');
  try {
    const t = await c.run({ kind: 'chatty', input: null });
    assert.equal(t.status, 'succeeded');
    const progress = c.about(t.id).filter((e) => e.event === 'progress').map((e) => e.data);
    const allowed = Math.ceil(span / 100) + 2;
    assert.ok(progress.length >= 2 && progress.length <= allowed, `${progress.length} progress pushes in ${span} ms`);
    assert.deepEqual(progress.at(-1), { task_id: t.id, done: 2000, total: 2000 });
    assert.deepEqual(await doneAck, { ok: true });
  } finally {
    c.close();
    w.close();
  }
});

test('a worker over its event budget gets rate_limited acks and stays connected', async () => {
  const small = await startServer(['--workers', '0', '--max-events-per-sec', '10']);
  const w = io(`${small.url}/worker`, {
    transports: ['websocket'], forceNew: true, reconnection: false, auth: { name: 'flood', kinds: ['flood'] },
  });
  try {
    await withTimeout(new Promise((resolve, reject) => { w.once('connect', resolve); w.once('connect_error', reject); }), WAIT_MS, 'connect');
    const report = { task_id: '0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40', done: 1, total: 2 };
    const acks = await Promise.all(Array.from({ length: 100 }, () => w.timeout(WAIT_MS).emitWithAck('progress', report)));
    const limited = acks.filter((a) => a.ok === false && a.error.code === 'rate_limited');
    assert.deepEqual(acks[0], { ok: true });
    assert.ok(limited.length >= 50, `${limited.length} of 100 refused`);
    assert.ok(w.connected);
  } finally {
    w.close();
    await small.stop();
  }
});
