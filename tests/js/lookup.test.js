// PROTOCOL.md v1.1 "Looking up and operating on tasks": `list` /
// `GET /tasks?status=&kind=&key=&limit=&before=` and
// `GET /tasks/{id}/attempts`. Every client's tasks are listed, so each test
// tags its tasks with keys of its own and narrows listings by key prefix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, assertErrorAck, assertTaskShape, http, ISO_MS, WAIT_MS, sleep } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '2']); });
after(async () => { await server?.stop(); });

const tag = () => `lk-${randomUUID().slice(0, 8)}`;

/** One page over the socket; asserts its shape. */
async function page(rec, query) {
  const res = await rec.ack('list', query);
  assert.equal(res.ok, true, JSON.stringify(res).slice(0, 300));
  assert.ok(Array.isArray(res.tasks));
  assert.ok(res.next === null || typeof res.next === 'string', `next = ${JSON.stringify(res.next)}`);
  for (const t of res.tasks) assertTaskShape(t, 'listed task');
  return res;
}

/** One page over HTTP (the same object as the ack). */
async function httpPage(query) {
  const qs = new URLSearchParams(query).toString();
  const r = await http(`${server.url}/tasks?${qs}`);
  assert.equal(r.status, 200, `GET /tasks?${qs}: ${r.status}`);
  const body = await r.json();
  assert.equal(body.ok, true);
  return body;
}

/** Ids of every page of `query`, following `next`; `between` runs after each page. */
async function allIds(rec, query, between = async () => {}) {
  const ids = [];
  let q = { ...query };
  for (;;) {
    const res = await page(rec, q);
    ids.push(...res.tasks.map((t) => t.id));
    if (res.next === null) return ids;
    await between();
    q = { ...query, before: res.next };
  }
}

async function runAll(rec, payloads) {
  const tasks = [];
  for (const p of payloads) tasks.push(await rec.submit(p));
  await Promise.all(tasks.map((t) => rec.waitResult(t.id)));
  return tasks;
}

test('pages go newest first without duplicates or gaps while new tasks arrive', async () => {
  const rec = await server.connect();
  try {
    const t = tag();
    const first = [];
    for (let i = 0; i < 23; i++) first.push((await rec.submit({ kind: 'echo', input: i, key: `${t}:${i}` })).id);
    const expected = [...first].reverse();
    let n = 0;
    const more = async () => { await rec.submit({ kind: 'echo', input: n, key: `${t}:new:${n++}` }); };
    // Filtered by the prefix, and over every task of the server.
    assert.deepEqual(await allIds(rec, { key: `${t}:*`, limit: 5 }, more), expected);
    const everything = await allIds(rec, { limit: 7 }, more);
    assert.equal(new Set(everything).size, everything.length, 'no task twice');
    assert.deepEqual(everything.filter((id) => first.includes(id)), expected);
    // The newest page now starts with what arrived meanwhile.
    const newest = await page(rec, { key: `${t}:new:*`, limit: 1 });
    assert.equal(newest.tasks[0].key, `${t}:new:${n - 1}`);
    // HTTP pages are the same.
    const ids = [];
    let q = { key: `${t}:*`, limit: '9' };
    for (;;) {
      const body = await httpPage(q);
      ids.push(...body.tasks.map((x) => x.id));
      if (body.next === null) break;
      q = { ...q, before: body.next };
    }
    assert.deepEqual(ids.filter((id) => first.includes(id)), expected);
    assert.equal(ids.length, first.length + n);
  } finally {
    rec.close();
  }
});

test('status, kind and key filter, alone and together, on the socket and over HTTP', async () => {
  const rec = await server.connect();
  try {
    const t = tag();
    const [e0, e1, e2, x] = await runAll(rec, [
      { kind: 'echo', input: 0, key: `${t}:e:0` },
      { kind: 'echo', input: 1, key: `${t}:e:1` },
      { kind: 'echo', input: 2, key: `${t}:e:10` },
      { kind: 'fail', input: { message: 'no' }, key: `${t}:x` },
    ]);
    const cases = [
      [{ key: `${t}:*` }, [x, e2, e1, e0]],
      [{ key: `${t}:e:1*` }, [e2, e1]],
      [{ key: `${t}:e:1` }, [e1]],
      [{ key: `${t}:e` }, []],
      [{ key: `${t}:*`, status: 'failed' }, [x]],
      [{ key: `${t}:*`, kind: 'echo' }, [e2, e1, e0]],
      [{ key: `${t}:*`, kind: 'echo', status: 'failed' }, []],
      [{ key: `${t}:*`, kind: 'echo', status: 'succeeded', limit: 2 }, [e2, e1]],
      [{ key: `${t}:*`, kind: 'sleep' }, []],
    ];
    for (const [query, want] of cases) {
      const res = await page(rec, query);
      assert.deepEqual(res.tasks.map((x) => x.id), want.map((x) => x.id), JSON.stringify(query));
      const body = await httpPage(Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])));
      assert.deepEqual(body.tasks.map((x) => x.id), want.map((x) => x.id), `HTTP ${JSON.stringify(query)}`);
    }
    const [res] = (await page(rec, { key: `${t}:x` })).tasks;
    assert.equal(res.status, 'failed');
    assert.deepEqual(res.error, { code: 'task_failed', message: 'no' });
    // Without a key: every task listed passes the filter, ours among them.
    const failed = await page(rec, { status: 'failed', limit: 500 });
    assert.ok(failed.tasks.every((x) => x.status === 'failed'));
    assert.ok(failed.tasks.some((x) => x.key === `${t}:x`));
    const echoes = await page(rec, { kind: 'echo', limit: 500 });
    assert.ok(echoes.tasks.every((x) => x.kind === 'echo'));
    assert.ok(echoes.tasks.some((x) => x.id === e0.id));
    // Empty query values filter nothing; a page without `limit` holds at most 50.
    const plain = await httpPage({ status: '', kind: '', key: '', before: '' });
    assert.ok(plain.tasks.length > 0 && plain.tasks.length <= 50);
    assert.deepEqual((await page(rec, {})).tasks.map((x) => x.id), plain.tasks.map((x) => x.id));
  } finally {
    rec.close();
  }
});

