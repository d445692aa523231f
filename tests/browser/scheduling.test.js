// v1.1 scheduling in the web UI: from the console, a delayed task (a live
// countdown, ticking in the browser with no request to the server), a task
// run after another picked from the list, an idempotency key that names an
// existing task; on /schedules, a schedule created, paused, resumed and
// deleted from one page while a second page follows every change live.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, PageErrors, openLive, newRowAfter, waitRow, row, rowIds,
  filterCount, getTask, pollUntil, pollTask, pretty, WAIT_MS, SUITE_MS,
} from './helpers.js';

/** A name no earlier run of this file used (the server is fresh anyway). */
const unique = (prefix) => `${prefix}-${Date.now().toString(36)}`;

/** Picks `kind` on the console's form and fills its fields (or the raw JSON editor). */
async function fillTask(page, kind, fields = {}, { raw } = {}) {
  await page.selectOption('#kind', kind);
  if (raw !== undefined) await page.fill('textarea#input', raw);
  for (const [name, value] of Object.entries(fields)) await page.fill(`#field-${name}`, String(value));
}

/** GET /schedules as JSON (what API clients get there). */
async function listSchedules(base) {
  const r = await fetch(`${base}/schedules`, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(r.status, 200, `GET /schedules: HTTP ${r.status}`);
  return (await r.json()).schedules;
}

/** The row of schedule `name` on a /schedules page. */
const scheduleRow = (name) => `table#schedules tbody tr[data-schedule="${name}"]`;

describe('scheduling in the console', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  const errors = new PageErrors();
  // Socket.IO events the page sent, and HTTP requests it made (not the socket's).
  const sent = [];
  const fetched = [];

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
    page.on('websocket', (ws) => ws.on('framesent', (f) => {
      // Engine.IO "4" message + Socket.IO "2" event (with an ack id): `42<id>["event",...]`.
      const m = /^42\d*\["([^"]+)"/.exec(String(f.payload));
      if (m) sent.push({ event: m[1], at: Date.now() });
    }));
    page.on('request', (r) => {
      if (!r.url().includes('/socket.io/')) fetched.push({ url: r.url(), at: Date.now() });
    });
    await openLive(page, server.url, '/');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows a delayed task as scheduled with a countdown that ticks in the browser, then runs it', async () => {
    await fillTask(page, 'echo', {}, { raw: '{"delayed": true}' });
    await page.fill('#opt-delay', '4');
    assert.equal(await page.inputValue('#opt-delay-unit'), 's');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    const li = await waitRow(page, id, 'scheduled');
    const since = Date.now();
    assert.equal(await li.locator('.badge').textContent(), 'scheduled');
    assert.equal(await li.locator('p.times').count(), 0, 'no queued time before it is queued');
    const task = await getTask(server.url, id);
    assert.equal(task.status, 'scheduled');
    assert.equal(await li.locator('.countdown time').getAttribute('datetime'), task.run_at);
    // The filters: scheduled, and active.
    await pollUntil(async () => (await filterCount(page, 'scheduled')) === 1, 'scheduled filter 1');
    assert.equal(await filterCount(page, 'active'), 1);

    // Every text the countdown shows until the task has run.
    const shown = [];
    await pollUntil(async () => {
      const state = await page.$eval(row(id), (el) => ({
        status: el.dataset.status,
        text: el.querySelector('.countdown time')?.textContent ?? null,
      }));
      if (state.text && shown.at(-1) !== state.text) shown.push(state.text);
      return state.status === 'succeeded';
    }, 'the delayed task to succeed', WAIT_MS, 100);
    const secs = shown.map((t) => /^in (\d) s$/.exec(t)?.[1]).filter(Boolean).map(Number);
    assert.ok(secs.length >= 3, `the countdown ticked: ${JSON.stringify(shown)}`);
    for (let i = 1; i < secs.length; i++) assert.equal(secs[i], secs[i - 1] - 1, JSON.stringify(shown));
    assert.ok(secs[0] <= 4, JSON.stringify(shown));
    // It ticked on its own: the page asked the server nothing meanwhile.
    const during = (xs) => xs.filter((x) => x.at >= since);
    assert.deepEqual(during(fetched), [], 'no HTTP request while counting down');
    assert.deepEqual(during(sent), [], 'no Socket.IO event sent while counting down');

    assert.equal(await li.locator('pre.output').textContent(), pretty({ delayed: true }));
    const done = await getTask(server.url, id);
    assert.ok(Date.parse(done.started_at) >= Date.parse(done.run_at), JSON.stringify(done));
    await page.fill('#opt-delay', '');
  });

  it('takes a delay in minutes, and refuses a bad one next to the field', async () => {
    await fillTask(page, 'echo', {}, { raw: '{"later": 1}' });
    await page.fill('#opt-delay', '-1');
    const before = await rowIds(page);
    await page.click('#submit-button');
    assert.equal(await page.textContent('#error-delay'), 'delay must be a number of seconds from 0 to 31536000');
    assert.equal(await page.getAttribute('#opt-delay', 'aria-invalid'), 'true');
    assert.deepEqual(await rowIds(page), before, 'nothing sent');

    await page.fill('#opt-delay', '1.5');
    await page.selectOption('#opt-delay-unit', 'min');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    const li = await waitRow(page, id, 'scheduled');
    assert.equal(await page.textContent('#error-delay'), '');
    const task = await getTask(server.url, id);
    assert.equal(Date.parse(task.run_at) - Date.parse(task.created_at), 90_000);
    assert.match(await li.locator('.countdown').textContent(), /^runs in 1 m [23]\d s$/);
    // Cancelled while scheduled: no countdown any more.
    await li.locator('button.cancel').click();
    await waitRow(page, id, 'cancelled');
    assert.equal(await li.locator('.countdown').count(), 0);
    await page.fill('#opt-delay', '');
    await page.selectOption('#opt-delay-unit', 's');
  });

  it('runs a task after another picked from the list: waiting, then both succeed', async () => {
    await fillTask(page, 'sleep', { ms: 2500 });
    const first = await newRowAfter(page, () => page.click('#submit-button'));
    await waitRow(page, first, 'running');

    await fillTask(page, 'echo', {}, { raw: '{"second": true}' });
    // The picker lists the page's tasks that may still succeed: not the cancelled one.
    const offered = await page.$$eval('#after-picker input[type=checkbox]', (is) => is.map((i) => i.value));
    assert.equal(offered[0], first, 'newest first');
    for (const id of offered) {
      assert.ok(['running', 'succeeded'].includes((await getTask(server.url, id)).status), id);
    }
    await page.check(`#after-${first}`);
    const second = await newRowAfter(page, () => page.click('#submit-button'));
    const li = await waitRow(page, second, 'waiting');
    const link = li.locator(`.waits a[href="/tasks/${first}"]`);
    assert.equal(await link.textContent(), first.slice(-8));
    assert.match(await li.locator('.waits').textContent(), new RegExp(`^waits for ${first.slice(-8)} \\(running\\)$`));
    assert.deepEqual((await getTask(server.url, second)).after, [first]);
    await pollUntil(async () => (await filterCount(page, 'waiting')) === 1, 'waiting filter 1');

    await waitRow(page, first, 'succeeded');
    await waitRow(page, second, 'succeeded');
    assert.equal(await li.locator('pre.output').textContent(), pretty({ second: true }));
    assert.equal(await li.locator('.waits').count(), 0);
    const done = await getTask(server.url, second);
    const firstDone = await getTask(server.url, first);
    assert.ok(Date.parse(done.started_at) >= Date.parse(firstDone.finished_at), 'it ran after');
    // Its page names what it ran after.
    const taskPage = await browser.context.newPage();
    errors.watch(taskPage, 'task page');
    await openLive(taskPage, server.url, `/tasks/${second}`);
    assert.equal(await taskPage.locator(`.props a[href="/tasks/${first}"]`).count(), 1);
    await taskPage.close();
    await page.uncheck(`#after-${first}`);
  });

  it('says when an idempotency key named an existing task, and adds no row', async () => {
    const key = unique('report');
    await fillTask(page, 'echo', {}, { raw: '{"once": true}' });
    await page.fill('#opt-key', key);
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    await waitRow(page, id, 'succeeded');
    assert.equal(await page.locator('#submit-notice .dedup').count(), 0, 'a new key names nothing');

    const before = await rowIds(page);
    await fillTask(page, 'echo', {}, { raw: '{"once": "again"}' });
    await page.click('#submit-button');
    const notice = page.locator(`#submit-notice .dedup[data-task-id="${id}"]`);
    await notice.waitFor({ timeout: WAIT_MS });
    assert.equal(await notice.textContent(),
      `Key ${key} already names task ${id.slice(-8)} (echo, succeeded): nothing new was submitted.`);
    assert.equal(await notice.locator(`a[href="/tasks/${id}"]`).count(), 1);
    assert.deepEqual(await rowIds(page), before, 'no new row');
    assert.equal((await getTask(server.url, id)).output.once, true, 'the first task is the one');

    // A key the server refuses: its message next to the key field.
    await page.fill('#opt-key', 'k'.repeat(257));
    await page.click('#submit-button');
    await page.waitForFunction(() => document.querySelector('#error-key')?.textContent !== '', null,
      { timeout: WAIT_MS });
    assert.equal(await page.textContent('#error-key'), 'key must be a string of 1 to 256 characters');
    assert.equal(await page.locator('#submit-notice .dedup').count(), 0, 'the notice is gone');
    await page.fill('#opt-key', '');
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});

