// Measures what queued tasks cost a server and how long a restart takes to
// recover them (BENCHMARKS.md, "Costs as the work grows"):
//
//   node tests/js/costs/queued.mjs target/release/taskwire [N...] [--memory] [--scheduled]
//
// With --scheduled every task is submitted with `delay_ms` one hour, so it
// stays `scheduled` (a timer each) instead of queued.
// For each N (default 10000 100000 1000000): starts `taskwire serve` with no
// workers (so every task stays queued), submits N echo tasks in `tasks`
// batches, reads the server's RSS before and after, then (durable store)
// kills it with SIGKILL and starts it again on the same data directory,
// timing the start until its listening line and reading its RSS once it
// answers. One JSON line per N. Not part of the test suite.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';

const args = process.argv.slice(2);
const bin = path.resolve(args.find((a) => !/^\d+$/.test(a) && !a.startsWith('--')) ?? 'target/release/taskwire');
const memory = args.includes('--memory');
const scheduled = args.includes('--scheduled');
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
const BATCH = 1000;
const WINDOW = 8;

function rssKib(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

function start(extra) {
  const began = process.hrtime.bigint();
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--workers', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, TASKWIRE_LOG: 'off', TASKWIRE_SITE_ROOT: '/nonexistent' },
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const ms = Number(process.hrtime.bigint() - began) / 1e6;
      lines.on('line', () => {});
      resolve({ child, url: line.replace('taskwire listening on ', ''), ms });
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

async function stats(url) {
  const socket = io(url, { transports: ['websocket'], forceNew: true });
  await new Promise((r) => socket.once('connect', r));
  const ack = await socket.timeout(30_000).emitWithAck('dashboard', {});
  socket.close();
  return ack.stats;
}

async function submit(url, n) {
  const socket = io(url, { transports: ['websocket'], forceNew: true });
  await new Promise((r) => socket.once('connect', r));
  let sent = 0;
  let refused = 0;
  const one = async () => {
    while (sent < n) {
      const count = Math.min(BATCH, n - sent);
      const tasks = Array.from({ length: count }, (_, i) => ({
        kind: 'echo',
        input: { seq: sent + i, text: 'hello' },
        ...(scheduled ? { delay_ms: 3_600_000 } : {}),
      }));
      sent += count;
      const ack = await socket.timeout(120_000).emitWithAck('tasks', { tasks });
      if (!ack.ok) refused += count;
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, one));
  socket.close();
  return refused;
}

async function measure(n) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-costs-'));
  const store = memory ? ['--memory'] : ['--data-dir', dir];
  const limits = ['--queue-capacity', String(n), '--max-unfinished-per-socket', String(n)];
  const first = await start([...store, ...limits]);
  const before = rssKib(first.child.pid);
  const began = Date.now();
  const refused = await submit(first.url, n);
  const submitS = (Date.now() - began) / 1000;
  const counts = await stats(first.url);
  const queued = scheduled ? counts.scheduled : counts.queued;
  const after = rssKib(first.child.pid);
  const out = {
    n, store: memory ? 'memory' : 'durable', state: scheduled ? 'scheduled' : 'queued',
    refused, held: queued, submit_s: submitS,
    rss_mb_before: +(before / 1024).toFixed(1), rss_mb_after: +(after / 1024).toFixed(1),
    bytes_per_queued_task: Math.round(((after - before) * 1024) / n),
  };
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  if (!memory) {
    const again = await start([...store, ...limits]);
    const s = await stats(again.url);
    out.recovery_ms = Math.round(again.ms);
    out.recovered = scheduled ? s.scheduled : s.queued;
    out.rss_mb_after_recovery = +(rssKib(again.child.pid) / 1024).toFixed(1);
    again.child.kill('SIGKILL');
    await new Promise((r) => again.child.once('exit', r));
  }
  rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify(out));
}

for (const n of sizes.length ? sizes : [10_000, 100_000, 1_000_000]) await measure(n);
