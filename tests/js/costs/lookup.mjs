// Measures `list` pages at scale (BENCHMARKS.md, "Looking up tasks at 10⁶"):
//
//   node tests/js/costs/lookup.mjs target/release/taskwire [N] [--store memory|durable|cluster]
//
// Starts `taskwire serve --workers 0` on the store asked for (cluster: one
// node on a fresh PostgreSQL database and Redis prefix, which must be
// running), fills it with N tasks (default 10⁶) in `tasks` batches of 1000:
// 90 % queued `echo` (one in nine of them with a key `bench:<i>`, four with
// `rare:<i>` among the oldest), 9 % `sleep` scheduled an hour later, 1 %
// `fail` that ends `failed` at once (`after` a cancelled task). Then times
// `GET /tasks?...` pages of 50 for each filter: the newest page and a page
// from the middle (`before` = N/2). Prints one JSON line per query (median
// and p95 of 21 requests after 3 warm-ups, ms, client-side: HTTP and JSON
// included) and one for the fill. In a cluster the table is analyzed after
// the fill, as autovacuum would (`--no-analyze`: not). Not part of the test
// suite.

import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { startCluster } from '@taskwire/test-support/cluster';

const args = process.argv.slice(2);
const bin = path.resolve(args.find((a) => a.includes('/')) ?? 'target/release/taskwire');
const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 1_000_000);
const store = args.includes('--store') ? args[args.indexOf('--store') + 1] : 'memory';
const BATCH = 1000;
const WINDOW = 8;
const RUNS = 21;

function rssKib(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

function start(extra) {
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--workers', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, TASKWIRE_LOG: 'off', TASKWIRE_SITE_ROOT: '/nonexistent' },
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      lines.on('line', () => {});
      resolve({ url: line.replace('taskwire listening on ', ''), pid: child.pid, stop: async () => {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      } });
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

async function server() {
  const limits = ['--queue-capacity', String(2 * n), '--max-unfinished-per-socket', String(2 * n),
    '--retain-finished', String(2 * n)];
  if (store === 'cluster') {
    const cluster = await startCluster([['--workers', '0', ...limits]], { env: { TASKWIRE_LOG: 'off', TASKWIRE_SITE_ROOT: '/nonexistent' }, bin, waitMs: 60_000 });
    const node = cluster.nodes[0];
    // After the bulk fill, the statistics autovacuum would gather.
    const analyze = () => execFileSync('psql', [cluster.database.url, '-X', '-q', '-c', 'ANALYZE tasks']);
    return { url: node.url, pid: node.proc.pid, analyze, stop: () => cluster.stop() };
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-lookup-'));
  const s = await start([...(store === 'memory' ? ['--memory'] : ['--data-dir', dir]), ...limits]);
  return { ...s, stop: async () => { await s.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

function spec(j, dep) {
  if (j % 100 === 0) return { kind: 'fail', input: { message: 'dep' }, after: [dep] };
  if (j % 100 < 10) return { kind: 'sleep', input: { ms: 1 }, delay_ms: 3_600_000 };
  if (j > 0 && j <= 50 && j % 10 === 5) return { kind: 'echo', input: { seq: j }, key: `rare:${j}` };
  if (j % 10 === 5) return { kind: 'echo', input: { seq: j }, key: `bench:${j}` };
  return { kind: 'echo', input: { seq: j, text: 'hello' } };
}

async function fill(url) {
  const socket = io(url, { transports: ['websocket'], forceNew: true });
  await new Promise((r) => socket.once('connect', r));
  const first = await socket.timeout(30_000).emitWithAck('task', { kind: 'sleep', input: { ms: 1 }, delay_ms: 3_600_000 });
  await socket.timeout(30_000).emitWithAck('cancel', { task_id: first.task.id });
  let sent = 1;
  let refused = 0;
  const one = async () => {
    while (sent < n) {
      const count = Math.min(BATCH, n - sent);
      const from = sent;
      sent += count;
      const tasks = Array.from({ length: count }, (_, i) => spec(from + i, first.task.id));
      const ack = await socket.timeout(300_000).emitWithAck('tasks', { tasks });
      if (!ack.ok) {
        refused += count;
        if (refused === count) console.error(JSON.stringify(ack.error));
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, one));
  socket.close();
  return refused;
}

async function time(url, query) {
  const qs = new URLSearchParams({ limit: '50', ...query }).toString();
  const times = [];
  let count = 0;
  for (let i = 0; i < RUNS + 3; i++) {
    const began = process.hrtime.bigint();
    const r = await fetch(`${url}/tasks?${qs}`);
    const body = await r.json();
    const ms = Number(process.hrtime.bigint() - began) / 1e6;
    if (r.status !== 200) throw new Error(`${qs}: ${r.status} ${JSON.stringify(body)}`);
    count = body.tasks.length;
    if (i >= 3) times.push(ms);
  }
  times.sort((a, b) => a - b);
  return { med: +times[RUNS >> 1].toFixed(2), p95: +times[Math.floor(RUNS * 0.95)].toFixed(2), count };
}

const QUERIES = [
  ['(none)', {}],
  ['status=queued', { status: 'queued' }],
  ['status=scheduled', { status: 'scheduled' }],
  ['status=failed', { status: 'failed' }],
  ['status=running (none)', { status: 'running' }],
  ['kind=echo', { kind: 'echo' }],
  ['kind=fail', { kind: 'fail' }],
  ['kind=echo&status=queued', { kind: 'echo', status: 'queued' }],
  ['kind=fail&status=failed', { kind: 'fail', status: 'failed' }],
  ['key=bench:500015', { key: 'bench:500015' }],
  ['key=bench:5*', { key: 'bench:5*' }],
  ['key=bench:*', { key: 'bench:*' }],
  ['key=rare:* (4, oldest)', { key: 'rare:*' }],
  ['status=queued&key=bench:*', { status: 'queued', key: 'bench:*' }],
];

const s = await server();
try {
  const before = rssKib(s.pid);
  const began = Date.now();
  const refused = await fill(s.url);
  const after = rssKib(s.pid);
  if (s.analyze && !args.includes('--no-analyze')) s.analyze();
  console.log(JSON.stringify({ store, n, refused, fill_s: (Date.now() - began) / 1000,
    rss_mb_before: +(before / 1024).toFixed(1), rss_mb_after: +(after / 1024).toFixed(1) }));
  for (const [name, query] of QUERIES) {
    const newest = await time(s.url, query);
    const middle = await time(s.url, { ...query, before: String(n >> 1) });
    console.log(JSON.stringify({ store, query: name, newest, middle }));
  }
} finally {
  await s.stop();
}