describe('schedules page', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  let other;
  const errors = new PageErrors();

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage(), 'editor');
    other = errors.watch(await browser.context.newPage(), 'watcher');
    await openLive(page, server.url, '/schedules');
    await openLive(other, server.url, '/schedules');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('is in the nav, and starts empty', async () => {
    assert.equal(await page.getAttribute('nav a[href="/schedules"]', 'aria-current'), 'page');
    for (const p of [page, other]) {
      assert.equal(await p.locator('table#schedules tbody tr').count(), 0);
      assert.equal(await p.textContent('table#schedules + p.empty'), 'No schedules yet.');
    }
  });

  it('creates a schedule from the form; the other page shows it without a reload', async () => {
    await page.fill('#schedule-name', 'yearly');
    await page.fill('#schedule-cron', '0 0 1 1 *');
    await page.fill('#schedule-timezone', 'Europe/Paris');
    await page.selectOption('#schedule-kind', 'sleep');
    await page.fill('#schedule-field-ms', '5');
    await page.click('#schedule-submit');
    await page.waitForFunction(() => document.querySelector('#schedule-notice')?.textContent !== '', null,
      { timeout: WAIT_MS });
    assert.equal(await page.textContent('#schedule-notice'), 'Saved schedule yearly.');
    assert.equal(await page.inputValue('#schedule-name'), '', 'the name is cleared for the next one');

    const [saved] = await listSchedules(server.url);
    assert.deepEqual({ ...saved, next_run_at: undefined }, {
      name: 'yearly', cron: '0 0 1 1 *', timezone: 'Europe/Paris',
      task: { kind: 'sleep', input: { ms: 5 }, priority: 0, max_attempts: 3 },
      paused: false, next_run_at: undefined, last_run_at: null, last_task_id: null,
    });
    for (const p of [page, other]) {
      const tr = p.locator(scheduleRow('yearly'));
      await tr.waitFor({ timeout: WAIT_MS });
      assert.equal(await tr.getAttribute('data-paused'), 'false');
      assert.equal(await tr.locator('.cron').textContent(), '0 0 1 1 *');
      assert.equal(await tr.locator('.tz').textContent(), 'Europe/Paris');
      assert.equal(await tr.locator('.kind').textContent(), 'sleep');
      assert.equal(await tr.locator('td.next time').getAttribute('datetime'), saved.next_run_at);
      assert.match(await tr.locator('td.next .countdown').textContent(), /^in \d+ d \d\d h$/);
      assert.equal(await tr.locator('td.last').textContent(), 'never');
      assert.equal(await p.locator('table#schedules + p.empty').count(), 0);
    }
  });

  it('puts the server\'s refusal next to the field it is about', async () => {
    await page.fill('#schedule-name', 'bad');
    await page.fill('#schedule-cron', 'every day');
    await page.click('#schedule-submit');
    await page.waitForFunction(() => document.querySelector('#error-schedule-cron')?.textContent !== '', null,
      { timeout: WAIT_MS });
    assert.equal(await page.getAttribute('#schedule-cron', 'aria-invalid'), 'true');
    await page.fill('#schedule-cron', '0 0 1 1 *');
    await page.fill('#schedule-timezone', 'Mars/Olympus');
    await page.click('#schedule-submit');
    await page.waitForFunction(() => document.querySelector('#error-schedule-timezone')?.textContent !== '', null,
      { timeout: WAIT_MS });
    assert.match(await page.textContent('#error-schedule-timezone'), /unknown time zone "Mars\/Olympus"/);
    assert.equal(await page.textContent('#error-schedule-cron'), '');
    // The form's own check: a name the protocol does not allow is not sent.
    await page.fill('#schedule-name', 'two words');
    await page.click('#schedule-submit');
    assert.match(await page.textContent('#error-schedule-name'), /^name must be 1 to 128 characters/);
    assert.deepEqual((await listSchedules(server.url)).map((s) => s.name), ['yearly']);
    await page.fill('#schedule-timezone', 'UTC');
  });

  it('pauses and resumes a schedule; both pages follow', async () => {
    const toggle = page.locator(`${scheduleRow('yearly')} button.toggle`);
    assert.equal(await toggle.textContent(), 'Pause yearly');
    await toggle.click();
    for (const p of [page, other]) {
      await p.locator(`${scheduleRow('yearly')}[data-paused="true"]`).waitFor({ timeout: WAIT_MS });
      assert.equal(await p.locator(`${scheduleRow('yearly')} .tag.paused`).textContent(), 'paused');
      assert.equal(await p.locator(`${scheduleRow('yearly')} td.next .countdown`).count(), 0);
    }
    assert.equal(await toggle.textContent(), 'Resume yearly');
    assert.equal((await listSchedules(server.url))[0].paused, true);

    await toggle.click();
    for (const p of [page, other]) {
      await p.locator(`${scheduleRow('yearly')}[data-paused="false"]`).waitFor({ timeout: WAIT_MS });
      assert.equal(await p.locator(`${scheduleRow('yearly')} .tag.paused`).count(), 0);
    }
    const [resumed] = await listSchedules(server.url);
    assert.equal(resumed.paused, false);
    assert.deepEqual(resumed.task, { kind: 'sleep', input: { ms: 5 }, priority: 0, max_attempts: 3 },
      'the task is kept as it was');
  });

  it('shows a firing\'s last run, linked to the task it submitted', async () => {
    // Every second (a leading seconds field).
    await page.fill('#schedule-name', 'every-second');
    await page.fill('#schedule-cron', '* * * * * *');
    await page.selectOption('#schedule-kind', 'echo');
    await page.fill('#schedule-input', '{"tick": true}');
    await page.click('#schedule-submit');
    const link = other.locator(`${scheduleRow('every-second')} td.last a.task-ref`);
    await link.waitFor({ timeout: WAIT_MS });
    const id = (await link.getAttribute('href')).replace('/tasks/', '');
    assert.equal(await link.textContent(), id.slice(-8));
    const task = await pollTask(server.url, id, (t) => t.status === 'succeeded', 'the firing\'s task');
    assert.deepEqual(task.output, { tick: true });
    assert.match(task.key, /^schedule:every-second:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match(await other.textContent(`${scheduleRow('every-second')} td.last`), /^\d+ s ago · [0-9a-f]{8}$/);
  });

  it('deletes a schedule once confirmed; both pages drop it', async () => {
    const tr = page.locator(scheduleRow('every-second'));
    await tr.locator('button.delete').click();
    const confirm = tr.locator('.confirm');
    assert.equal(await confirm.isVisible(), true);
    assert.equal(await tr.locator('.row-actions:not(.confirm)').isVisible(), false);
    assert.equal(await confirm.locator('.question').textContent(), 'Delete every-second?');
    await pollUntil(async () => (await page.evaluate(() => document.activeElement?.className)) === 'secondary keep',
      'the focus on Keep');
    // Keep: nothing is deleted, the focus is back on Delete.
    await confirm.locator('button.keep').click();
    assert.equal(await confirm.isVisible(), false);
    await pollUntil(async () => (await page.evaluate(() => document.activeElement?.className)) === 'cancel delete',
      'the focus back on Delete');
    assert.deepEqual((await listSchedules(server.url)).map((s) => s.name), ['every-second', 'yearly']);

    await tr.locator('button.delete').click();
    await confirm.locator('button.confirm-delete').click();
    for (const p of [page, other]) {
      await p.locator(scheduleRow('every-second')).waitFor({ state: 'detached', timeout: WAIT_MS });
    }
    assert.deepEqual((await listSchedules(server.url)).map((s) => s.name), ['yearly']);

    await page.locator(`${scheduleRow('yearly')} button.delete`).click();
    await page.locator(`${scheduleRow('yearly')} button.confirm-delete`).click();
    for (const p of [page, other]) {
      await p.locator(scheduleRow('yearly')).waitFor({ state: 'detached', timeout: WAIT_MS });
      assert.equal(await p.textContent('table#schedules + p.empty'), 'No schedules yet.');
    }
    assert.deepEqual(await listSchedules(server.url), []);
  });

  it('is rendered on the server with the schedules in it, and hydrates', async () => {
    const put = await fetch(`${server.url}/schedules/nightly`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cron: '0 3 * * *', task: { kind: 'echo', input: { n: 1 } } }),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(put.status, 200);
    const html = await (await fetch(`${server.url}/schedules`, {
      headers: { accept: 'text/html' },
      signal: AbortSignal.timeout(WAIT_MS),
    })).text();
    assert.match(html, /<tr data-schedule="nightly" data-paused="false">/);
    assert.match(html, /<code class="cron">0 3 \* \* \*<\/code>/);
    // API clients still get JSON there.
    assert.deepEqual((await listSchedules(server.url)).map((s) => s.name), ['nightly']);
    // A fresh load hydrates over the server's rows and follows pushes.
    await openLive(page, server.url, '/schedules');
    assert.equal(await page.locator(scheduleRow('nightly')).count(), 1);
    await page.locator(`${scheduleRow('nightly')} button.toggle`).click();
    await other.locator(`${scheduleRow('nightly')}[data-paused="true"]`).waitFor({ timeout: WAIT_MS });
    await page.locator(`${scheduleRow('nightly')}[data-paused="true"]`).waitFor({ timeout: WAIT_MS });
  });

  it('loads the schedules over the socket when reached from the nav', async () => {
    await openLive(page, server.url, '/');
    await page.click('nav a[href="/schedules"]');
    await page.locator(`${scheduleRow('nightly')}[data-paused="true"]`).waitFor({ timeout: WAIT_MS });
    assert.equal(new URL(page.url()).pathname, '/schedules');
    assert.equal(await page.title(), 'Schedules · Taskwire');
    // Still live: a change made over HTTP shows without a reload.
    const del = await fetch(`${server.url}/schedules/nightly`, { method: 'DELETE', signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(del.status, 200);
    await page.locator(scheduleRow('nightly')).waitFor({ state: 'detached', timeout: WAIT_MS });
    assert.equal(await page.textContent('table#schedules + p.empty'), 'No schedules yet.');
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});
