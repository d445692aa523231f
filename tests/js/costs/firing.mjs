// Measures how close to their time scheduled tasks fire (BENCHMARKS.md,
// "Scheduled tasks"):
//
//   node tests/js/costs/firing.mjs target/release/taskwire [N] [--memory] [--span-s S]
//
// Starts `taskwire serve` (durable store in a fresh directory unless
// --memory), submits N echo tasks (default 100000) in `tasks` batches, each
// with a `run_at` spread evenly over S seconds (default 30) starting once
// every task is submitted, and records when each task's `status` `queued`
// push reaches the submitting socket. Lateness = that moment - run_at (same
// machine, same clock). Prints one JSON line: lateness percentiles in ms,
// how many fired early (must be 0), and every result's check. Not part of
// the test suite.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const bin = path.resolve(args.find((a) => a.includes('/')) ?? 'target/release/taskwire');
const n = Number(args.find((a) => /^\d+$/.test(a) && args[args.indexOf(a) - 1] !== '--span-s') ?? 100_000);
const spanMs = flag('--span-s', 30) * 1000;
const memory = args.includes('--memory');
const SOCKETS = 8;
const BATCH = 1000;
// Time to submit everything before the first run_at: generous, so no task
// is due before it is even acked.
const LEAD_MS = Math.max(5000, n / 10);

function start(extra) {
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--workers', '2', ...extra], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, TASKWIRE_LOG: 'off', TASKWIRE_SITE_ROOT: '/nonexistent' },
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      lines.on('line', () => {});
      resolve({ child, url: line.replace('taskwire listening on ', '') });
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const dir = mkdtempSync(path.join(tmpdir(), 'tw-firing-'));
const store = memory ? ['--memory'] : ['--data-dir', dir];
const limits = ['--queue-capacity', String(n), '--max-unfinished-per-socket', String(n)];
const server = await start([...store, ...limits]);
const first = Date.now() + LEAD_MS;
const runAt = new Map(); // id -> ms
const lateness = [];
let wrong = 0;
let results = 0;
let done;
const finished = new Promise((r) => { done = r; });

const sockets = await Promise.all(Array.from({ length: SOCKETS }, async () => {
  const socket = io(server.url, { transports: ['websocket'], forceNew: true });
  await new Promise((r) => socket.once('connect', r));
  socket.on('status', (ev) => {
    if (ev.status !== 'queued') return;
    const at = runAt.get(ev.task_id);
    if (at !== undefined) lateness.push(Date.now() - at);
  });
  socket.on('result', (task) => {
    if (task.status !== 'succeeded' || task.output?.seq !== task.input?.seq) wrong++;
    if (++results === n) done();
  });
  return socket;
}));

let next = 0;
await Promise.all(sockets.map(async (socket) => {
  while (next < n) {
    const from = next;
    const count = Math.min(BATCH, n - from);
    next += count;
    const tasks = Array.from({ length: count }, (_, k) => {
      const i = from + k;
      const at = new Date(first + Math.floor((i * spanMs) / n)).toISOString();
      return { kind: 'echo', input: { seq: i }, run_at: at };
    });
    const ack = await socket.timeout(120_000).emitWithAck('tasks', { tasks });
    if (!ack.ok) throw new Error(`refused: ${JSON.stringify(ack.error)}`);
    for (const t of ack.tasks) {
      if (t.status !== 'scheduled') throw new Error(`acked ${t.status}, not scheduled`);
      runAt.set(t.id, Date.parse(t.run_at));
    }
  }
}));
const submittedBy = Date.now() - first;
await Promise.race([
  finished,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${results} of ${n} results`)),
    LEAD_MS + spanMs + 60_000)),
]);
for (const s of sockets) s.close();
server.child.kill('SIGKILL');
rmSync(dir, { recursive: true, force: true });

lateness.sort((a, b) => a - b);
console.log(JSON.stringify({
  n, store: memory ? 'memory' : 'durable', span_s: spanMs / 1000,
  submitted_ms_before_first_due: -submittedBy,
  fired: lateness.length, early: lateness.filter((l) => l < 0).length, wrong_results: wrong,
  lateness_ms: {
    p50: percentile(lateness, 50), p90: percentile(lateness, 90), p99: percentile(lateness, 99),
    max: lateness.at(-1),
  },
}));
