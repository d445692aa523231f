// Reproduces the store and dispatch findings of the hardening review against
// a given binary (a release build, normally) and prints one line each:
//
//   node tests/js/attacks/store.mjs target/release/taskwire [disk|deleted|hol|memory]...
//
// Needs root for the tmpfs of the full-disk case. Not part of the test suite
// (the regression tests are in server/tests/api); this measures before/after.

import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';

const bin = path.resolve(process.argv[2] ?? 'target/release/taskwire');
const only = process.argv.slice(3);

function start(args) {
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, TASKWIRE_LOG: 'off', TASKWIRE_SITE_ROOT: '/nonexistent' },
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const url = line.replace('taskwire listening on ', '');
      lines.on('line', () => {});
      resolve({ child, url });
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

async function connect(url, ns = '', opts = {}) {
  const socket = io(url + ns, { transports: ['websocket'], forceNew: true, ...opts });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

const ask = (s, ev, payload) => s.timeout(20_000).emitWithAck(ev, payload).catch((e) => ({ ok: false, error: { code: 'timeout', message: String(e) } }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssMiB = (pid) => {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return Math.round(Number(m[1]) / 1024);
};
async function kill(server) {
  const exited = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGKILL');
  await exited;
}
async function health(url) {
  const res = await fetch(url + '/healthz');
  return res.status;
}

async function stillThere(url, ids) {
  const s = await connect(url);
  let missing = 0;
  for (const id of ids) {
    const ack = await ask(s, 'subscribe', { task_id: id });
    if (!ack.ok) missing++;
  }
  s.close();
  return missing;
}

async function disk() {
  const mnt = mkdtempSync(path.join(tmpdir(), 'tw-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  try {
    const args = ['--data-dir', path.join(mnt, 'data'), '--workers', '1'];
    let server = await start(args);
    const s = await connect(server.url);
    let results = 0;
    s.on('result', () => results++);
    const pad = 'x'.repeat(4096);
    const acked = [];
    let refused = 0;
    for (let i = 0; i < 400; i++) {
      const ack = await ask(s, 'task', { kind: 'sleep', input: { ms: 1, pad } });
      if (ack.ok) acked.push(ack.task.id);
      else refused++;
    }
    const healthFull = await health(server.url);
    await sleep(500);
    s.close();
    await kill(server);
    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    server = await start(args);
    const missing = await stillThere(server.url, acked);
    await kill(server);
    console.log(`disk full (1 MB tmpfs, 400 tasks): ${acked.length} acked ok, ${refused} refused, ${results} results pushed, /healthz ${healthFull} while full; after a restart ${missing} of the ${acked.length} acked are not_found`);
  } finally {
    execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
}

async function deleted() {
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-del-'));
  const args = ['--data-dir', dir, '--workers', '1'];
  let server = await start(args);
  const s = await connect(server.url);
  rmSync(path.join(dir, 'tasks.sqlite3'));
  await sleep(1000);
  const acked = [];
  for (let i = 0; i < 50; i++) {
    const ack = await ask(s, 'task', { kind: 'echo', input: i });
    if (ack.ok) acked.push(ack.task.id);
  }
  const h = await health(server.url);
  s.close();
  await kill(server);
  server = await start(args);
  const missing = await stillThere(server.url, acked);
  await kill(server);
  rmSync(dir, { recursive: true, force: true });
  console.log(`database file deleted while running: ${acked.length} of 50 acked ok, /healthz ${h}; after a restart ${missing} of them are not_found`);
}

async function hol() {
  const server = await start(['--memory', '--workers', '1']);
  const worker = await connect(server.url, '/worker', {
    auth: { name: 'busy', kinds: ['report.remote'], concurrency: 1 },
  });
  await sleep(300);
  const s = await connect(server.url);
  await ask(s, 'task', { kind: 'report.remote', input: 1, priority: 9 });
  await ask(s, 'task', { kind: 'report.remote', input: 2, priority: 9 });
  const t0 = Date.now();
  const ack = await ask(s, 'task', { kind: 'primes', input: { limit: 1000 } });
  const done = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 10_000);
    s.on('result', (t) => {
      if (t.id === ack.task?.id) {
        clearTimeout(timer);
        resolve(t);
      }
    });
  });
  console.log(`head-of-line (a remote-only task queued first, local worker idle): primes ${done ? `finished in ${Date.now() - t0} ms` : 'still queued after 10 s'}`);
  worker.close();
  s.close();
  await kill(server);
}

async function memory(mode) {
  const server = await start([...(mode === 'memory' ? ['--memory'] : []), '--workers', '1']);
  const s = await connect(server.url);
  const before = rssMiB(server.child.pid);
  const big = new Array(450_000).fill(7);
  for (let i = 0; i < 20; i++) {
    const ack = await ask(s, 'task', { kind: 'echo', input: { i, big } });
    await new Promise((resolve) => s.once('result', resolve));
    if (!ack.ok) throw new Error(JSON.stringify(ack.error));
  }
  await sleep(500);
  const after = rssMiB(server.child.pid);
  s.close();
  await kill(server);
  console.log(`memory, 20 echo tasks of 0.9 MB (${mode}): RSS ${before} MB -> ${after} MB`);
}

const cases = { disk, deleted, hol, memory: () => memory('durable'), 'memory-mode': () => memory('memory') };
for (const [name, run] of Object.entries(cases)) {
  if (only.length && !only.includes(name)) continue;
  try {
    await run();
  } catch (e) {
    console.log(`${name}: ${e.message}`);
  }
}
process.exit(0);
