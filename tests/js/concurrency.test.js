// Many sockets, many tasks in flight: every result arrives exactly once, with the right output.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, sleep, ABSENCE_MS, withTimeout } from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

const SOCKETS = 20;
const PER_SOCKET = 50;
const IN_FLIGHT = 10;

/** Runs PER_SOCKET echo tasks on one socket keeping IN_FLIGHT outstanding. */
async function drive(rec, s) {
  const results = new Map(); // task id -> count
  const outputs = new Map(); // task id -> output
  const expected = new Map(); // task id -> input
  let submitted = 0;
  let finished = 0;
  let failure = null;
  let wake;
  rec.socket.on('result', (t) => {
    results.set(t.id, (results.get(t.id) ?? 0) + 1);
    if (results.get(t.id) === 1) {
      outputs.set(t.id, t);
      finished += 1;
      wake?.();
    }
  });
  const submitOne = async () => {
    const i = submitted++;
    const input = { s, i, pad: `socket-${s}-task-${i}` };
    const res = await rec.ack('task', { kind: 'echo', input });
    if (!res?.ok) throw new Error(`socket ${s} task ${i} refused: ${JSON.stringify(res)}`);
    expected.set(res.task.id, input);
  };
  const inflight = () => submitted - finished;
  while (finished < PER_SOCKET) {
    while (submitted < PER_SOCKET && inflight() < IN_FLIGHT) {
      await submitOne().catch((e) => { failure = e; });
      if (failure) throw failure;
    }
    if (finished >= PER_SOCKET) break;
    const before = finished;
    await withTimeout(new Promise((resolve) => {
      wake = resolve;
      if (finished !== before) resolve();
    }), 20_000, `a result on socket ${s} (${finished}/${PER_SOCKET} done)`);
    wake = null;
  }
  return { results, outputs, expected };
}

for (const transport of TRANSPORTS) {
  describe(`concurrency over ${transport}`, () => {
    test(`${SOCKETS} sockets x ${PER_SOCKET} echo tasks, ${IN_FLIGHT} in flight each`, { timeout: 120_000 }, async () => {
      const recs = await Promise.all(Array.from({ length: SOCKETS }, () => server.connect(transport)));
      try {
        const runs = await Promise.all(recs.map((r, s) => drive(r, s)));
        await sleep(ABSENCE_MS);
        runs.forEach(({ results, outputs, expected }, s) => {
          assert.equal(expected.size, PER_SOCKET, `socket ${s}: acked tasks`);
          assert.equal(results.size, PER_SOCKET, `socket ${s}: distinct results (foreign results included)`);
          for (const [id, n] of results) {
            assert.ok(expected.has(id), `socket ${s} got a result for a task it does not own: ${id}`);
            assert.equal(n, 1, `socket ${s}: result for ${id} arrived ${n} times`);
            const t = outputs.get(id);
            assert.equal(t.status, 'succeeded');
            assert.equal(JSON.stringify(t.output), JSON.stringify(expected.get(id)));
          }
          assert.deepEqual(recs[s].disconnects, [], `socket ${s} was disconnected`);
        });
      } finally { recs.forEach((r) => r.close()); }
    });
  });
}