test('bad queries are invalid_payload naming their field, on the socket and over HTTP', async () => {
  const rec = await server.connect();
  try {
    for (const [query, field] of [
      [{ limit: 0 }, 'limit'], [{ limit: 501 }, 'limit'], [{ limit: 'ten' }, 'limit'],
      [{ limit: 2.5 }, 'limit'], [{ status: 'done' }, 'status'], [{ before: 'nope' }, 'before'],
      [{ kind: 5 }, 'kind'], [{ key: ['a'] }, 'key'],
    ]) {
      const res = await rec.ack('list', query);
      assertErrorAck(res, 'invalid_payload', JSON.stringify(query));
      assert.equal(res.error.field, field, JSON.stringify(res.error));
    }
    assertErrorAck(await rec.ack('list', [1]), 'invalid_payload', 'an array');
    for (const [qs, field] of [['limit=0', 'limit'], ['limit=x', 'limit'], ['status=bogus', 'status'], ['before=-1', 'before']]) {
      const r = await http(`${server.url}/tasks?${qs}`);
      assert.ok([400, 422].includes(r.status), `${qs}: ${r.status}`);
      const body = await r.json();
      assert.equal(body.error.code, 'invalid_payload', qs);
      assert.equal(body.error.field, field, qs);
    }
    // The socket is still fine.
    assert.equal((await rec.ack('list', { limit: 1 })).ok, true);
  } finally {
    rec.close();
  }
});

async function attempts(id) {
  const r = await http(`${server.url}/tasks/${id}/attempts`);
  assert.equal(r.status, 200, `attempts of ${id}: ${r.status}`);
  const body = await r.json();
  assert.ok(Array.isArray(body.attempts));
  for (const a of body.attempts) {
    assert.deepEqual(Object.keys(a).sort(), ['attempt', 'error', 'finished_at', 'outcome', 'started_at', 'worker']);
    assert.match(a.started_at, ISO_MS);
    assert.ok(a.finished_at === null || ISO_MS.test(a.finished_at));
  }
  return body.attempts;
}

test('a task retried after failures shows each attempt, oldest first', async () => {
  const rec = await server.connect();
  try {
    const done = await rec.run({
      kind: 'fail', input: { message: 'again' }, retry_on_failure: true, backoff_ms: 0, max_attempts: 3,
    });
    assert.deepEqual([done.status, done.attempt], ['failed', 3]);
    const all = await attempts(done.id);
    assert.deepEqual(all.map((a) => [a.attempt, a.outcome]), [[1, 'failed'], [2, 'failed'], [3, 'failed']]);
    for (const a of all) {
      assert.equal(typeof a.worker, 'string', JSON.stringify(a));
      assert.ok(a.finished_at >= a.started_at, JSON.stringify(a));
      assert.deepEqual(a.error, { code: 'task_failed', message: 'again' });
    }
    assert.equal(all[2].finished_at, done.finished_at);
    assert.ok(all[0].finished_at <= all[1].started_at, 'one after the other');
  } finally {
    rec.close();
  }
});

test('attempts of a task that ran once, one running, one that never ran, and none', async () => {
  const rec = await server.connect();
  try {
    const ok = await rec.run({ kind: 'echo', input: 'once' });
    const [one] = await attempts(ok.id);
    assert.deepEqual([one.attempt, one.outcome, one.error, one.worker], [1, 'succeeded', null, ok.worker]);
    assert.deepEqual([one.started_at, one.finished_at], [ok.started_at, ok.finished_at]);

    const long = await rec.submit({ kind: 'sleep', input: { ms: 60_000 } });
    await rec.waitStatus(long.id, 'running');
    // A stored server shows what it committed: the running state follows shortly.
    const deadline = Date.now() + WAIT_MS;
    let running = await attempts(long.id);
    while (running.length === 0 && Date.now() < deadline) {
      await sleep(50);
      running = await attempts(long.id);
    }
    assert.deepEqual(running.map((a) => [a.attempt, a.outcome, a.finished_at, a.error]), [[1, 'running', null, null]]);
    await rec.ack('cancel', { task_id: long.id });
    const cancelled = await rec.waitResult(long.id);
    const [c] = await attempts(long.id);
    assert.deepEqual([c.outcome, c.error.code, c.finished_at], ['cancelled', 'cancelled', cancelled.finished_at]);

    const later = await rec.submit({ kind: 'echo', input: 1, delay_ms: 3_600_000 });
    assert.deepEqual(await attempts(later.id), []);
    await rec.ack('cancel', { task_id: later.id });

    for (const id of ['0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40', 'not-a-uuid']) {
      const r = await http(`${server.url}/tasks/${id}/attempts`);
      assert.equal(r.status, 404, id);
      assert.equal((await r.json()).error.code, 'not_found');
    }
  } finally {
    rec.close();
  }
});
