// PROTOCOL.md: every bad payload gets an error ack, never a disconnect, never a task.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, TRANSPORTS, assertErrorAck, totalTasks, sleep, ABSENCE_MS, assertTaskShape,
} from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

const UNKNOWN_UUID = '0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40';

/** [description, payload, expected code(s)] for the `task` event. */
const BAD_TASKS = [
  ['payload is a number', 42, 'invalid_payload'],
  ['payload is a string', 'echo', 'invalid_payload'],
  ['payload is an array', [{ kind: 'echo', input: {} }], 'invalid_payload'],
  ['payload is null', null, 'invalid_payload'],
  ['payload is a boolean', true, 'invalid_payload'],
  ['missing kind', { input: { a: 1 } }, 'invalid_payload'],
  ['kind is not a string', { kind: 5, input: {} }, 'invalid_payload'],
  ['unknown kind', { kind: 'no-such-kind', input: {} }, 'unknown_kind'],
  ['sleep ms -1', { kind: 'sleep', input: { ms: -1 } }, 'invalid_payload'],
  ['sleep ms 1.5', { kind: 'sleep', input: { ms: 1.5 } }, 'invalid_payload'],
  ['sleep ms "10"', { kind: 'sleep', input: { ms: '10' } }, 'invalid_payload'],
  ['sleep ms 3600001', { kind: 'sleep', input: { ms: 3_600_001 } }, 'invalid_payload'],
  ['sleep ms missing', { kind: 'sleep', input: {} }, 'invalid_payload'],
  ['sleep input not an object', { kind: 'sleep', input: 10 }, 'invalid_payload'],
  ['primes limit 10000000001', { kind: 'primes', input: { limit: 10_000_000_001 } }, 'invalid_payload'],
  ['primes limit -1', { kind: 'primes', input: { limit: -1 } }, 'invalid_payload'],
  ['primes limit 2.5', { kind: 'primes', input: { limit: 2.5 } }, 'invalid_payload'],
  ['primes limit "100"', { kind: 'primes', input: { limit: '100' } }, 'invalid_payload'],
  ['sha256 rounds 0', { kind: 'sha256', input: { data: 'abc', rounds: 0 } }, 'invalid_payload'],
  ['sha256 rounds 10000001', { kind: 'sha256', input: { data: 'abc', rounds: 10_000_001 } }, 'invalid_payload'],
  ['sha256 data not a string', { kind: 'sha256', input: { data: 5, rounds: 1 } }, 'invalid_payload'],
  ['sha256 data missing', { kind: 'sha256', input: { rounds: 1 } }, 'invalid_payload'],
  ['fail without message', { kind: 'fail', input: {} }, 'invalid_payload'],
  ['fail message not a string', { kind: 'fail', input: { message: 5 } }, 'invalid_payload'],
  ['priority "x"', { kind: 'echo', input: {}, priority: 'x' }, 'invalid_payload'],
  ['timeout_ms "x"', { kind: 'echo', input: {}, timeout_ms: 'x' }, 'invalid_payload'],
  ['max_attempts "x"', { kind: 'echo', input: {}, max_attempts: 'x' }, 'invalid_payload'],
];

async function stats(rec) {
  const res = await rec.ack('dashboard', {});
  assert.equal(res.ok, true, JSON.stringify(res));
  return res.stats;
}

