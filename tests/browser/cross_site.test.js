// Cross-site use: a page of another origin (a tiny Node server on another
// port, standing for any site the user visits) tries to use a Taskwire
// server on 127.0.0.1 — Socket.IO on `/` and `/worker` over both
// transports, `POST /tasks` as text/plain, as a form — and is refused every
// time; nothing is created. With `--allowed-origin <that origin>` its
// socket connects (polling first, thanks to CORS) and its tasks run. A page
// reaching the server under a foreign host name (DNS rebinding, simulated
// with Chromium's host resolver rules) is refused too.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  startServer, launchBrowser, ack, withTimeout, LAUNCH_ARGS, WAIT_MS, SUITE_MS,
} from './helpers.js';

// The browser bundle of the workspace's socket.io-client (its package does
// not export the file, so it is found beside the resolved package.json).
const CLIENT_JS = path.join(
  path.dirname(createRequire(import.meta.url).resolve('socket.io-client/package.json')),
  'dist/socket.io.min.js',
);
const REBOUND = 'rebound.test';

/** The other site: an empty page and the Socket.IO client, on 127.0.0.1:<random>. */
async function startOtherSite() {
  const client = fs.readFileSync(CLIENT_JS);
  const server = http.createServer((req, res) => {
    if (req.url === '/io.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(client);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!DOCTYPE html><title>another site</title><script src="/io.js"></script>');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Runs in the other site's page: every way to use the server it has.
 * Each connect attempt ends in `connected` or `refused: <reason>`.
 */
async function attack(target) {
  const attempt = (nsp, opts) => new Promise((resolve) => {
    const s = io(target + nsp, { forceNew: true, reconnection: false, timeout: 10_000, ...opts });
    s.on('connect', () => {
      s.disconnect();
      resolve('connected');
    });
    s.on('connect_error', (e) => {
      s.close();
      resolve(`refused: ${e.message}`);
    });
  });
  const worker = { auth: { name: 'other-site', kinds: ['echo'], concurrency: 1 } };
  const out = {
    clientWebsocket: await attempt('/', { transports: ['websocket'] }),
    clientPolling: await attempt('/', { transports: ['polling'] }),
    workerWebsocket: await attempt('/worker', { transports: ['websocket'], ...worker }),
    workerPolling: await attempt('/worker', { transports: ['polling'], ...worker }),
  };
  // A "simple" request: the browser sends it without asking (no preflight)
  // and only hides the answer from the page (or, with the server's
  // Cross-Origin-Resource-Policy, fails it after the fact): what counts is
  // whether the server acted on it.
  try {
    await fetch(`${target}/tasks`, {
      method: 'POST',
      mode: 'no-cors',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ kind: 'echo', input: 'from another site' }),
    });
  } catch { /* see above */ }
  return out;
}

/** What the server holds, asked over a Node socket (which sends no Origin). */
async function holdings(server) {
  const socket = await server.connect();
  try {
    const res = await ack(socket, 'dashboard', {});
    assert.equal(res.ok, true, JSON.stringify(res));
    const s = res.stats;
    return {
      tasks: s.queued + s.running + s.succeeded + s.failed + s.cancelled + s.timed_out,
      remoteWorkers: s.workers.filter((w) => w.remote).map((w) => w.id),
    };
  } finally {
    socket.disconnect();
  }
}

describe('cross-site use', { timeout: SUITE_MS }, () => {
  let other;
  let browser;
  const servers = [];

  before(async () => {
    other = await startOtherSite();
    browser = await launchBrowser({ args: [...LAUNCH_ARGS, `--host-resolver-rules=MAP ${REBOUND} 127.0.0.1`] });
  });

  after(async () => {
    await browser?.close();
    for (const s of servers) await s.stop();
    await other?.close();
  });

  async function otherSitePage() {
    const page = await browser.context.newPage();
    await page.goto(`${other.origin}/`, { timeout: WAIT_MS });
    await page.waitForFunction(() => typeof io === 'function', null, { timeout: WAIT_MS });
    return page;
  }

  it('refuses Socket.IO and POST /tasks from a page of another origin', async () => {
    const server = await startServer();
    servers.push(server);
    const page = await otherSitePage();
    const out = await withTimeout(page.evaluate(attack, server.url), WAIT_MS * 2, 'the attempts');
    // The no-JS form, posted by the other site (a top-level navigation).
    const [answer] = await withTimeout(Promise.all([
      page.waitForResponse((r) => r.url() === `${server.url}/tasks`, { timeout: WAIT_MS }),
      page.evaluate((target) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = `${target}/tasks`;
        for (const [name, value] of [['kind', 'echo'], ['input', '"form from another site"']]) {
          const field = document.createElement('input');
          field.name = name;
          field.value = value;
          form.append(field);
        }
        document.body.append(form);
        // After this evaluation returns: a navigation under way while it
        // is still pending can leave it hanging.
        setTimeout(() => form.submit(), 0);
      }, server.url),
    ]), WAIT_MS, 'the form post');
    // Closing a page whose navigation has not finished can hang.
    await page.waitForURL(`${server.url}/tasks`, { waitUntil: 'load', timeout: WAIT_MS });
    await withTimeout(page.close(), WAIT_MS, 'closing the page');
    // One comparison, so that a failure shows everything that got through.
    const connected = Object.entries(out).filter(([, r]) => !r.startsWith('refused: ')).map(([what]) => what);
    assert.deepEqual(
      { connected, form: answer.status(), held: await holdings(server) },
      { connected: [], form: 403, held: { tasks: 0, remoteWorkers: [] } },
      `from ${other.origin}: ${JSON.stringify(out)}`,
    );
  });

  it('refuses a page that reaches it under another host name (DNS rebinding)', async () => {
    // Once a site's name points at 127.0.0.1, its pages are same-origin with
    // the server: the browser sends no foreign Origin, and would let them
    // read every answer. Each is refused for its Host.
    const server = servers[0];
    const page = await browser.context.newPage();
    const rebound = `http://${REBOUND}:${server.port}`;
    for (const at of ['/kinds', '/socket.io/?EIO=4&transport=polling']) {
      const res = await page.goto(rebound + at, { timeout: WAIT_MS });
      assert.equal(res.status(), 403, `GET ${at} under ${REBOUND}`);
      assert.match((await res.json()).error.message, /^host rebound\.test:\d+ is not allowed/);
    }
    await page.close();
    assert.deepEqual(await holdings(server), { tasks: 0, remoteWorkers: [] });
  });

  it('lets a page of an --allowed-origin connect and submit', async () => {
    const server = await startServer({ extra: ['--allowed-origin', other.origin] });
    servers.push(server);
    const page = await otherSitePage();
    const out = await withTimeout(page.evaluate(async (target) => {
      // Default transports: long-polling first (needs CORS), then upgrade.
      const s = io(target, { forceNew: true, reconnection: false, timeout: 10_000 });
      await new Promise((resolve, reject) => {
        s.on('connect', resolve);
        s.on('connect_error', reject);
      });
      const socketAck = await s.timeout(10_000).emitWithAck('task', { kind: 'echo', input: 'allowed' });
      s.disconnect();
      const res = await fetch(`${target}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'echo', input: 'allowed over http' }),
      });
      return { socketAck, httpStatus: res.status, httpTask: await res.json() };
    }, server.url), WAIT_MS * 2, 'the allowed page');
    assert.equal(out.socketAck.ok, true, JSON.stringify(out.socketAck));
    assert.equal(out.socketAck.task.input, 'allowed');
    assert.equal(out.httpStatus, 202);
    assert.equal(out.httpTask.input, 'allowed over http');
    await page.close();
    assert.equal((await holdings(server)).tasks, 2);
  });
});
