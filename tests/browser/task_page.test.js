// A task's own page, `/tasks/{id}`: rendered on the server, so it works
// without JavaScript (the no-JS console form's 303 lands there), and live
// once hydrated.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import {
  startServer, launchBrowser, PageErrors, openLive, newRowAfter, waitRow, row, ack, pollTask,
  pretty, WAIT_MS, SUITE_MS,
} from './helpers.js';

const TASK_PATH = /\/tasks\/([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$/;

/** What a no-JS page shows in `main`, for failure messages. */
const mainText = (page) => page.textContent('main').then((t) => JSON.stringify(t?.slice(0, 200))).catch(() => '?');

/**
 * Reloads a no-JS task page until its article says `status` (bounded), and
 * returns the article's locator. Every load must show the article: a page
 * that only shows it now and then (when the server happened to have the task
 * at hand before it flushed) fails here.
 */
async function reloadUntil(page, status, ms = WAIT_MS) {
  const article = page.locator('article.task-page');
  const deadline = Date.now() + ms;
  for (;;) {
    assert.equal(await article.count(), 1,
      `no article.task-page on ${page.url()} as a browser without JavaScript shows it; main shows ${await mainText(page)}`);
    const now = await article.getAttribute('data-status');
    if (now === status) return article;
    assert.ok(Date.now() < deadline, `${page.url()} still says ${now} after ${ms} ms of reloads, not ${status}`);
    await delay(200); // polling interval, bounded by the deadline above
    await page.reload({ timeout: WAIT_MS });
  }
}

/** Loads `url` `times` times; every load must show the no-JS task page's article. */
async function loadEachTime(page, url, times = 3) {
  for (let i = 0; i < times; i++) {
    await page.goto(url, { timeout: WAIT_MS });
    assert.equal(await page.locator('article.task-page').count(), 1,
      `load ${i + 1}: no article.task-page on ${url} as a browser without JavaScript shows it; `
      + `main shows ${await mainText(page)}`);
  }
}

describe('task page without JavaScript', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  const errors = new PageErrors();

  before(async () => {
    server = await startServer();
    browser = await launchBrowser({ javaScriptEnabled: false });
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('is server-rendered: the article is in the HTML, not in a script-inserted template', async () => {
    // Submitted as the no-JS form would: kind + input, urlencoded.
    const res = await fetch(`${server.url}/tasks`, {
      method: 'POST',
      body: new URLSearchParams({ kind: 'echo', input: '{"plain": "html"}' }),
      redirect: 'manual',
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(res.status, 303);
    const location = res.headers.get('location');
    const [, id] = TASK_PATH.exec(location) ?? [];
    assert.ok(id, `303 to ${location}`);
    await pollTask(server.url, id, (t) => t.status === 'succeeded', `task ${id} succeeded`);

    const html = await fetch(server.url + location, {
      headers: { accept: 'text/html' },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type'), /^text\/html/);

    await loadEachTime(page, server.url + location);
    const article = page.locator('article.task-page');
    assert.equal(await article.getAttribute('data-task-id'), id);
    assert.equal(await article.getAttribute('data-status'), 'succeeded');
    assert.equal(await article.locator('pre.output').textContent(), pretty({ plain: 'html' }));
    assert.equal(await article.locator('pre.input').textContent(), pretty({ plain: 'html' }));
  });

  it('follows a task to its end by reloading', async () => {
    const res = await fetch(`${server.url}/tasks`, {
      method: 'POST',
      body: new URLSearchParams({ kind: 'sleep', input: '{"ms": 1500}' }),
      redirect: 'manual',
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(res.status, 303);
    await page.goto(server.url + res.headers.get('location'), { timeout: WAIT_MS });
    const article = await reloadUntil(page, 'succeeded');
    assert.equal(await article.locator('.badge').textContent(), 'succeeded');
    assert.equal(await article.locator('pre.output').textContent(), pretty({ slept_ms: 1500 }));
  });

  it('the console form posts kind and input and lands (303) on the task page', async () => {
    for (let i = 0; i < 3; i++) {
      await page.goto(`${server.url}/`, { timeout: WAIT_MS });
      const kinds = await page.$$eval('form#submit select#kind[name="kind"] option', (os) => os.map((o) => o.value));
      assert.deepEqual(kinds, ['echo', 'fail', 'primes', 'sha256', 'sleep'],
        `load ${i + 1}: the server-rendered form (JavaScript off) has no select#kind with the kinds, so it cannot post a kind`);
    }
    await page.selectOption('#kind', 'echo');
    const input = { no: 'javascript', n: 7 };
    await page.fill('textarea#input', JSON.stringify(input));
    const [post] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/tasks',
        { timeout: WAIT_MS }),
      page.click('#submit-button'),
    ]);
    assert.equal(post.status(), 303, `POST /tasks answered ${post.status()}: ${await post.text().catch(() => '')}`);
    await page.waitForURL(TASK_PATH, { timeout: WAIT_MS });
    const [, id] = TASK_PATH.exec(page.url());
    const article = await reloadUntil(page, 'succeeded');
    assert.equal(await article.getAttribute('data-task-id'), id);
    assert.equal(await article.locator('pre.output').textContent(), pretty(input));
  });

  it('answers 404 for an unknown task, with a page that says so', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/tasks/01a21539-0000-7000-8000-000000000000`, {
        headers: { accept: 'text/html' },
        signal: AbortSignal.timeout(WAIT_MS),
      });
      assert.equal(res.status, 404);
      // What a browser shows without JavaScript: not what waits in a <template>.
      const shown = (await res.text()).replace(/<template[\s\S]*?<\/template>/g, '');
      assert.match(shown, /<h1>No such task<\/h1>/,
        `load ${i + 1}: the 404 page shows, without JavaScript: ${/<main[\s\S]*<\/main>/.exec(shown)?.[0] ?? shown.slice(-400)}`);
    }
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});

describe('task page with JavaScript', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  let socket;
  const errors = new PageErrors();

  before(async () => {
    server = await startServer();
    socket = await server.connect();
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function submit(kind, input) {
    const res = await ack(socket, 'task', { kind, input });
    assert.equal(res?.ok, true, JSON.stringify(res));
    return res.task.id;
  }

  it('goes live: a running task turns succeeded without a reload', async () => {
    const id = await submit('sleep', { ms: 3000 });
    await pollTask(server.url, id, (t) => t.status === 'running', `task ${id} running`);
    await openLive(page, server.url, `/tasks/${id}`);
    const article = page.locator(`article.task-page[data-task-id="${id}"]`);
    assert.equal(await article.getAttribute('data-status'), 'running');
    assert.equal(await article.locator('button.cancel').count(), 1);
    await page.evaluate(() => { window.noReloadMark = true; });
    await page.waitForSelector(`article.task-page[data-task-id="${id}"][data-status="succeeded"]`,
      { timeout: WAIT_MS, state: 'attached' });
    assert.equal(await article.locator('pre.output').textContent(), pretty({ slept_ms: 3000 }));
    assert.equal(await article.locator('button.cancel').count(), 0);
    assert.equal(await page.evaluate(() => window.noReloadMark), true, 'the page reloaded');
  });

  it('cancels from the task page', async () => {
    const id = await submit('sleep', { ms: 60000 });
    await pollTask(server.url, id, (t) => t.status === 'running', `task ${id} running`);
    await openLive(page, server.url, `/tasks/${id}`);
    await page.click(`article.task-page[data-task-id="${id}"] button.cancel`);
    await page.waitForSelector(`article.task-page[data-task-id="${id}"][data-status="cancelled"]`,
      { timeout: WAIT_MS, state: 'attached' });
    assert.match(await page.textContent('article.task-page pre.error'), /^cancelled: /);
    assert.equal((await pollTask(server.url, id, (t) => t.status === 'cancelled', 'cancelled')).error.code, 'cancelled');
  });

  it('opens from the console\'s task link (client-side navigation)', async () => {
    await openLive(page, server.url, '/');
    await page.fill('textarea#input', '{"link": true}');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    await waitRow(page, id, 'succeeded');
    await page.click(`${row(id)} a.task-link`);
    await page.waitForURL(`${server.url}/tasks/${id}`, { timeout: WAIT_MS });
    await page.waitForSelector(`article.task-page[data-task-id="${id}"][data-status="succeeded"]`,
      { timeout: WAIT_MS, state: 'attached' });
    assert.equal(await page.textContent('article.task-page pre.output'), pretty({ link: true }));
    assert.equal(await page.textContent('#conn'), 'Live');
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});
