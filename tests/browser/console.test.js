// The console (`/`) end to end: one in-memory server, one browser page,
// every task submitted through the page's own form and followed live.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, PageErrors, openLive, newRowAfter, waitRow, rowIds,
  filterCount, getTask, pollUntil, pretty, WAIT_MS, SUITE_MS,
} from './helpers.js';

describe('console', { timeout: SUITE_MS }, () => {
  let server;
  let browser;
  let page;
  const errors = new PageErrors();
  // What this page submitted, to check the filters at the end.
  const submitted = { succeeded: 0, cancelled: 0 };

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = errors.watch(browser.context.pages()[0] ?? await browser.context.newPage());
    await openLive(page, server.url, '/');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows the live connection and the server\'s kinds', async () => {
    assert.equal(await page.textContent('#conn'), 'Live');
    const kinds = await page.$$eval('select#kind option', (os) => os.map((o) => o.value));
    assert.deepEqual(kinds, ['echo', 'fail', 'primes', 'sha256', 'sleep']);
    assert.equal(await page.inputValue('#kind'), 'echo');
    assert.equal(await page.locator('li.task').count(), 0);
  });

  it('runs an echo submitted through the form', async () => {
    const input = { hello: 'browser', n: [1, 2, 3] };
    await page.fill('textarea#input', JSON.stringify(input));
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    const li = await waitRow(page, id, 'succeeded');
    submitted.succeeded += 1;
    assert.equal(await li.locator('pre.output').textContent(), pretty(input));
    assert.equal(await li.locator('.kind').textContent(), 'echo');
    assert.equal(await li.locator('.badge').textContent(), 'succeeded');
    assert.equal(await li.locator('a.task-link').getAttribute('href'), `/tasks/${id}`);
    assert.match(await li.locator('p.times').textContent(), /^queued .* · ran .*local-\d/);
    assert.equal(await li.locator('button.cancel').count(), 0, 'a finished task has no cancel button');
    assert.equal(await li.locator('pre.error').count(), 0);
    // The server agrees.
    const task = await getTask(server.url, id);
    assert.equal(task.status, 'succeeded');
    assert.deepEqual(task.output, input);
  });

  it('shows a running primes task\'s progress before its result', async () => {
    await page.selectOption('#kind', 'primes');
    // π(10^9); about 1.5 s in the debug build, so there is progress to see.
    await page.fill('#field-limit', '1000000000');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    // A determinate progress bar exists only while the row is running, so
    // seeing it proves the progress came before the result.
    const seen = await (await page.waitForFunction((id) => {
      const li = document.querySelector(`li.task[data-task-id="${id}"]`);
      const bar = li?.dataset.status === 'running' && li.querySelector('.progress progress[value]');
      return bar ? {
        value: Number(bar.getAttribute('value')),
        max: Number(bar.getAttribute('max')),
        text: li.querySelector('.progress .progress-text')?.textContent,
      } : null;
    }, id, { timeout: 60_000 })).jsonValue();
    assert.ok(seen.max > 0 && seen.value >= 0 && seen.value <= seen.max, JSON.stringify(seen));
    // "NN%" (or "NN% · message"), rounded from value/max.
    const pct = Number(/^(\d+)%/.exec(seen.text)?.[1]);
    assert.ok(Math.abs(pct - (seen.value * 100) / seen.max) <= 0.5, JSON.stringify(seen));
    const li = await waitRow(page, id, 'succeeded', 60_000);
    submitted.succeeded += 1;
    assert.equal(await li.locator('pre.output').textContent(), pretty({ count: 50847534 }));
    assert.equal(await li.locator('.progress').count(), 0, 'no progress bar once finished');
  });

  it('cancels a running sleep with its cancel button', async () => {
    await page.selectOption('#kind', 'sleep');
    await page.fill('#field-ms', '60000');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    const running = await waitRow(page, id, 'running');
    // An indeterminate bar (sleep reports no progress) and the worker.
    assert.equal(await running.locator('.progress progress').count(), 1);
    assert.match(await running.locator('p.times').textContent(), /local-\d/);
    await running.locator('button.cancel').click();
    const li = await waitRow(page, id, 'cancelled');
    submitted.cancelled += 1;
    assert.match(await li.locator('pre.error').textContent(), /^cancelled: /);
    assert.equal(await li.locator('button.cancel').count(), 0);
    assert.equal(await li.locator('pre.output').count(), 0);
    assert.equal((await getTask(server.url, id)).status, 'cancelled');
  });

  it('puts the server\'s refusal next to the field it is about', async () => {
    await page.selectOption('#kind', 'sha256');
    await page.fill('#field-data', 'abc');
    // 0 parses as an integer, so the page sends it: the refusal is the
    // server's ack (its message starts with the kind, the page's would not).
    await page.fill('#field-rounds', '0');
    const before = await rowIds(page);
    await page.click('#submit-button');
    await page.waitForFunction(() => document.querySelector('#error-rounds')?.textContent !== '',
      null, { timeout: WAIT_MS });
    assert.equal(await page.textContent('#error-rounds'), 'sha256: rounds must be an integer 1..=10000000');
    assert.equal(await page.getAttribute('#field-rounds', 'aria-invalid'), 'true');
    assert.equal(await page.textContent('#error-data'), '');
    assert.equal(await page.textContent('#error-form'), '');
    assert.equal(await page.isEnabled('#submit-button'), true);
    assert.deepEqual(await rowIds(page), before, 'a refused task adds no row');

    // Fixed, it goes through and the error is gone.
    await page.fill('#field-rounds', '2');
    const id = await newRowAfter(page, () => page.click('#submit-button'));
    const li = await waitRow(page, id, 'succeeded');
    submitted.succeeded += 1;
    // sha256(sha256("abc")), as lowercase hex.
    assert.equal(await li.locator('pre.output').textContent(),
      pretty({ hex: '4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358' }));
    assert.equal(await page.textContent('#error-rounds'), '');
  });

  it('shows a refusal of raw JSON input while the raw editor is open', async () => {
    // In the raw JSON editor the per-kind fields (and their error slots) are
    // gone, so a refusal about `rounds` must still be shown somewhere.
    await page.selectOption('#kind', 'sha256');
    await page.check('#raw');
    await page.fill('textarea#input', '{"data": "abc", "rounds": 0}');
    const before = await rowIds(page);
    await page.click('#submit-button');
    const shown = await pollUntil(async () => {
      const texts = await page.$$eval('p.field-error', (ps) => ps.map((p) => p.textContent).filter(Boolean));
      return texts.length > 0 && texts;
    }, 'a visible error message for the refused raw input', 5_000).catch((e) => e);
    await page.uncheck('#raw');
    assert.deepEqual(await rowIds(page), before, 'a refused task adds no row');
    assert.ok(Array.isArray(shown),
      'the refusal (sha256: rounds must be an integer 1..=10000000) is not shown while the raw editor is open: '
      + `no p.field-error has text (${shown.message})`);
    assert.ok(shown.some((t) => t.includes('rounds must be an integer 1..=10000000')), JSON.stringify(shown));
  });

  it('submits from the keyboard: kind chosen on the focused select, Enter in a field', async () => {
    await page.focus('#kind');
    // Typing on a focused, closed select picks the option that starts so.
    await page.keyboard.type('sl');
    assert.equal(await page.inputValue('#kind'), 'sleep');
    await page.waitForSelector('#field-ms', { timeout: WAIT_MS });
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'field-ms');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('50');
    const id = await newRowAfter(page, () => page.keyboard.press('Enter'));
    const li = await waitRow(page, id, 'succeeded');
    submitted.succeeded += 1;
    assert.equal(await li.locator('pre.output').textContent(), pretty({ slept_ms: 50 }));
  });

  it('submits the raw JSON editor with Ctrl+Enter (Enter alone is a new line)', async () => {
    await page.selectOption('#kind', 'echo');
    await page.focus('#input');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('{"keys":');
    await page.keyboard.press('Enter');
    await page.keyboard.type('"ctrl+enter"}');
    assert.equal(await page.inputValue('#input'), '{"keys":\n"ctrl+enter"}');
    const id = await newRowAfter(page, () => page.keyboard.press('Control+Enter'));
    const li = await waitRow(page, id, 'succeeded');
    submitted.succeeded += 1;
    assert.equal(await li.locator('pre.output').textContent(), pretty({ keys: 'ctrl+enter' }));
  });

  it('filters the list, with the right counts', async () => {
    // What the server says of every task the page lists.
    const ids = await rowIds(page);
    const expect = { all: ids.length, active: 0, succeeded: 0, failed: 0, cancelled: 0, timed_out: 0 };
    for (const id of ids) {
      const { status } = await getTask(server.url, id);
      if (status === 'queued' || status === 'running') expect.active += 1;
      else expect[status] += 1;
    }
    assert.deepEqual(expect, {
      all: submitted.succeeded + submitted.cancelled, active: 0, succeeded: submitted.succeeded,
      failed: 0, cancelled: submitted.cancelled, timed_out: 0,
    }, 'the tasks this page submitted');
    const total = expect.all;
    // Counts re-render on the next tick after a change: poll.
    await pollUntil(async () => {
      const got = {};
      for (const f of Object.keys(expect)) got[f] = await filterCount(page, f);
      return JSON.stringify(got) === JSON.stringify(expect) || got;
    }, `filter counts ${JSON.stringify(expect)}`);
    assert.equal(await page.locator('li.task').count(), total);
    assert.equal(await page.getAttribute('button.filter[data-filter="all"]', 'aria-pressed'), 'true');

    for (const [filter, status] of [['cancelled', 'cancelled'], ['succeeded', 'succeeded']]) {
      await page.click(`button.filter[data-filter="${filter}"]`);
      assert.equal(await page.getAttribute(`button.filter[data-filter="${filter}"]`, 'aria-pressed'), 'true');
      assert.equal(await page.getAttribute('button.filter[data-filter="all"]', 'aria-pressed'), 'false');
      await pollUntil(async () => (await page.locator('li.task').count()) === expect[filter],
        `${expect[filter]} rows under ${filter}`);
      const statuses = await page.$$eval('li.task', (lis) => lis.map((li) => li.dataset.status));
      assert.ok(statuses.every((s) => s === status), JSON.stringify(statuses));
    }
    await page.click('button.filter[data-filter="failed"]');
    await pollUntil(async () => (await page.locator('li.task').count()) === 0, 'no rows under failed');
    assert.equal(await page.locator('p.empty').count(), 1);
    await page.click('button.filter[data-filter="all"]');
    await pollUntil(async () => (await page.locator('li.task').count()) === total, `${total} rows under all`);
  });

  it('logged no errors', () => {
    errors.assertNone();
  });
});