for (const transport of TRANSPORTS) {
  describe(`error acks over ${transport}`, () => {
    test('bad `task` payloads are error acks, create nothing, keep the socket usable', async () => {
      const a = await server.connect(transport);
      try {
        const before = totalTasks(await stats(a));
        for (const [what, payload, code] of BAD_TASKS) {
          const res = await a.ack('task', payload);
          assertErrorAck(res, code, `task: ${what}`);
        }
        await sleep(ABSENCE_MS);
        assert.equal(totalTasks(await stats(a)), before, 'no task was created by a bad payload');
        assert.deepEqual(a.all('status'), [], 'no status event for refused tasks');
        assert.deepEqual(a.all('result'), [], 'no result event for refused tasks');
        assert.deepEqual(a.disconnects, [], 'the socket was never disconnected');
        const r = await a.run({ kind: 'echo', input: { still: 'alive' } });
        assert.deepEqual(r.output, { still: 'alive' });
      } finally { a.close(); }
    });

    test('an emit with no payload at all (only the ack callback) gets an error ack', async () => {
      const a = await server.connect(transport);
      try {
        for (const ev of ['task', 'tasks', 'subscribe', 'unsubscribe', 'cancel']) {
          const res = await a.ack(ev);
          assertErrorAck(res, 'invalid_payload', `${ev} without payload`);
        }
        assert.deepEqual(a.disconnects, []);
        const r = await a.run({ kind: 'echo', input: 1 });
        assert.equal(r.output, 1);
      } finally { a.close(); }
    });

    test('boundary values are accepted: sleep 3600000, primes 10^10, sha256 10^7 (then cancelled)', async () => {
      const a = await server.connect(transport);
      try {
        for (const payload of [
          { kind: 'sleep', input: { ms: 3_600_000 } },
          { kind: 'primes', input: { limit: 10_000_000_000 } },
          { kind: 'sha256', input: { data: 'x', rounds: 10_000_000 } },
        ]) {
          const task = await a.submit(payload);
          const c = await a.ack('cancel', { task_id: task.id });
          assert.equal(c.ok, true, JSON.stringify(c));
          assert.equal(c.task.status, 'cancelled');
          const r = await a.waitResult(task.id);
          assert.equal(r.status, 'cancelled');
        }
      } finally { a.close(); }
    });

    test('`tasks` with 1001 items is refused whole; one bad item refuses the batch', async () => {
      const a = await server.connect(transport);
      try {
        const before = totalTasks(await stats(a));
        const many = Array.from({ length: 1001 }, (_, i) => ({ kind: 'echo', input: { i } }));
        assertErrorAck(await a.ack('tasks', { tasks: many }), 'invalid_payload', 'tasks x1001');
        const oneBad = [
          { kind: 'echo', input: { i: 0 } },
          { kind: 'sleep', input: { ms: -1 } },
          { kind: 'echo', input: { i: 2 } },
        ];
        assertErrorAck(await a.ack('tasks', { tasks: oneBad }), 'invalid_payload', 'tasks with one bad item');
        const oneUnknown = [{ kind: 'echo', input: {} }, { kind: 'nope', input: {} }];
        assertErrorAck(await a.ack('tasks', { tasks: oneUnknown }), ['unknown_kind', 'invalid_payload'],
          'tasks with one unknown kind');
        assertErrorAck(await a.ack('tasks', { tasks: 'x' }), 'invalid_payload', 'tasks not an array');
        assertErrorAck(await a.ack('tasks', {}), 'invalid_payload', 'tasks field missing');
        assertErrorAck(await a.ack('tasks', [{ kind: 'echo', input: {} }]), 'invalid_payload', 'tasks payload is an array');
        await sleep(ABSENCE_MS);
        assert.equal(totalTasks(await stats(a)), before, 'nothing was queued');
        assert.deepEqual(a.all('status'), []);
        assert.deepEqual(a.all('result'), []);
        assert.deepEqual(a.disconnects, []);
        const r = await a.run({ kind: 'echo', input: 'ok' });
        assert.equal(r.output, 'ok');
      } finally { a.close(); }
    });

    test('subscribe / unsubscribe / cancel with bad or unknown task_id', async () => {
      const a = await server.connect(transport);
      try {
        for (const ev of ['subscribe', 'unsubscribe', 'cancel']) {
          assertErrorAck(await a.ack(ev, { task_id: 5 }), 'invalid_payload', `${ev} task_id 5`);
          assertErrorAck(await a.ack(ev, { task_id: null }), 'invalid_payload', `${ev} task_id null`);
          assertErrorAck(await a.ack(ev, {}), 'invalid_payload', `${ev} without task_id`);
          assertErrorAck(await a.ack(ev, 'x'), 'invalid_payload', `${ev} payload a string`);
        }
        for (const ev of ['subscribe', 'cancel']) {
          assertErrorAck(await a.ack(ev, { task_id: 'not-a-uuid' }), ['invalid_payload', 'not_found'],
            `${ev} non-UUID string`);
          assertErrorAck(await a.ack(ev, { task_id: UNKNOWN_UUID }), 'not_found', `${ev} unknown UUID`);
        }
        assert.deepEqual(a.disconnects, []);
        const r = await a.run({ kind: 'echo', input: [1] });
        assert.deepEqual(r.output, [1]);
      } finally { a.close(); }
    });

    test('cancel of a finished task is already_finished and changes nothing', async () => {
      const a = await server.connect(transport);
      try {
        const done = await a.run({ kind: 'echo', input: { f: 1 } });
        assert.equal(done.status, 'succeeded');
        assertErrorAck(await a.ack('cancel', { task_id: done.id }), 'already_finished', 'cancel finished');
        const failed = await a.run({ kind: 'fail', input: { message: 'x' } });
        assertErrorAck(await a.ack('cancel', { task_id: failed.id }), 'already_finished', 'cancel failed task');
        const snap = await a.ack('subscribe', { task_id: done.id });
        assert.equal(snap.ok, true);
        assertTaskShape(snap.task);
        assert.equal(snap.task.status, 'succeeded', 'still succeeded after the refused cancel');
        assert.deepEqual(snap.task.output, { f: 1 });
        await sleep(ABSENCE_MS);
        assert.equal(a.all('result', (d) => d.id === done.id).length, 1);
        const r = await a.run({ kind: 'echo', input: 'after' });
        assert.equal(r.output, 'after');
      } finally { a.close(); }
    });
  });
}
