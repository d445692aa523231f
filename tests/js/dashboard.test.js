// PROTOCOL.md: `dashboard` event and `stats` pushes to room `dashboard`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, TRANSPORTS, ISO_MS, sleep, ABSENCE_MS, WAIT_MS } from './helpers.js';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

function assertStats(s, what) {
  assert.ok(s && typeof s === 'object', `${what} is not an object`);
  for (const k of ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out']) {
    assert.ok(Number.isInteger(s[k]) && s[k] >= 0, `${what}.${k} = ${JSON.stringify(s[k])}`);
  }
  assert.ok(Array.isArray(s.workers), `${what}.workers is not an array`);
  assert.equal(typeof s.throughput_per_s, 'number', `${what}.throughput_per_s`);
  assert.ok(Number.isFinite(s.throughput_per_s) && s.throughput_per_s >= 0);
  assert.equal(typeof s.at, 'string', `${what}.at`);
  assert.match(s.at, ISO_MS, `${what}.at`);
}

/** Asks `dashboard` until its stats satisfy `cond` (bounded); returns those stats. */
async function untilStats(rec, cond, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const { stats } = await rec.ack('dashboard', {});
    if (cond(stats)) return stats;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last stats: ${JSON.stringify(stats)}`);
    await sleep(50);
  }
}

for (const transport of TRANSPORTS) {
  describe(`dashboard over ${transport}`, () => {
    test('dashboard ack {ok, stats} then stats pushes within 3 s', async () => {
      const a = await server.connect(transport);
      try {
        const res = await a.ack('dashboard', {});
        assert.equal(res.ok, true, JSON.stringify(res));
        assertStats(res.stats, 'ack.stats');
        // In a cluster the workers run on another node and are listed as of
        // its last heartbeat, which may not have come yet: ask until it has.
        const withWorkers = await untilStats(a, (s) => s.workers.length >= 2, 'two workers listed');
        assert.equal(withWorkers.workers.length, 2, 'two local workers were started');
        const first = await a.waitFor('stats', () => true, 'a stats push', 3000);
        assertStats(first, 'stats push');
        // "about twice a second": a second push follows within ~1.5 s more
        await a.until(() => a.all('stats').length >= 2, 'a second stats push', 3000);
      } finally { a.close(); }
    });

    test('stats counters follow the tasks', async () => {
      const a = await server.connect(transport);
      try {
        const before = (await a.ack('dashboard', {})).stats;
        await a.run({ kind: 'echo', input: 1 });
        await a.run({ kind: 'fail', input: { message: 'x' } });
        const after = (await a.ack('dashboard', {})).stats;
        assert.equal(after.succeeded, before.succeeded + 1);
        assert.equal(after.failed, before.failed + 1);
        // a stats push reflects them too
        const n = a.all('stats').length;
        const pushed = await a.until(() => a.all('stats').slice(n)[0], 'a fresh stats push', 3000);
        assert.ok(pushed.succeeded >= after.succeeded && pushed.failed >= after.failed, JSON.stringify(pushed));
      } finally { a.close(); }
    });

    test('a socket that did not send `dashboard` gets no stats pushes', async () => {
      const a = await server.connect(transport);
      const b = await server.connect(transport);
      try {
        assert.equal((await a.ack('dashboard', {})).ok, true);
        await a.waitFor('stats', () => true, 'stats push to A', 3000);
        await sleep(1200 + ABSENCE_MS);
        assert.equal(b.all('stats').length, 0, 'B got stats without joining the dashboard room');
      } finally { a.close(); b.close(); }
    });
  });
}
