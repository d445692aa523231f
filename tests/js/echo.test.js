// PROTOCOL.md: the `task` event, its ack, `status` and `result` pushes (echo kind).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, TRANSPORTS, ISO_MS, UUID_V7, ABSENCE_MS, sleep, assertTaskShape,
} from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

// Key order is deliberately not alphabetical, nested, and mixes every JSON type.
// (No integer-like keys: JS itself would reorder those.)
const INPUT = {
  zeta: 'last-first',
  alpha: 1,
  middle: { y: [3, 2, 1], b: null, a: { k2: true, k1: false } },
  list: [{ b: 1, a: 2 }, 'x', -7, 1.5, [], {}],
  'key with spaces': 'quote " backslash \\ newline \n unicode é 😀',
  neg: -123456789,
  float: 0.1,
  empty: '',
};

for (const transport of TRANSPORTS) {
  describe(`echo over ${transport}`, () => {
    test('task ack, status running, result with identical output (key order kept)', async () => {
      const a = await server.connect(transport);
      try {
        const t0 = Date.now();
        const ack = await a.ack('task', { kind: 'echo', input: INPUT });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        const task = ack.task;
        assertTaskShape(task, 'ack.task');
        assert.match(task.id, UUID_V7);
        assert.equal(task.kind, 'echo');
        assert.equal(JSON.stringify(task.input), JSON.stringify(INPUT), 'ack input must equal submitted input, same key order');
        assert.equal(task.priority, 0, 'default priority is 0');
        assert.equal(task.status, 'queued');
        assert.equal(task.attempt, 0);
        assert.equal(task.worker, null);
        assert.equal(task.output, null);
        assert.equal(task.error, null);
        assert.equal(task.progress, null);
        assert.equal(task.started_at, null);
        assert.equal(task.finished_at, null);
        assert.match(task.created_at, ISO_MS);
        assert.ok(Math.abs(Date.parse(task.created_at) - t0) < 60_000, 'created_at is about now');

        const running = await a.waitStatus(task.id, 'running');
        assert.deepEqual(Object.keys(running).sort(), ['attempt', 'status', 'task_id', 'worker']);
        assert.equal(running.task_id, task.id);
        assert.equal(running.attempt, 1);
        assert.equal(typeof running.worker, 'string');
        assert.ok(running.worker.length > 0);

        const result = await a.waitResult(task.id);
        assertTaskShape(result, 'result');
        assert.equal(result.id, task.id);
        assert.equal(result.status, 'succeeded');
        assert.equal(result.attempt, 1);
        assert.equal(result.error, null);
        assert.equal(result.worker, running.worker);
        assert.deepEqual(result.output, INPUT);
        assert.equal(JSON.stringify(result.output), JSON.stringify(INPUT), 'output key order must be preserved');
        assert.equal(JSON.stringify(result.input), JSON.stringify(INPUT));
        assert.equal(result.created_at, task.created_at);
        assert.match(result.started_at, ISO_MS);
        assert.match(result.finished_at, ISO_MS);
        assert.ok(Date.parse(result.created_at) <= Date.parse(result.started_at));
        assert.ok(Date.parse(result.started_at) <= Date.parse(result.finished_at));

        await sleep(ABSENCE_MS);
        assert.equal(a.all('result', (d) => d.id === task.id).length, 1, 'result exactly once');
        assert.equal(a.all('status', (d) => d.task_id === task.id && d.status === 'queued').length, 0,
          'no status event on creation');
        // status running comes before result
        const evs = a.about(task.id).map((e) => `${e.event}:${e.data.status}`);
        assert.ok(evs.indexOf('status:running') < evs.indexOf('result:succeeded'), evs.join(','));
        assert.deepEqual(a.disconnects, []);
      } finally {
        a.close();
      }
    });

    test('explicit fields: priority, timeout_ms, max_attempts are kept in the task', async () => {
      const a = await server.connect(transport);
      try {
        const task = await a.submit({ kind: 'echo', input: { p: 1 }, priority: 7, timeout_ms: 5000, max_attempts: 2 });
        assert.equal(task.priority, 7);
        assert.equal(task.timeout_ms, 5000);
        assert.equal(task.max_attempts, 2);
        const result = await a.waitResult(task.id);
        assert.equal(result.status, 'succeeded');
        assert.deepEqual(result.output, { p: 1 });
      } finally {
        a.close();
      }
    });

    test('echo accepts any JSON input: string, number, array, null, nested array', async () => {
      const a = await server.connect(transport);
      try {
        for (const input of ['hello', 42, -0.5, true, null, [1, 'a', null, { z: 1, a: 2 }], [[[]]]]) {
          const r = await a.run({ kind: 'echo', input });
          assert.equal(r.status, 'succeeded', JSON.stringify(input));
          assert.equal(JSON.stringify(r.output), JSON.stringify(input));
        }
      } finally {
        a.close();
      }
    });

    test('a 500 KB input (under the 1 MiB default message limit) round-trips', async () => {
      const a = await server.connect(transport);
      try {
        const input = { blob: 'x'.repeat(500 * 1024), tail: 'end' };
        const r = await a.run({ kind: 'echo', input });
        assert.equal(r.status, 'succeeded');
        assert.equal(r.output.blob.length, input.blob.length);
        assert.equal(JSON.stringify(r.output), JSON.stringify(input));
        assert.deepEqual(a.disconnects, []);
      } finally {
        a.close();
      }
    });
  });
}
