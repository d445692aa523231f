// Shared helpers for Taskwire's end-to-end browser tests.
//
// Run with `npm test --workspace tests/browser` from the repository root
// (node --test, one file at a time) after `cargo leptos build`.
// Environment: TASKWIRE_BIN (the server binary; default
// target/debug/taskwire), TASKWIRE_SITE_ROOT (the built site; default
// target/site), CHROMIUM (default /usr/bin/chromium).
//
// Every test file starts its own server (`taskwire serve`, the real binary
// with the real site) and its own headless Chromium (Debian's, driven by
// playwright-core: nothing is downloaded), and tears both down in `after`.
// Starting and stopping the server is tests/support's TaskwireServer.
// Every wait is bounded; a missing state fails the test with what was last
// seen instead of hanging it. Nothing here sleeps to synchronise: waits are
// either playwright's own bounded waits or polling with a deadline.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';
import { TaskwireServer, binPath, siteRoot, withTimeout } from '@taskwire/test-support';

export { binPath, siteRoot, withTimeout };

/** Longest single wait for a page state, an ack or a server line. */
export const WAIT_MS = 20_000;
/** Longest a whole test file's suite may take (a backstop: every wait is bounded anyway). */
export const SUITE_MS = 180_000;

/** The pretty JSON the page shows in `pre.output` (serde_json's pretty = JSON.stringify(x, null, 2)). */
export const pretty = (v) => JSON.stringify(v, null, 2);

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `fn` (sync or async) every `every` ms until it returns a truthy value,
 * which is returned; fails after `ms` with `what` and the last value / error.
 */
export async function pollUntil(fn, what, ms = WAIT_MS, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${String(detail).slice(0, 500)}`);
    }
    await pause(every);
  }
}

/** The ids of the server's worker processes (the children of `pid`), from /proc. */
function childPids(pid) {
  const kids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name, which is in parentheses: state, ppid, …
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(entry));
    } catch { /* exited meanwhile */ }
  }
  return kids;
}

/** Whether `pid` runs (a zombie, exited but not yet reaped, does not). */
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Starts `taskwire serve --addr 127.0.0.1:<port> --workers <workers>` with the
 * site, either in memory (default) or on the durable store in `dataDir`, and
 * resolves once it printed `taskwire listening on http://127.0.0.1:PORT`.
 */
export async function startServer({ dataDir = null, port = 0, workers = 2, extra = [] } = {}) {
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '--workers', String(workers), '--site-root', siteRoot()];
  args.push(...(dataDir ? ['--data-dir', dataDir] : ['--memory']), ...extra);
  const taskwire = new TaskwireServer();
  const url = await taskwire.start(args, { waitMs: WAIT_MS });
  const proc = taskwire.proc;
  const sockets = new Set();
  return {
    url,
    port: Number(new URL(url).port),
    proc,
    /** The server's worker processes now. */
    workerPids: () => childPids(proc.pid),
    stderrTail: () => taskwire.stderrTail(),
    get running() {
      return taskwire.running;
    },
    /** A socket.io-client on the websocket transport, connected. */
    async connect() {
      const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: WAIT_MS });
      sockets.add(socket);
      await withTimeout(new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      }), WAIT_MS, 'socket.io connect');
      return socket;
    },
    /**
     * Kills the server with `signal` and waits for it to exit. Returns the
     * worker processes that outlived it (after a bounded wait): none is
     * expected; any found is killed so that no test leaves one behind.
     */
    async kill(signal = 'SIGKILL') {
      for (const s of sockets) s.disconnect();
      sockets.clear();
      // Read before the kill: orphans are no longer the server's children.
      const workersPids = this.running ? childPids(proc.pid) : [];
      await taskwire.kill(signal, WAIT_MS);
      const deadline = Date.now() + 5_000;
      while (workersPids.some(alive) && Date.now() < deadline) await pause(50);
      const left = workersPids.filter(alive);
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch { /* gone meanwhile */ }
      }
      return left;
    },
    stop() {
      return this.kill('SIGKILL');
    },
  };
}

/** Emits with an ack on a socket.io-client socket; bounded. */
export async function ack(socket, event, payload) {
  try {
    return await socket.timeout(WAIT_MS).emitWithAck(event, payload);
  } catch (err) {
    throw new Error(`no ack for ${event} within ${WAIT_MS} ms (${err.message})`);
  }
}

