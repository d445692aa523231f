// Takes the README's screenshots of the web UI, from a real server and
// Debian's headless Chromium:
//   docs/screenshots/console.png    the console with a handful of varied tasks
//   docs/screenshots/dashboard.png  the dashboard after ~10 s of mixed load, latency per kind
//   docs/screenshots/schedules.png  the schedules page with a few schedules
//   docs/screenshots/explorer.png   the task explorer over every client's tasks
//   docs/screenshots/task-attempts.png  a failed task's page: its attempts, Retry
// Run from the repository root: `node tests/browser/screenshots.js` (the
// site must be built: `cargo leptos build`). Same environment variables as
// the tests.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import {
  startServer, launchBrowser, openLive, newRowAfter, waitRow, row, ack, pollUntil, WAIT_MS,
} from './helpers.js';

/** Creates or replaces a schedule over HTTP. */
async function putSchedule(base, name, body) {
  const res = await fetch(`${base}/schedules/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  if (res.status !== 200) throw new Error(`PUT /schedules/${name}: HTTP ${res.status} ${await res.text()}`);
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, '../../docs/screenshots');
const VIEWPORT = { width: 1280, height: 800 };

/** Submits one task through the console's form; returns its id. */
async function submit(page, kind, fields = {}, { raw, delay, unit = 's' } = {}) {
  await page.selectOption('#kind', kind);
  if (raw !== undefined) await page.fill('textarea#input', raw);
  for (const [name, value] of Object.entries(fields)) await page.fill(`#field-${name}`, String(value));
  if (delay !== undefined) {
    await page.fill('#opt-delay', delay);
    await page.selectOption('#opt-delay-unit', unit);
  }
  return newRowAfter(page, () => page.click('#submit-button'), `the ${kind} task's row`);
}

async function consoleShot(page, server) {
  await openLive(page, server.url, '/');

  const echo = await submit(page, 'echo', {}, { raw: '{"hello": "taskwire", "tags": ["fast", "live"]}' });
  await waitRow(page, echo, 'succeeded');
  const hash = await submit(page, 'sha256', { data: 'taskwire', rounds: 1000 });
  await waitRow(page, hash, 'succeeded');
  const fail = await submit(page, 'fail', { message: 'upstream refused the upload (on purpose)' });
  await waitRow(page, fail, 'failed');
  const cancelled = await submit(page, 'sleep', { ms: 60000 });
  await waitRow(page, cancelled, 'running');
  await page.click(`${row(cancelled)} button.cancel`);
  await waitRow(page, cancelled, 'cancelled');
  const primesDone = await submit(page, 'primes', { limit: 1000000 });
  await waitRow(page, primesDone, 'succeeded', 60_000);
  const sleeping = await submit(page, 'sleep', { ms: 120000 });
  await waitRow(page, sleeping, 'running');
  // One that waits for the sleep, and one delayed by ten minutes.
  await page.selectOption('#kind', 'echo');
  await page.fill('textarea#input', '{"after": "the sleep"}');
  await page.check(`#after-${sleeping}`);
  const waiting = await newRowAfter(page, () => page.click('#submit-button'), 'the waiting task\'s row');
  await waitRow(page, waiting, 'waiting');
  await page.uncheck(`#after-${sleeping}`);
  const delayed = await submit(page, 'sha256', { data: 'later', rounds: 10 }, { delay: '10', unit: 'min' });
  await waitRow(page, delayed, 'scheduled');
  await page.fill('#opt-delay', '');
  // A big count, caught part way: its progress bar is on screen.
  const primes = await submit(page, 'primes', { limit: 10_000_000_000 });
  await page.waitForFunction((sel) => {
    const bar = document.querySelector(sel);
    return bar && Number(bar.getAttribute('value')) / Number(bar.getAttribute('max')) >= 0.3;
  }, `${row(primes)}[data-status="running"] progress[value]`, { timeout: 120_000 });

  // Back to the form's first kind, so the panel shows the raw JSON editor.
  await page.selectOption('#kind', 'echo');
  await page.fill('textarea#input', '{"hello": "world"}');
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: path.join(OUT, 'console.png') });
  await page.click(`${row(primes)} button.cancel`);
  await page.click(`${row(sleeping)} button.cancel`);
  await page.click(`${row(delayed)} button.cancel`);
}

