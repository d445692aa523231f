// Takes the README's screenshots of the web UI, from a real server and
// Debian's headless Chromium:
//   docs/screenshots/console.png    the console with a handful of varied tasks
//   docs/screenshots/dashboard.png  the dashboard after ~10 s of mixed load
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

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, '../../docs/screenshots');
const VIEWPORT = { width: 1280, height: 800 };

/** Submits one task through the console's form; returns its id. */
async function submit(page, kind, fields = {}, { raw } = {}) {
  await page.selectOption('#kind', kind);
  if (raw !== undefined) await page.fill('textarea#input', raw);
  for (const [name, value] of Object.entries(fields)) await page.fill(`#field-${name}`, String(value));
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
    await dashboard.screenshot({ path: path.join(OUT, 'dashboard.png') });
    console.log(`wrote ${path.join(OUT, 'dashboard.png')}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
