// Losing the connection: the page must show it, reconnect by itself and
// catch up on what it missed, without a reload.
//  - a cut network while the server keeps running (the `result` push of a
//    task is missed: the server finished the task while the page was cut off);
//  - a server killed with SIGKILL and started again on the same port and
//    durable store (the running task is recovered and runs again).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, launchBrowser, PageErrors, openLive, newRowAfter, waitRow, row, pollTask, pretty,
  WAIT_MS, SUITE_MS,
} from './helpers.js';

const SOCKET = /\/socket\.io\//;

describe('a cut network: the missed result comes on reconnect', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  const errors = new PageErrors();
  // The page's WebSockets, each with its link to the server, while not cut.
  const links = new Set();
  let cut = false;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
    // Every WebSocket of the page goes through here: passed on to the server
    // normally, refused while cut. (A route applies to sockets opened after
    // it is set, so it is set before the page loads.)
    await page.routeWebSocket(SOCKET, (ws) => {
      if (cut) {
        ws.close();
        return;
      }
      const link = { ws, server: ws.connectToServer() };
      links.add(link);
      ws.onClose(() => links.delete(link));
    });
    await openLive(page, server.url, '/');
    // Gone if the page reloads: everything below must happen without one.
    await page.evaluate(() => { window.noReloadMark = true; });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows a result pushed while it was offline once it is back', async () => {
    await page.selectOption('#kind', 'sleep');
    await page.fill('#field-ms', '1500');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    await waitRow(page, id, 'running');

    // Cut: close the open WebSocket on both sides (the server sees the
    // socket leave, the page sees a lost connection), refuse new ones and
    // fail every long-polling request, which the client falls back to.
    // The client's failed reconnection attempts log network errors: expected
    // until the page is connected again.
    errors.expectNetworkErrors('network cut by the test');
    cut = true;
    await page.route(SOCKET, (r) => r.abort());
    assert.ok(links.size >= 1, 'the page had a WebSocket to cut');
    for (const link of [...links]) {
      link.ws.close();
      link.server.close();
    }
    await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: WAIT_MS, state: 'attached' });
    assert.match(await page.textContent('#conn'), /^Offline, reconnecting/);

    // The server finishes the task meanwhile: its `result` push goes to
    // nobody, since the page's socket has left the task's room.
    const done = await pollTask(server.url, id, (t) => t.status === 'succeeded', `task ${id} succeeded on the server`);
    assert.deepEqual(done.output, { slept_ms: 1500 });
    assert.equal(await page.getAttribute(row(id), 'data-status'), 'running',
      'the page cannot know yet: it is offline');

    // Restore: the client reconnects on its own and subscribes again to the
    // tasks it still thinks unfinished; the subscribe ack brings the result.
    cut = false;
    await page.unroute(SOCKET);
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: WAIT_MS, state: 'attached' });
    errors.endNetworkErrors();
    assert.equal(await page.textContent('#conn'), 'Live');
    const li = await waitRow(page, id, 'succeeded');
    assert.equal(await li.locator('pre.output').textContent(), pretty({ slept_ms: 1500 }));
    assert.equal(await li.locator('button.cancel').count(), 0);
    assert.equal(await page.evaluate(() => window.noReloadMark), true, 'the page reloaded');
  });

  it('works normally after the reconnect', async () => {
    await page.selectOption('#kind', 'echo');
    await page.fill('textarea#input', '{"after": "reconnect"}');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    const li = await waitRow(page, id, 'succeeded');
    assert.equal(await li.locator('pre.output').textContent(), pretty({ after: 'reconnect' }));
  });

  it('logged no errors but the cut\'s network errors', () => {
    errors.assertNone();
  });
});

describe('a server killed and restarted: the page follows its task to the end', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  let dataDir;
  const errors = new PageErrors();

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskwire-data-'));
    server = await startServer({ dataDir });
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
    await openLive(page, server.url, '/');
    // Gone if the page reloads: everything below must happen without one.
    await page.evaluate(() => { window.noReloadMark = true; });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('reconnects to the restarted server and shows the recovered task\'s result', async () => {
    await page.selectOption('#kind', 'sleep');
    await page.fill('#field-ms', '3000');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    await waitRow(page, id, 'running');

    // While the server is down the client's reconnection attempts fail
    // (connection refused): expected until it is connected again.
    errors.expectNetworkErrors('server killed by the test');
    const { port } = server;
    const orphans = await server.kill('SIGKILL');
    assert.deepEqual(orphans, [], 'worker processes outlived the killed server');
    await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: WAIT_MS, state: 'attached' });
    assert.equal(await page.getAttribute(row(id), 'data-status'), 'running');

    server = await startServer({ dataDir, port });
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: WAIT_MS, state: 'attached' });
    errors.endNetworkErrors();

    // The store kept the task; it runs again (a second attempt) and its
    // result reaches the page, which subscribed again on reconnect.
    const li = await waitRow(page, id, 'succeeded', 30_000);
    assert.equal(await li.locator('pre.output').textContent(), pretty({ slept_ms: 3000 }));
    assert.match(await li.locator('p.times').textContent(), /attempt 2\/3/);
    const task = await pollTask(server.url, id, (t) => t.status === 'succeeded', 'the task on the restarted server');
    assert.equal(task.attempt, 2);
    assert.deepEqual(task.output, { slept_ms: 3000 });
    assert.equal(await page.evaluate(() => window.noReloadMark), true, 'the page reloaded');
  });

  it('logged no errors but the restart\'s network errors', () => {
    errors.assertNone();
  });
});
