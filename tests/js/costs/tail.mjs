// Where the tail of result latency at 1 in flight comes from (BENCHMARKS.md,
// "At 1 in flight: the generator's own pauses"):
//
//   node tests/js/costs/tail.mjs N URL [URL...]
//
// For each URL (a server already running, any that speaks PROTOCOL.md), a
// fresh Node process submits N echo tasks one at a time and times each from
// its `task` emit to both its ack and its `result`. Every process starts the
// same way and runs the same code, so pauses of its own (garbage
// collection, code being compiled) fall on about the same task numbers
// whatever the server. Prints one JSON line per URL: p50 / p90 / p99 / max
// in ms and the numbers of its slowest 1 % of tasks; then one line per
// pair of runs: how many of the first's slowest tasks are within 2 task
// numbers of one of the second's (by chance alone, about 5 % of them would
// be). A URL given twice is run twice. Not part of the test suite.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const NEAR = 2;

/** Runs `n` tasks at 1 in flight against `url`; resolves with the latencies, by task number. */
async function timeTasks(url, n) {
  const socket = io(url, { transports: ['websocket'] });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const latencies = [];
  for (let seq = 0; seq < n; seq++) {
    const start = process.hrtime.bigint();
    await new Promise((resolve, reject) => {
      let pending = 2;
      const done = () => --pending === 0 && resolve();
      socket.once('result', (task) => {
        if (task.output?.seq !== seq) reject(new Error(`result of task ${seq}: ${JSON.stringify(task)}`));
        done();
      });
      socket.emit('task', { kind: 'echo', input: { seq } }, (ack) => {
        if (!ack.ok) reject(new Error(`task ${seq} refused: ${JSON.stringify(ack)}`));
        done();
      });
    });
    latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  socket.close();
  return latencies;
}

function summary(url, latencies) {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q) => Number(sorted[Math.floor(q * (sorted.length - 1))].toFixed(3));
  const slowCount = Math.max(1, Math.floor(latencies.length / 100));
  const slowest = latencies
    .map((ms, seq) => [ms, seq])
    .sort((a, b) => b[0] - a[0])
    .slice(0, slowCount)
    .map(([, seq]) => seq)
    .sort((a, b) => a - b);
  return { url, tasks: latencies.length, p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99), max_ms: at(1), slowest };
}

/** Runs one URL in a child process of its own, so each starts from the same state. */
function runChild(n, url) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--one', String(n), url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${url}: exit ${code}`))));
  });
}

const args = process.argv.slice(2);
if (args[0] === '--one') {
  const [, n, url] = args;
  process.stdout.write(JSON.stringify(summary(url, await timeTasks(url, Number(n)))));
  process.exit(0);
}
const [n, ...urls] = args;
if (!/^\d+$/.test(n ?? '') || urls.length === 0) {
  console.error('usage: node tests/js/costs/tail.mjs N URL [URL...]');
  process.exit(2);
}
const runs = [];
for (const [i, url] of urls.entries()) {
  const run = { run: i + 1, ...(await runChild(Number(n), url)) };
  runs.push(run);
  console.log(JSON.stringify(run));
}
for (const a of runs) {
  for (const b of runs) {
    if (a === b) continue;
    const shared = a.slowest.filter((s) => b.slowest.some((t) => Math.abs(s - t) <= NEAR)).length;
    console.log(JSON.stringify({ slowest_of_run: a.run, near_slowest_of_run: b.run, shared, of: a.slowest.length }));
  }
}
