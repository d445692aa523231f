// PROTOCOL.md "Built-in kinds": exact outputs of sleep, primes, sha256, fail.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startServer, TRANSPORTS, assertTaskShape } from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

function sha256Rounds(data, rounds) {
  let buf = createHash('sha256').update(Buffer.from(data, 'utf8')).digest();
  for (let i = 1; i < rounds; i++) buf = createHash('sha256').update(buf).digest();
  return buf.toString('hex');
}

for (const transport of TRANSPORTS) {
  describe(`kinds over ${transport}`, () => {
    test('sleep {ms:50} -> {slept_ms:50}', async () => {
      const a = await server.connect(transport);
      try {
        const t0 = Date.now();
        const r = await a.run({ kind: 'sleep', input: { ms: 50 } });
        assertTaskShape(r, 'result');
        assert.equal(r.status, 'succeeded');
        assert.deepEqual(r.output, { slept_ms: 50 });
        assert.ok(Date.now() - t0 >= 45, 'the task actually slept');
        assert.ok(Date.parse(r.finished_at) - Date.parse(r.started_at) >= 45, 'started_at..finished_at covers the sleep');
      } finally { a.close(); }
    });

    test('sleep {ms:0} -> {slept_ms:0}', async () => {
      const a = await server.connect(transport);
      try {
        const r = await a.run({ kind: 'sleep', input: { ms: 0 } });
        assert.equal(r.status, 'succeeded');
        assert.deepEqual(r.output, { slept_ms: 0 });
      } finally { a.close(); }
    });

    test('primes small limits: 0, 1, 2, 10, 1000000', async () => {
      const a = await server.connect(transport);
      try {
        for (const [limit, count] of [[0, 0], [1, 0], [2, 1], [10, 4], [1_000_000, 78498]]) {
          const r = await a.run({ kind: 'primes', input: { limit } });
          assert.equal(r.status, 'succeeded', `limit ${limit}`);
          assert.deepEqual(r.output, { count }, `limit ${limit}`);
        }
      } finally { a.close(); }
    });

    test('sha256 rounds 1 and 2, and data with non-ASCII UTF-8', async () => {
      const a = await server.connect(transport);
      try {
        let r = await a.run({ kind: 'sha256', input: { data: 'abc', rounds: 1 } });
        assert.equal(r.status, 'succeeded');
        assert.deepEqual(r.output, { hex: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' });
        r = await a.run({ kind: 'sha256', input: { data: 'abc', rounds: 2 } });
        assert.deepEqual(r.output, { hex: sha256Rounds('abc', 2) });
        r = await a.run({ kind: 'sha256', input: { data: 'héllo 😀', rounds: 1000 } });
        assert.deepEqual(r.output, { hex: sha256Rounds('héllo 😀', 1000) });
        r = await a.run({ kind: 'sha256', input: { data: '', rounds: 1 } });
        assert.deepEqual(r.output, { hex: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
      } finally { a.close(); }
    });

    test('fail {message:"boom"} -> failed, error {task_failed, boom}, attempt 1, never retried', async () => {
      const a = await server.connect(transport);
      try {
        const task = await a.submit({ kind: 'fail', input: { message: 'boom' } });
        const r = await a.waitResult(task.id);
        assertTaskShape(r, 'result');
        assert.equal(r.status, 'failed');
        assert.deepEqual(r.error, { code: 'task_failed', message: 'boom' });
        assert.equal(r.attempt, 1);
        assert.equal(r.output, null);
        assert.equal(a.all('status', (d) => d.task_id === task.id && d.status === 'running').length, 1,
          'a handler error is final: exactly one run');
      } finally { a.close(); }
    });
  });
}

test('primes {limit: 100000000} -> {count: 5761455} with progress events', { timeout: 120_000 }, async () => {
  const a = await server.connect('websocket');
  try {
    const t0 = Date.now();
    const task = await a.submit({ kind: 'primes', input: { limit: 100_000_000 } });
    const r = await a.waitResult(task.id, 100_000);
    const secs = (Date.now() - t0) / 1000;
    assert.equal(r.status, 'succeeded');
    assert.deepEqual(r.output, { count: 5761455 });
    const progress = a.all('progress', (d) => d.task_id === task.id);
    assert.ok(progress.length >= 1, 'at least one progress event');
    assert.ok(progress.length <= 3 + Math.ceil(12 * secs),
      `progress is rate-limited (~10/s): ${progress.length} events in ${secs.toFixed(2)} s`);
    for (const p of progress) {
      for (const k of Object.keys(p)) assert.ok(['task_id', 'done', 'total', 'message'].includes(k), `progress key ${k}`);
      assert.equal(typeof p.done, 'number');
      assert.equal(typeof p.total, 'number');
      assert.ok(p.done >= 0 && p.done <= p.total, JSON.stringify(p));
      if ('message' in p) assert.equal(typeof p.message, 'string');
    }
    // every progress event comes before the result
    const evs = a.about(task.id).map((e) => e.event);
    assert.ok(evs.lastIndexOf('progress') < evs.indexOf('result'), evs.join(','));
    // the final task keeps the last progress {done,total}
    assert.ok(r.progress === null || (r.progress.done <= r.progress.total), JSON.stringify(r.progress));
  } finally { a.close(); }
});
