// The dashboard (`/dashboard`): counters, throughput chart and workers, all
// from the server's `stats` pushes, while tasks are submitted from Node.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, PageErrors, openLive, ack, pollUntil, pollTask, WAIT_MS, SUITE_MS,
} from './helpers.js';

const COUNTERS = ['scheduled', 'waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out'];

/** The dashboard's counters as numbers (NaN while it shows "–"). */
function counters(page) {
  return page.$$eval('dl.counters > div[data-counter]', (divs) => Object.fromEntries(
    divs.map((d) => [d.dataset.counter, Number(d.querySelector('dd').textContent.trim())]),
  ));
}

describe('dashboard', { timeout: SUITE_MS }, () => {
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
    await openLive(page, server.url, '/dashboard');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows every counter, zero on a fresh server', async () => {
    const names = await page.$$eval('dl.counters > div[data-counter]', (ds) => ds.map((d) => d.dataset.counter));
    assert.deepEqual(names, COUNTERS);
    // The first stats come with the `dashboard` ack, then about twice a second.
    const zero = Object.fromEntries(COUNTERS.map((c) => [c, 0]));
    await pollUntil(async () => JSON.stringify(await counters(page)) === JSON.stringify(zero),
      'all counters 0');
  });

  it('lists the local workers', async () => {
    await pollUntil(async () => (await page.locator('table#workers tbody tr[data-worker-id]').count()) === 2,
      'two worker rows');
    const ids = await page.$$eval('table#workers tbody tr[data-worker-id]', (trs) => trs.map((tr) => tr.dataset.workerId));
    assert.deepEqual([...ids].sort(), ['local-1', 'local-2']);
    assert.equal(await page.locator('#workers + p.empty').count(), 0, 'no "waiting for stats" once stats came');
  });

  it('lists the server as the one node, and names it on each worker', async () => {
    await pollUntil(async () => (await page.locator('table#nodes tbody tr[data-node-id]').count()) === 1,
      'one node row');
    const row = await page.$eval('table#nodes tbody tr[data-node-id]', (tr) => ({
      id: tr.dataset.nodeId,
      cells: [...tr.querySelectorAll('td')].map((td) => td.textContent.trim()),
    }));
    assert.equal(row.cells[1], new URL(server.url).host, 'its address');
    assert.equal(row.cells[3], '2', 'its workers');
    const nodes = await page.$$eval('table#workers tbody tr[data-worker-id] td:nth-child(6)',
      (tds) => tds.map((td) => td.textContent.trim()));
    assert.deepEqual(nodes, [row.id, row.id]);
  });

  it('counts tasks submitted elsewhere, and charts the throughput', async () => {
    // 20 echo tasks: 15 over Socket.IO, 5 over HTTP.
    const ids = [];
    for (let i = 0; i < 15; i++) {
      const res = await ack(socket, 'task', { kind: 'echo', input: { i } });
      assert.equal(res?.ok, true, JSON.stringify(res));
      ids.push(res.task.id);
    }
    for (let i = 15; i < 20; i++) {
      const res = await fetch(`${server.url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'echo', input: { i } }),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      assert.equal(res.status, 202);
      ids.push((await res.json()).id);
    }
    const want = { scheduled: 0, waiting: 0, queued: 0, running: 0, succeeded: 20, failed: 0, cancelled: 0, timed_out: 0 };
    await pollUntil(async () => {
      const c = await counters(page);
      return JSON.stringify(c) === JSON.stringify(want) || c;
    }, `counters ${JSON.stringify(want)}`);

    // Workers' "tasks done" add up to what ran.
    await pollUntil(async () => {
      const done = await page.$$eval('table#workers tbody tr[data-worker-id] td:nth-child(5)',
        (tds) => tds.reduce((a, td) => a + Number(td.textContent), 0));
      return done === 20 || done;
    }, 'workers\' tasks done adding up to 20');

    // The chart: a polyline of (x, y) points inside the 600 × 160 box once
    // a couple of stats arrived.
    const points = await pollUntil(async () => {
      const p = (await page.getAttribute('svg#throughput polyline.line', 'points'))?.trim() ?? '';
      return p.split(/\s+/).length >= 2 && p;
    }, 'at least two points on the throughput line');
    for (const pt of points.split(/\s+/)) {
      const [x, y] = pt.split(',').map(Number);
      assert.ok(x >= 0 && x <= 600 && y >= 0 && y <= 160, `point ${pt} outside the chart`);
    }
    assert.match(await page.textContent('figure.chart .rate'), /^\d+(\.\d)? tasks\/s$/);
  });

  it('shows a running task on its worker, then its cancellation', async () => {
    const res = await ack(socket, 'task', { kind: 'sleep', input: { ms: 60000 } });
    assert.equal(res?.ok, true, JSON.stringify(res));
    const { id } = res.task;
    const { worker } = await pollTask(server.url, id, (t) => t.status === 'running', 'sleep running');
    await pollUntil(async () => (await counters(page)).running === 1, 'running 1');
    const tr = page.locator(`table#workers tbody tr[data-worker-id="${worker}"]`);
    await pollUntil(async () => (await tr.locator(`a[href="/tasks/${id}"]`).count()) === 1,
      `the task's link on ${worker}'s row`);
    assert.equal(await tr.locator('.state').textContent(), 'busy');

    const cancelled = await ack(socket, 'cancel', { task_id: id });
    assert.equal(cancelled?.ok, true, JSON.stringify(cancelled));
    await pollUntil(async () => {
      const c = await counters(page);
      return (c.running === 0 && c.cancelled === 1) || c;
    }, 'running 0, cancelled 1');
    await pollUntil(async () => (await tr.locator('a').count()) === 0, `no current task on ${worker}`);
  });

  it('counts scheduled and waiting tasks', async () => {
    const sleep = await ack(socket, 'task', { kind: 'sleep', input: { ms: 60000 } });
    assert.equal(sleep?.ok, true, JSON.stringify(sleep));
    const after = await ack(socket, 'task', { kind: 'echo', input: 1, after: [sleep.task.id] });
    assert.equal(after?.task?.status, 'waiting', JSON.stringify(after));
    const later = await ack(socket, 'task', { kind: 'echo', input: 2, delay_ms: 3_600_000 });
    assert.equal(later?.task?.status, 'scheduled', JSON.stringify(later));
    await pollUntil(async () => {
      const c = await counters(page);
      return (c.scheduled === 1 && c.waiting === 1 && c.running === 1) || c;
    }, 'scheduled 1, waiting 1, running 1');

    // Cancelling the sleep fails the task after it (dependency_failed).
    for (const id of [sleep.task.id, later.task.id]) {
      const res = await ack(socket, 'cancel', { task_id: id });
      assert.equal(res?.ok, true, JSON.stringify(res));
    }
    await pollTask(server.url, after.task.id, (t) => t.status === 'failed', 'the waiting task failed');
    const want = { scheduled: 0, waiting: 0, queued: 0, running: 0, succeeded: 20, failed: 1, cancelled: 3, timed_out: 0 };
    await pollUntil(async () => {
      const c = await counters(page);
      return JSON.stringify(c) === JSON.stringify(want) || c;
    }, `counters ${JSON.stringify(want)}`);
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});
