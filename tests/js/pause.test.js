// PROTOCOL.md v1.1 "Looking up and operating on tasks": `POST
// /kinds/{kind}/pause` and `/resume`, and `GET /kinds` with `paused`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, http, sleep, ABSENCE_MS } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '1']); });
after(async () => { await server?.stop(); });

const post = (path) => http(`${server.url}${path}`, { method: 'POST' });
const kinds = async () => (await http(`${server.url}/kinds`)).json();

test('a paused kind stays queued, GET /kinds shows it paused, a resume runs it', async () => {
  const rec = await server.connect();
  try {
    const paused = await post('/kinds/sleep/pause');
    assert.equal(paused.status, 200);
    assert.deepEqual(await paused.json(), { kind: 'sleep', paused: true });
    // Submissions are still accepted, and other kinds still run.
    const held = await rec.submit({ kind: 'sleep', input: { ms: 1 } });
    assert.equal(held.status, 'queued');
    const other = await rec.run({ kind: 'echo', input: 'other' });
    assert.equal(other.status, 'succeeded');
    await sleep(ABSENCE_MS);
    assert.deepEqual(rec.all('status', (d) => d.task_id === held.id), []);
    const got = await (await http(`${server.url}/tasks/${held.id}`)).json();
    assert.equal(got.status, 'queued');
    const listed = await kinds();
    assert.ok(Array.isArray(listed), JSON.stringify(listed));
    for (const k of listed) {
      assert.deepEqual(Object.keys(k).sort(), ['kind', 'paused']);
      assert.equal(k.paused, k.kind === 'sleep', JSON.stringify(k));
    }
    assert.ok(listed.some((k) => k.kind === 'echo'));

    const resumed = await post('/kinds/sleep/resume');
    assert.equal(resumed.status, 200);
    assert.deepEqual(await resumed.json(), { kind: 'sleep', paused: false });
    const result = await rec.waitResult(held.id);
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(result.output, { slept_ms: 1 });
    assert.ok((await kinds()).every((k) => !k.paused));
  } finally {
    rec.close();
  }
});

test('pausing or resuming a kind the server does not know is 404 unknown_kind', async () => {
  for (const verb of ['pause', 'resume']) {
    const res = await post(`/kinds/no-such-kind/${verb}`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, 'unknown_kind');
  }
});
