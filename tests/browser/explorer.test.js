// The task explorer (`/tasks`), a task's attempts and Retry button, bulk
// operations, and pausing a kind on the dashboard, against a real server
// whose tasks come from other clients: a socket.io-client in this test, and
// a remote worker (namespace `/worker`) running a kind `flaky` whose first
// attempt fails for real and whose retry succeeds (it succeeds exactly
// when the job has a `retry_of`).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  startServer, launchBrowser, PageErrors, openLive, ack, pollTask, pollUntil, withTimeout,
  WAIT_MS, SUITE_MS,
} from './helpers.js';

const TASK_URL = /\/tasks\/([0-9a-f-]{36})$/;
const stamp = Date.now().toString(36);

/** Submits a task as another client; returns the task of the ack. */
async function submit(socket, spec) {
  const res = await ack(socket, 'task', spec);
  assert.equal(res?.ok, true, `submission refused: ${JSON.stringify(res)}`);
  return res.task;
}

/** A remote worker offering `flaky`: fails a first run, succeeds a retry. */
async function flakyWorker(url) {
  const w = io(`${url}/worker`, {
    transports: ['websocket'], forceNew: true, reconnection: false,
    auth: { name: 'flaky-worker', kinds: ['flaky'], concurrency: 2 },
  });
  w.on('job', async (task) => {
    if (task.retry_of) {
      await w.timeout(WAIT_MS).emitWithAck('done', { task_id: task.id, output: { recovered: true } });
    } else {
      // The server records any handler's error as task_failed.
      await w.timeout(WAIT_MS).emitWithAck('fail', {
        task_id: task.id, error: { code: 'upstream_unavailable', message: 'the first attempt fails' },
      });
    }
  });
  await withTimeout(new Promise((resolve, reject) => {
    w.once('connect', resolve);
    w.once('connect_error', reject);
  }), WAIT_MS, 'worker connect');
  return w;
}

/** Ids of the explorer's rows, in page order. */
const rowIds = (page) => page.$$eval('table#explorer tbody tr[data-task-id]', (trs) => trs.map((tr) => tr.dataset.taskId));

/** Waits until the explorer lists exactly `ids`, in this order. */
async function waitRows(page, ids, what) {
  let last;
  await pollUntil(async () => {
    last = await rowIds(page);
    return JSON.stringify(last) === JSON.stringify(ids);
  }, `${what}: rows ${JSON.stringify(ids)} (last ${JSON.stringify(last)})`);
}

const explorerRow = (id) => `table#explorer tr[data-task-id="${id}"]`;