async function schedulesShot(page, server) {
  await putSchedule(server.url, 'nightly-report', {
    cron: '0 2 * * *', timezone: 'Europe/Paris', task: { kind: 'sha256', input: { data: 'report', rounds: 1000 } },
  });
  await putSchedule(server.url, 'heartbeat', {
    cron: '*/5 * * * * *', task: { kind: 'echo', input: { ping: true } },
  });
  await putSchedule(server.url, 'weekly-cleanup', {
    cron: '30 4 * * 1', timezone: 'America/New_York', task: { kind: 'sleep', input: { ms: 30000 } }, paused: true,
  });
  await openLive(page, server.url, '/schedules');
  await page.locator('tr[data-schedule="heartbeat"] td.last a').waitFor({ timeout: WAIT_MS });
  await page.fill('#schedule-name', 'hourly-primes');
  await page.fill('#schedule-cron', '0 * * * *');
  await page.selectOption('#schedule-kind', 'primes');
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: path.join(OUT, 'schedules.png') });
  for (const name of ['nightly-report', 'heartbeat', 'weekly-cleanup']) {
    await fetch(`${server.url}/schedules/${name}`, { method: 'DELETE', signal: AbortSignal.timeout(WAIT_MS) });
  }
}

/** A task that failed three times (retried on failure), on its own page. */
async function attemptsShot(page, server, socket) {
  const res = await ack(socket, 'task', {
    kind: 'fail', input: { message: 'upstream refused the upload (on purpose)' },
    max_attempts: 3, retry_on_failure: true, backoff_ms: 200, key: 'upload:2026-12:report',
  });
  if (!res?.ok) throw new Error(`refused: ${JSON.stringify(res)}`);
  const id = res.task.id;
  await openLive(page, server.url, `/tasks/${id}`);
  await page.waitForSelector(`article.task-page[data-status="failed"]`, { timeout: WAIT_MS });
  await page.waitForSelector('table#attempts tbody tr[data-attempt="3"]', { timeout: WAIT_MS });
  await page.screenshot({ path: path.join(OUT, 'task-attempts.png'), fullPage: true });
}

/** The explorer's newest page, every kind, after the mixed load. */
async function explorerShot(page, server) {
  await openLive(page, server.url, '/tasks?limit=20');
  await page.waitForSelector('table#explorer tbody tr[data-task-id]', { timeout: WAIT_MS });
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: path.join(OUT, 'explorer.png') });
}

/** About `seconds` of mixed tasks from Node, at a rate that rises and falls. */
async function mixedLoad(socket, seconds) {
  const end = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < end) {
    const phase = (Date.now() % 8000) / 8000;
    const size = Math.round(5 + 40 * (0.5 - 0.5 * Math.cos(2 * Math.PI * phase)));
    const tasks = [];
    for (let i = 0; i < size; i++, n++) {
      const pick = n % 10;
      if (pick < 6) tasks.push({ kind: 'echo', input: { n } });
      else if (pick < 8) tasks.push({ kind: 'sha256', input: { data: `t${n}`, rounds: 2000 } });
      else if (pick < 9) tasks.push({ kind: 'sleep', input: { ms: 300 + (n % 7) * 200 } });
      else if (n % 20 === 9) tasks.push({ kind: 'fail', input: { message: `bad input ${n}` } });
      else tasks.push({ kind: 'primes', input: { limit: 200000 } });
    }
    const res = await ack(socket, 'tasks', { tasks });
    if (!res?.ok) throw new Error(`batch refused: ${JSON.stringify(res)}`);
    await delay(250); // pacing of the generated load, not synchronisation
  }
  // A few long ones, so the workers table shows tasks in progress.
  await ack(socket, 'tasks', { tasks: [
    { kind: 'sleep', input: { ms: 30000 } },
    { kind: 'primes', input: { limit: 10_000_000_000 } },
  ] });
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const server = await startServer();
  const browser = await launchBrowser({ colorScheme: 'light', viewport: VIEWPORT });
  try {
    // The dashboard opens first, so its chart has the whole session.
    const dashboard = browser.context.pages()[0] ?? await browser.context.newPage();
    await openLive(dashboard, server.url, '/dashboard');
    const page = await browser.context.newPage();
    await page.bringToFront();
    await consoleShot(page, server);
    console.log(`wrote ${path.join(OUT, 'console.png')}`);

    const socket = await server.connect();
    await dashboard.bringToFront();
    await mixedLoad(socket, 10);
    await pollUntil(async () => (await dashboard.locator('table#workers tbody a').count()) >= 1,
      'a worker showing its current task', WAIT_MS);
    await pollUntil(async () => {
      const p = (await dashboard.getAttribute('svg#throughput polyline.line', 'points')) ?? '';
      return p.trim().split(/\s+/).length >= 20;
    }, 'a throughput line with some history', WAIT_MS);
    await dashboard.locator('table#kinds tbody tr[data-kind="sha256"] td.run').filter({ hasText: /\d/ })
      .waitFor({ timeout: WAIT_MS });
    await dashboard.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });
    console.log(`wrote ${path.join(OUT, 'dashboard.png')}`);

    await page.bringToFront();
    await schedulesShot(page, server);
    console.log(`wrote ${path.join(OUT, 'schedules.png')}`);
    await explorerShot(page, server);
    console.log(`wrote ${path.join(OUT, 'explorer.png')}`);
    await attemptsShot(page, server, socket);
    console.log(`wrote ${path.join(OUT, 'task-attempts.png')}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
