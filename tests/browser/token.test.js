// A server run with `--token`: the page says it was refused until it is
// opened once with `?token=…`, which it then keeps for this browser.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, PageErrors, openLive, newRowAfter, waitRow, row, pretty, WAIT_MS, SUITE_MS,
} from './helpers.js';

const TOKEN = 'page-token-0123456789';

describe('access token', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  const errors = new PageErrors();

  before(async () => {
    server = await startServer({ extra: ['--token', TOKEN] });
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows a refused connection without the token', async () => {
    // After the refusal socket.io-client closes its session; a poll already
    // on its way then gets the server's 400 for an unknown or upgraded
    // session, which the browser logs.
    errors.expectNetworkErrors('connection refused by the server');
    await page.goto(`${server.url}/`, { timeout: WAIT_MS });
    await page.waitForSelector('body[data-hydrated="true"]', { timeout: WAIT_MS, state: 'attached' });
    await page.waitForSelector('#conn[data-state="refused"]', { timeout: WAIT_MS, state: 'attached' });
    assert.match(await page.textContent('#conn'), /token/);
    // Nothing is sent while not connected: the form says so.
    await page.click('#submit-button');
    assert.match(await page.textContent('#error-form'), /Not connected/);
  });

  it('connects with ?token= and keeps it for the next visit', async () => {
    // Each visit in a page of its own (same browser profile, so the same
    // local storage): leaving a page while its socket connects would log
    // the browser's own "closed before the connection" errors.
    await page.close();
    errors.endNetworkErrors();
    page = errors.watch(await browser.context.newPage(), 'with ?token=');
    await openLive(page, server.url, `/?token=${TOKEN}`);
    await page.close();
    page = errors.watch(await browser.context.newPage(), 'next visit');
    await openLive(page, server.url, '/');
    await page.fill('#input', '{"secret":false}');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    await waitRow(page, id, 'succeeded');
    assert.equal(await page.textContent(`${row(id)} pre.output`), pretty({ secret: false }));
  });

  it('serves the schedules page without the token, with the schedules only to a viewer who has it', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const put = await fetch(`${server.url}/schedules/nightly`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ cron: '0 3 * * *', task: { kind: 'echo', input: { secret: true } } }),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(put.status, 200);
    const get = (query, headers) => fetch(`${server.url}/schedules${query}`, { headers, signal: AbortSignal.timeout(WAIT_MS) });
    // The API route still needs the token.
    assert.equal((await get('', {})).status, 401);
    assert.equal((await get('', auth)).status, 200);
    // The page does not, but shows the schedules only with it.
    const anonymous = await get('', { accept: 'text/html' });
    assert.equal(anonymous.status, 200);
    const html = await anonymous.text();
    assert.match(html, /<table id="schedules"/);
    assert.doesNotMatch(html, /data-schedule=|secret/);
    const trusted = await (await get(`?token=${TOKEN}`, { accept: 'text/html' })).text();
    assert.match(trusted, /<tr data-schedule="nightly"/);
    // This browser kept the token: the live page lists them.
    await openLive(page, server.url, '/schedules');
    await page.locator('tr[data-schedule="nightly"]').waitFor({ timeout: WAIT_MS });
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});
