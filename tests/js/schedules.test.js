// PROTOCOL.md v1.1 "Recurring schedules": `schedule`, `schedules`,
// `unschedule` and the /schedules routes, and a real firing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertErrorAck, http, ISO_MS } from './helpers.js';

let server;
before(async () => { server = await startServer(['--workers', '1']); });
after(async () => { await server?.stop(); });

const SCHEDULE_KEYS = ['name', 'cron', 'timezone', 'task', 'paused', 'next_run_at', 'last_run_at',
  'last_task_id'];

test('schedule creates or replaces by name; schedules lists by name; unschedule deletes', async () => {
  const rec = await server.connect();
  try {
    const a = await rec.ack('schedule', {
      name: 'js-nightly', cron: '0 2 * * *', timezone: 'Europe/Paris',
      task: { kind: 'echo', input: { report: 'nightly' } },
    });
    assert.equal(a.ok, true, JSON.stringify(a));
    assert.deepEqual(Object.keys(a.schedule).sort(), [...SCHEDULE_KEYS].sort());
    assert.equal(a.schedule.timezone, 'Europe/Paris');
    assert.equal(a.schedule.paused, false);
    assert.match(a.schedule.next_run_at, ISO_MS);
    // 02:00 in Paris is 01:00 or 00:00 UTC, depending on the season.
    assert.match(a.schedule.next_run_at, /T0[01]:00:00\.000Z$/);
    assert.equal(a.schedule.last_run_at, null);
    const b = await rec.ack('schedule', { name: 'js-a-first', cron: '*/5 * * * *', task: { kind: 'echo' }, paused: true });
    assert.equal(b.schedule.timezone, 'UTC');
    assert.equal(b.schedule.paused, true);
    const replaced = await rec.ack('schedule', { name: 'js-nightly', cron: '30 3 * * *', task: { kind: 'echo' } });
    assert.equal(replaced.schedule.cron, '30 3 * * *');
    const list = await rec.ack('schedules', {});
    const names = list.schedules.map((s) => s.name).filter((n) => n.startsWith('js-'));
    assert.deepEqual(names, ['js-a-first', 'js-nightly']);
    const r = await http(`${server.url}/schedules`);
    assert.equal(r.status, 200);
    assert.ok((await r.json()).schedules.some((s) => s.name === 'js-nightly'));
    assert.equal((await rec.ack('unschedule', { name: 'js-nightly' })).ok, true);
    assertErrorAck(await rec.ack('unschedule', { name: 'js-nightly' }), 'not_found');
    const del = await http(`${server.url}/schedules/js-a-first`, { method: 'DELETE' });
    assert.equal(del.status, 200);
  } finally {
    rec.close();
  }
});

test('bad schedules are invalid_payload', async () => {
  const rec = await server.connect();
  try {
    const ok = { name: 'js-bad', cron: '* * * * *', task: { kind: 'echo' } };
    for (const bad of [{ name: 'no spaces' }, { name: '' }, { cron: 'every minute' },
      { cron: '* * * *' }, { timezone: 'Mars/Olympus' }, { task: { kind: 'nope' } },
      { task: { kind: 'sleep', input: { ms: -1 } } }, { task: 'echo' }]) {
      assertErrorAck(await rec.ack('schedule', { ...ok, ...bad }), 'invalid_payload', JSON.stringify(bad));
    }
    const r = await http(`${server.url}/schedules/js-bad`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cron: '61 * * * *', task: { kind: 'echo' } }),
    });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, 'invalid_payload');
  } finally {
    rec.close();
  }
});

test('a six-field schedule fires one task per firing, with its key', async () => {
  const rec = await server.connect();
  try {
    await rec.ack('dashboard', {});
    const put = await http(`${server.url}/schedules/js-every-second`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cron: '* * * * * *', task: { kind: 'echo', input: { tick: true } } }),
    });
    assert.equal(put.status, 200);
    // The `schedules` push to the dashboard room names the task of a firing.
    const fired = await rec.waitFor('schedules',
      (d) => d.schedules.some((s) => s.name === 'js-every-second' && s.last_task_id), 'a firing');
    const s = fired.schedules.find((x) => x.name === 'js-every-second');
    assert.equal((await rec.ack('unschedule', { name: 'js-every-second' })).ok, true);
    assert.match(s.last_run_at, /\.000Z$/, 'fires on the second');
    const sub = await rec.ack('subscribe', { task_id: s.last_task_id });
    assert.equal(sub.ok, true);
    assert.equal(sub.task.key, `schedule:js-every-second:${s.last_run_at}`);
    const task = sub.task.status === 'succeeded' ? sub.task : await rec.waitResult(s.last_task_id);
    assert.equal(task.status, 'succeeded');
    assert.deepEqual(task.output, { tick: true });
  } finally {
    rec.close();
  }
});