/** GET /tasks/{id} as JSON (status + body). */
export async function getTask(base, id) {
  const r = await fetch(`${base}/tasks/${id}`, {
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await r.text();
  assert.equal(r.status, 200, `GET /tasks/${id}: HTTP ${r.status} ${body.slice(0, 300)}`);
  return JSON.parse(body);
}

/** Polls GET /tasks/{id} until `cond(task)`; bounded. */
export function pollTask(base, id, cond, what, ms = WAIT_MS) {
  let last;
  return pollUntil(async () => {
    last = await getTask(base, id);
    return cond(last) && last;
  }, `${what} (last: ${JSON.stringify(last)?.slice(0, 300)})`, ms);
}

export const LAUNCH_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Debian's Chromium in a persistent context on a fresh profile directory.
 * `close()` closes it and removes the directory; call it in `after`.
 */
export async function launchBrowser(options = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskwire-browser-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: LAUNCH_ARGS,
      viewport: { width: 1280, height: 800 },
      ...options,
    });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  // Every playwright action and wait that names no timeout of its own.
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  return {
    context,
    async close() {
      try {
        await withTimeout(context.close(), WAIT_MS, 'browser close');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// Console errors that a deliberately cut network causes: failed requests of
// the Socket.IO polling transport (`Failed to load resource: net::ERR_…`),
// failed WebSocket handshakes (`WebSocket connection to '…' failed`), and the
// server's 400 to a polling request of a session that is gone (the server
// restarted, or the client closed it while that request was on its way, as
// socket.io-client does after a refused connect). They are tolerated only
// while a test has opened a window with `expectNetworkErrors` and only when
// they are about `/socket.io/`, the connection the test cut.
const NETWORK_ERROR = new RegExp([
  /net::ERR_[A-Z_]+/.source,
  /WebSocket connection to '[^']*\/socket\.io\/[^']*' failed/.source,
  /the server responded with a status of 400 \(Bad Request\)/.source,
].join('|'));

/** Documents a {@link PageErrors} remembers for its failure message. */
const DOCUMENTS_KEPT = 8;

/**
 * Records a page's console errors and uncaught exceptions, so a test can
 * assert at its end that there were none (but those it caused on purpose).
 */
export class PageErrors {
  constructor() {
    this.entries = [];
    this.window = null;
    /** The last documents loaded, with their policy, for failure messages. */
    this.documents = [];
  }

  watch(page, label = 'page') {
    page.on('console', (msg) => {
      // Errors, and Leptos's debug-build warnings about our own code (e.g. a
      // signal read outside a tracking context).
      const ours = msg.type() === 'warning' && /app\/src\//.test(msg.text());
      if (msg.type() !== 'error' && !ours) return;
      const loc = msg.location();
      this.entries.push({ label, kind: 'console', text: msg.text(), url: loc?.url ?? '', window: this.window });
    });
    page.on('pageerror', (err) => {
      this.entries.push({ label, kind: 'pageerror', text: String(err?.stack || err), url: '', window: this.window });
    });
    page.on('response', (res) => {
      if (!res.request().isNavigationRequest()) return;
      const policy = res.headers()['content-security-policy'] ?? '(none)';
      this.documents.push(`${label} ${res.status()} ${res.url()} content-security-policy: ${policy}`);
      if (this.documents.length > DOCUMENTS_KEPT) this.documents.shift();
    });
    return page;
  }

  /** Opens a window (named for messages) in which network errors are expected. */
  expectNetworkErrors(why) {
    this.window = why;
  }

  /** Closes it: from now on every console error counts again. */
  endNetworkErrors() {
    this.window = null;
  }

  /** The errors that count: all but network errors inside a window. */
  unexpected() {
    return this.entries.filter((e) => {
      if (e.kind !== 'console' || !e.window) return true;
      // A failed request shows as "Failed to load resource: net::ERR_…" with
      // the request's URL as the location: only the socket's is ours.
      // A 400 counts only for a polling request of an existing session.
      const aboutSocket = /400 \(Bad Request\)/.test(e.text)
        ? /\/socket\.io\/\?\S*transport=polling\S*&sid=/.test(e.url)
        : /\/socket\.io\//.test(e.url) || /\/socket\.io\//.test(e.text);
      return !(NETWORK_ERROR.test(e.text) && aboutSocket);
    });
  }

  assertNone() {
    const bad = this.unexpected();
    assert.deepEqual(bad.map((e) => `${e.label} ${e.kind}: ${e.text} ${e.url}`.trim()), [],
      `the page logged errors; the last documents it loaded:\n${this.documents.join('\n')}`);
  }
}

/** Navigates to `path` and waits until the page is hydrated and live. */
export async function openLive(page, base, urlPath = '/') {
  await page.goto(base + urlPath, { timeout: WAIT_MS });
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: WAIT_MS, state: 'attached' });
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: WAIT_MS, state: 'attached' });
}

/** Ids of the rows the console lists, in page order (newest first). */
export function rowIds(page) {
  return page.$$eval('li.task', (lis) => lis.map((li) => li.dataset.taskId));
}

/**
 * Runs `action` (which submits through the page) and returns the id of the
 * one new row it added to the list.
 */
export async function newRowAfter(page, action, what = 'a new task row') {
  const before = new Set(await rowIds(page));
  await action();
  const fresh = await pollUntil(async () => {
    const ids = (await rowIds(page)).filter((id) => !before.has(id));
    return ids.length > 0 && ids;
  }, what);
  assert.equal(fresh.length, 1, `one submission added ${fresh.length} rows`);
  return fresh[0];
}

export const row = (id) => `li.task[data-task-id="${id}"]`;

/** Waits until the console's row of `id` has `status`; returns its locator. */
export async function waitRow(page, id, status, ms = WAIT_MS) {
  try {
    await page.waitForSelector(`${row(id)}[data-status="${status}"]`, { timeout: ms, state: 'attached' });
  } catch (e) {
    const now = await page.$eval(row(id), (li) => li.dataset.status).catch(() => '(no row)');
    throw new Error(`row ${id} did not reach ${status} within ${ms} ms (it is ${now}): ${e.message.split('\n')[0]}`);
  }
  return page.locator(row(id));
}

/** The number a filter button shows. */
export async function filterCount(page, filter) {
  const text = await page.textContent(`button.filter[data-filter="${filter}"] .count`, { timeout: WAIT_MS });
  return Number(text.trim());
}