describe('task explorer', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  let client;
  let worker;
  const errors = new PageErrors();

  before(async () => {
    server = await startServer({ workers: 2 });
    worker = await flakyWorker(server.url);
    client = await server.connect();
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
  });

  after(async () => {
    worker?.close();
    await browser?.close();
    await server?.stop();
  });

  it('finds a failed task of another client by filter, opens it and retries it: the retry succeeds', async () => {
    const failed = await submit(client, { kind: 'flaky', input: { order: 42 }, key: `flaky:${stamp}` });
    await pollTask(server.url, failed.id, (t) => t.status === 'failed', 'the flaky task failed');

    await openLive(page, server.url, '/tasks');
    await page.selectOption('#filter-status', 'failed');
    await page.selectOption('#filter-kind', 'flaky');
    await page.click('#apply-filters');
    await page.waitForURL((u) => u.search === '?status=failed&kind=flaky');
    await waitRows(page, [failed.id], 'the failed flaky task, alone');
    assert.match(await page.textContent(`${explorerRow(failed.id)} .summary`), /task_failed: the first attempt fails/);

    await page.click(`${explorerRow(failed.id)} a.task-link`);
    await page.waitForURL(`${server.url}/tasks/${failed.id}`);
    await page.waitForSelector(`article.task-page[data-task-id="${failed.id}"][data-status="failed"]`);
    // Its one attempt, by the remote worker, with the worker's error.
    const attempt = page.locator('table#attempts tbody tr[data-attempt="1"]');
    await attempt.waitFor();
    assert.equal(await attempt.getAttribute('data-outcome'), 'failed');
    assert.match(await attempt.textContent(), /flaky-worker/);
    assert.match(await attempt.textContent(), /task_failed: the first attempt fails/);
    assert.match(await page.textContent('article.task-page pre.input'), /"order": 42/);

    await page.click('#retry-button');
    await page.waitForURL((u) => TASK_URL.test(u.pathname) && !u.pathname.endsWith(failed.id));
    const [, retryId] = TASK_URL.exec(page.url());
    assert.notEqual(retryId, failed.id);
    await page.waitForSelector(`article.task-page[data-task-id="${retryId}"][data-status="succeeded"]`);
    assert.match(await page.textContent('article.task-page pre.output'), /"recovered": true/);
    await page.waitForSelector('table#attempts tbody tr[data-attempt="1"][data-outcome="succeeded"]');
    assert.equal(await page.getAttribute('article.task-page .props a.task-ref', 'href'), `/tasks/${failed.id}`);
    assert.equal(await page.locator('#retry-button').count(), 0, 'a succeeded task has no Retry');
    const retried = await pollTask(server.url, retryId, (t) => t.status === 'succeeded', 'the retry succeeded');
    assert.equal(retried.retry_of, failed.id);
    errors.assertNone();
  });

  it('keeps its filters in the URL: a linked view survives a reload; keys match by prefix', async () => {
    const a = await submit(client, { kind: 'echo', input: 'a', key: `exp:${stamp}:a` });
    const b = await submit(client, { kind: 'echo', input: 'b', key: `exp:${stamp}:b` });
    await submit(client, { kind: 'echo', input: 'c', key: `other:${stamp}` });
    const view = `/tasks?key=${encodeURIComponent(`exp:${stamp}:*`)}`;
    await openLive(page, server.url, view);
    await waitRows(page, [b.id, a.id], 'the two exp: tasks, newest first');
    assert.equal(await page.inputValue('#filter-key'), `exp:${stamp}:*`);
    await page.reload();
    await page.waitForSelector('body[data-hydrated="true"]', { state: 'attached' });
    await waitRows(page, [b.id, a.id], 'the same rows after a reload');
    // Exactly one key.
    await openLive(page, server.url, `/tasks?key=${encodeURIComponent(`exp:${stamp}:a`)}`);
    await waitRows(page, [a.id], 'the exact key');
    errors.assertNone();
  });

  it('finds a task by id, and says when the text is no id', async () => {
    const t = await submit(client, { kind: 'echo', input: { find: 'me' } });
    await openLive(page, server.url, '/tasks');
    await page.fill('#find-id', t.id);
    await page.click('#find-button');
    await page.waitForURL(`${server.url}/tasks/${t.id}`);
    await page.waitForSelector(`article.task-page[data-task-id="${t.id}"]`);
    await openLive(page, server.url, '/tasks');
    await page.fill('#find-id', 'not-an-id');
    await page.click('#find-button');
    await page.waitForSelector('#explorer-error');
    assert.match(await page.textContent('#explorer-error'), /"not-an-id" is not a task id/);
    // The no-JS form's URL shows the task found.
    await openLive(page, server.url, `/tasks?id=${t.id}`);
    await waitRows(page, [t.id], 'the task found by id');
    errors.assertNone();
  });

  it('pages with Older and Newer', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await submit(client, { kind: 'echo', input: i, key: `page:${stamp}:${i}` })).id);
    const newest = [...ids].reverse();
    await openLive(page, server.url, `/tasks?key=${encodeURIComponent(`page:${stamp}:*`)}&limit=2`);
    await waitRows(page, newest.slice(0, 2), 'page 1');
    assert.equal(await page.locator('.pager a.newer').count(), 0, 'no Newer on the newest page');
    await page.click('.pager a.older');
    await waitRows(page, newest.slice(2, 4), 'page 2');
    await page.click('.pager a.older');
    await waitRows(page, newest.slice(4), 'page 3');
    await pollUntil(async () => (await page.locator('.pager a.older').count()) === 0, 'no Older on the last page');
    await page.click('.pager a.newer');
    await waitRows(page, newest.slice(2, 4), 'back to page 2');
    await page.click('.pager a.newer');
    await waitRows(page, newest.slice(0, 2), 'back to page 1');
    assert.doesNotMatch(page.url(), /before=/);
    errors.assertNone();
  });

  it('updates while open: new tasks appear and rows follow their tasks', async () => {
    const kindView = `/tasks?kind=sleep&key=${encodeURIComponent(`live:${stamp}:*`)}`;
    await openLive(page, server.url, kindView);
    await waitRows(page, [], 'an empty view');
    const t = await submit(client, { kind: 'sleep', input: { ms: 60_000 }, key: `live:${stamp}:1` });
    await waitRows(page, [t.id], 'the new task, listed without a reload');
    await page.waitForSelector(`${explorerRow(t.id)}[data-status="running"]`, { state: 'attached' });
    await ack(client, 'cancel', { task_id: t.id });
    await page.waitForSelector(`${explorerRow(t.id)}[data-status="cancelled"]`, { state: 'attached' });
    errors.assertNone();
  });

  it('cancels and retries what a filter shows, after confirming how many', async () => {
    // Scheduled an hour ahead: cancellable; their retries run at once.
    const keys = [0, 1, 2].map((i) => `bulk:${stamp}:${i}`);
    const tasks = [];
    for (const key of keys) tasks.push(await submit(client, { kind: 'echo', input: key, key, delay_ms: 3_600_000 }));
    await openLive(page, server.url, `/tasks?key=${encodeURIComponent(`bulk:${stamp}:*`)}`);
    await waitRows(page, tasks.map((t) => t.id).reverse(), 'the three scheduled tasks');

    await page.click('.bulk button.bulk-cancel');
    const confirm = page.locator('.bulk-confirm');
    await confirm.waitFor();
    assert.equal((await confirm.locator('.question').textContent()).trim(), 'Cancel 3 tasks matching these filters?');
    await confirm.locator('button.confirm-bulk').click();
    await pollUntil(async () => (await page.textContent('.bulk-report').catch(() => '')) === 'Cancelled 3 of 3 tasks.',
      'the cancel report');
    for (const t of tasks) await page.waitForSelector(`${explorerRow(t.id)}[data-status="cancelled"]`, { state: 'attached' });

    // Keep leaves everything as it is.
    await page.click('.bulk button.bulk-retry');
    await confirm.waitFor();
    await confirm.locator('button.keep').click();
    await confirm.waitFor({ state: 'detached' });

    await page.click('.bulk button.bulk-retry');
    await confirm.waitFor();
    assert.equal((await confirm.locator('.question').textContent()).trim(), 'Retry 3 tasks matching these filters?');
    await confirm.locator('button.confirm-bulk').click();
    await pollUntil(async () => (await page.textContent('.bulk-report').catch(() => '')) === 'Retried 3 of 3 tasks.',
      'the retry report');
    // The retries (no key, no delay) ran and succeeded.
    const list = await ack(client, 'list', { kind: 'echo', limit: 20 });
    const retries = list.tasks.filter((t) => tasks.some((o) => o.id === t.retry_of));
    assert.equal(retries.length, 3, JSON.stringify(list.tasks.map((t) => t.retry_of)));
    for (const r of retries) await pollTask(server.url, r.id, (t) => t.status === 'succeeded', 'a retry succeeded');
    errors.assertNone();
  });

  it('pauses and resumes a kind from the dashboard, which shows its latencies', async () => {
    await openLive(page, server.url, '/dashboard');
    const echo = page.locator('table#kinds tr[data-kind="echo"]');
    await echo.waitFor();
    // Echo tasks ran above: their wait and run percentiles are measured.
    await pollUntil(async () => /ms|s$/.test((await echo.locator('td.run').textContent()).trim()), 'echo run latency');
    assert.match(await echo.locator('td.wait').textContent(), /^(\S+ m?s) \/ (\S+ m?s) \/ (\S+ m?s)$/);

    await echo.locator('button.toggle').click();
    await page.waitForSelector('table#kinds tr[data-kind="echo"][data-paused="true"]');
    const held = await submit(client, { kind: 'echo', input: 'held' });
    // Another kind still runs, and the paused one's task is still queued after it.
    const other = await submit(client, { kind: 'sha256', input: { data: 'x', rounds: 1 } });
    await pollTask(server.url, other.id, (t) => t.status === 'succeeded', 'a task of another kind ran');
    await pollTask(server.url, held.id, (t) => t.status === 'queued', 'the paused kind\'s task is queued');
    await pollUntil(async () => (await echo.locator('td.queued').textContent()).trim() === '1', 'one echo queued');

    await echo.locator('button.toggle').click();
    await page.waitForSelector('table#kinds tr[data-kind="echo"][data-paused="false"]');
    await pollTask(server.url, held.id, (t) => t.status === 'succeeded', 'resumed: the held task ran');
    errors.assertNone();
  });
});

describe('task explorer without JavaScript', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer({ workers: 1 });
    browser = await launchBrowser({ javaScriptEnabled: false });
    page = browser.context.pages()[0] ?? await browser.context.newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('is rendered on the server with its page of tasks; GET /tasks is still JSON for API clients', async () => {
    const socket = await server.connect();
    const t = await submit(socket, { kind: 'fail', input: { message: 'no js' } });
    await pollTask(server.url, t.id, (x) => x.status === 'failed', 'the task failed');
    await page.goto(`${server.url}/tasks?status=failed`);
    assert.deepEqual(await rowIds(page), [t.id]);
    assert.equal(await page.getAttribute(explorerRow(t.id), 'data-status'), 'failed');
    const json = await fetch(`${server.url}/tasks?status=failed`, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(json.status, 200);
    const body = await json.json();
    assert.deepEqual(body.tasks.map((x) => x.id), [t.id]);
  });
});
