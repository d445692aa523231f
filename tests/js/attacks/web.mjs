// Reproduces the web, remote worker, connection and log findings of the
// hardening review against a given binary (a release build, normally) and
// prints one line per attack with what it measured:
//
//   node tests/js/attacks/web.mjs target/release/taskwire [name...]
//
// Names: origin, text-plain, post-origin, rogue-echo, progress-flood,
// many-kinds, markup-kind, slowloris, idle-flood, idle-churn, slow-reader,
// slow-reader-burst, expect-100, unknown-event, log-forge, log-colour,
// log-token, rw-burst.
// RUNS=n repeats the quick ones n times (default 3); BURST_RUNS=n the
// remote worker burst (default 6); CHURN=n the new idle connections a
// second of idle-churn (default 1000). Talks to 127.0.0.1 only, every wait is
// bounded, and every process it starts is killed. Not part of the test
// suite (the regression tests are in server/tests/api); this measures
// before/after.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { io } from 'socket.io-client';

const bin = path.resolve(process.argv[2] ?? 'target/release/taskwire');
const only = process.argv.slice(3);
const RUNS = Number(process.env.RUNS ?? 3);
const BURST_RUNS = Number(process.env.BURST_RUNS ?? 6);
const EVIL = 'http://evil.example';
const WAIT_MS = 20_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or `fallback` once `ms` have passed. */
function within(promise, ms, fallback) {
  let timer;
  const late = new Promise((r) => { timer = setTimeout(() => r(fallback), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// --- the server --------------------------------------------------------

/**
 * Starts `BIN serve --addr 127.0.0.1:0 ARGS`. `env` is added to (or, with
 * `undefined` values, removed from) a quiet environment; with `nofile`
 * the server runs under `ulimit -n nofile` (soft and hard).
 */
function start(args, { env = {}, nofile } = {}) {
  const full = { ...process.env, TASKWIRE_LOG: 'off', TASKWIRE_SITE_ROOT: '/nonexistent', ...env };
  delete full.RUST_LOG;
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k]; else full[k] = v;
  const serve = [bin, 'serve', '--addr', '127.0.0.1:0', ...args];
  const child = nofile
    ? spawn('/bin/sh', ['-c', `ulimit -n ${nofile} && exec "$@"`, 'sh', ...serve], { stdio: ['ignore', 'pipe', 'pipe'], env: full })
    : spawn(serve[0], serve.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: full });
  // Both pipes drained all along: a full pipe would block the server.
  const err = [];
  child.stderr.on('data', (d) => err.push(d));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const url = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^taskwire listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m) resolve(m[1]);
    });
    exited.then(({ code }) => reject(new Error(`server exited ${code}: ${Buffer.concat(err).toString().slice(-500)}`)));
  });
  return within(url, WAIT_MS, null).then((u) => {
    if (!u) {
      child.kill('SIGKILL');
      throw new Error('server did not start');
    }
    return { child, url: u, port: Number(new URL(u).port), exited, stderr: () => Buffer.concat(err).toString('utf8') };
  });
}

/** SIGTERM (so the log is flushed), SIGKILL if it takes over 10 s. */
async function stop(server, signal = 'SIGTERM') {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill(signal);
  if (!(await within(server.exited.then(() => true), 10_000, false))) {
    server.child.kill('SIGKILL');
    await server.exited;
  }
}

function rssMiB(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
    return Math.round(Number(m[1]) / 1024);
  } catch {
    return 0;
  }
}

/** Seconds of CPU (user + system) the process used so far. */
function cpuSecs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// --- Socket.IO ---------------------------------------------------------

/** A connected socket, or the message of its `connect_error`. */
async function connect(url, ns = '', opts = {}) {
  const socket = io(url + ns, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 5000, ...opts });
  const outcome = await within(new Promise((resolve) => {
    socket.once('connect', () => resolve({ ok: true }));
    socket.once('connect_error', (e) => resolve({ ok: false, error: e.message }));
  }), 10_000, { ok: false, error: 'no connect nor connect_error in 10 s' });
  if (!outcome.ok) socket.close();
  return { socket, ...outcome };
}

const ask = (s, ev, payload, ms = WAIT_MS) => s.timeout(ms).emitWithAck(ev, payload)
  .catch((e) => ({ ok: false, error: { code: 'timeout', message: String(e.message ?? e) } }));

/**
 * Records every `result` pushed to `socket` from now on; `wait(ids, ms)`
 * resolves with those of `ids` once all came, or with what came by `ms`.
 * (A result may come before its ack, so it is recorded whatever its id.)
 */
function results(socket) {
  const got = new Map();
  let check = () => {};
  socket.on('result', (t) => { got.set(t.id, t); check(); });
  const pick = (ids) => new Map([...ids].filter((id) => got.has(id)).map((id) => [id, got.get(id)]));
  return {
    wait: (ids, ms) => within(new Promise((resolve) => {
      check = () => { if ([...ids].every((id) => got.has(id))) resolve(); };
      check();
    }), ms).then(() => pick(ids)),
  };
}

async function workerCount(url) {
  const s = await connect(url);
  if (!s.ok) return -1;
  const ack = await ask(s.socket, 'dashboard', {});
  s.socket.close();
  return ack.ok ? ack.stats.workers.length : -1;
}

// --- raw TCP and websockets ----------------------------------------------

/** Sends `text` on a new connection; the response up to the end of its head. */
function rawRequest(port, text, ms = 5000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    let settled = false;
    const done = (how) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ how, text: got, status: got.split('\r\n')[0] });
    };
    const timer = setTimeout(() => done('timeout'), ms);
    sock.on('connect', () => sock.write(text));
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) done('answered');
    });
    sock.on('error', () => done('error'));
    sock.on('close', () => done('closed'));
  });
}

async function healthz(port, ms = 5000) {
  const t0 = Date.now();
  const r = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', ms);
  return r.how === 'answered' ? `${r.status.split(' ')[1]} in ${Date.now() - t0} ms` : `no answer (${r.how} after ${Date.now() - t0} ms)`;
}

/**
 * A minimal Engine.IO websocket over raw TCP, so that reading can be
 * stopped at will (`pause`). Frames from the server of more than 64 KiB are
 * counted and skipped, not kept; pings are answered while it reads.
 */
class RawWs {
  static async open(port, headers = '') {
    const sock = net.connect(port, '127.0.0.1');
    const ws = new RawWs(sock);
    const key = randomBytes(16).toString('base64');
    sock.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`
      + `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n${headers}\r\n`);
    const status = await within(ws.head, 5000, 'no answer to the upgrade');
    return { ws, status };
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.skip = 0;
    this.big = 0;
    this.texts = [];
    this.waiters = [];
    this.closed = false;
    let head = '';
    let upgraded = false;
    this.head = new Promise((resolve) => {
      sock.on('data', (d) => {
        if (upgraded) return this.feed(d);
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgraded = true;
        resolve(head.split('\r\n')[0]);
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length) this.feed(rest);
      });
      sock.on('close', () => { this.closed = true; resolve(head.split('\r\n')[0] || 'closed'); this.wake(); });
      sock.on('error', () => {});
    });
  }

  feed(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length);
        this.skip -= n;
        this.buf = this.buf.subarray(n);
        if (this.skip > 0) return;
      }
      if (this.buf.length < 2) return;
      const opcode = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (len > 65_536) {
        this.big++;
        this.skip = len;
        this.buf = this.buf.subarray(at);
        continue;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (opcode === 1) {
        const text = payload.toString('utf8');
        if (text === '2') this.send('3');
        else this.texts.push(text);
        this.wake();
      }
    }
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next text message that `test` accepts, or null (closed or 5 s). */
  async next(test = () => true, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.texts.findIndex(test);
      if (i >= 0) return this.texts.splice(i, 1)[0];
      if (this.closed || Date.now() >= deadline) return null;
      await within(new Promise((r) => this.waiters.push(r)), deadline - Date.now());
    }
  }

  /** A text frame, masked with a zero key (allowed, and no copy). */
  send(text) {
    const payload = Buffer.from(text, 'utf8');
    const len = payload.length;
    let head;
    if (len < 126) head = Buffer.from([0x81, 0x80 | len, 0, 0, 0, 0]);
    else if (len < 65_536) {
      head = Buffer.alloc(8);
      head[0] = 0x81; head[1] = 0x80 | 126; head.writeUInt16BE(len, 2);
    } else {
      head = Buffer.alloc(14);
      head[0] = 0x81; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(len), 2);
    }
    this.sock.write(head);
    return this.sock.write(payload);
  }

  pause() { this.sock.pause(); }
  resume() { this.sock.resume(); }
  destroy() { this.sock.destroy(); }
}

// --- the attacks ---------------------------------------------------------

const WORKER_AUTH = { name: 'evil', kinds: ['shout'], concurrency: 1 };

async function origin() {
  const server = await start(['--memory', '--workers', '1']);
  const out = [];
  const held = [];
  try {
    const poll = await rawRequest(server.port, `GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nOrigin: ${EVIL}\r\n\r\n`);
    out.push(`polling handshake ${poll.status.split(' ')[1] ?? poll.how}`);
    const { ws, status } = await RawWs.open(server.port, `Origin: ${EVIL}\r\n`);
    ws.destroy();
    out.push(`websocket upgrade ${status.split(' ')[1] ?? status}`);
    for (const transport of ['websocket', 'polling']) {
      for (const ns of ['', '/worker']) {
        const c = await connect(server.url, ns, {
          transports: [transport],
          extraHeaders: { Origin: EVIL },
          auth: ns ? WORKER_AUTH : {},
        });
        out.push(`${transport} ${ns || '/'} ${c.ok ? 'connected' : `refused (${c.error})`}`);
        held.push(c.socket);
      }
    }
    const workers = await workerCount(server.url);
    out.push(`${workers < 0 ? '?' : workers - 1} evil worker(s) registered`);
  } finally {
    for (const s of held) s.close();
    await stop(server, 'SIGKILL');
  }
  return out.join(', ');
}

async function textPlain() {
  const server = await start(['--memory', '--workers', '1']);
  try {
    const res = await fetch(`${server.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ kind: 'echo', input: 'from another site' }),
    });
    const body = await res.json().catch(() => ({}));
    return `POST /tasks as text/plain: ${res.status}, ${body.id ? 'task created' : `no task (${body.error?.code})`}`;
  } finally {
    await stop(server, 'SIGKILL');
  }
}

async function postOrigin() {
  const server = await start(['--memory', '--workers', '1']);
  try {
    const json = await fetch(`${server.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: EVIL },
      body: JSON.stringify({ kind: 'echo', input: 1 }),
    });
    const form = await fetch(`${server.url}/tasks`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: EVIL },
      body: 'kind=echo&input=1',
    });
    const s = await connect(server.url);
    const stats = (await ask(s.socket, 'dashboard', {})).stats;
    s.socket.close();
    const made = stats ? stats.queued + stats.running + stats.succeeded + stats.failed : '?';
    return `Origin ${EVIL}: JSON POST ${json.status}, form POST ${form.status}; ${made} tasks created`;
  } finally {
    await stop(server, 'SIGKILL');
  }
}

async function rogueEcho() {
  // A busy server: its one I/O slot runs a long sleep, so echo tasks wait
  // for any free worker of their kind.
  const server = await start(['--memory', '--workers', '1', '--io-slots', '1']);
  try {
    const w = await connect(server.url, '/worker', { auth: { name: 'rogue', kinds: ['echo'], concurrency: 64 } });
    if (!w.ok) return `worker offering echo refused (${w.error})`;
    const seen = [];
    w.socket.on('job', (task) => {
      seen.push(task.input);
      w.socket.emit('done', { task_id: task.id, output: 'forged' });
    });
    const c = await connect(server.url);
    await ask(c.socket, 'task', { kind: 'sleep', input: { ms: 600_000 } });
    const ids = [];
    const rec = results(c.socket);
    for (let i = 0; i < 50; i++) {
      const ack = await ask(c.socket, 'task', { kind: 'echo', input: { secret: i } });
      if (ack.ok) ids.push(ack.task.id);
    }
    const got = await rec.wait(ids, WAIT_MS);
    const forged = [...got.values()].filter((t) => t.status === 'succeeded' && t.output === 'forged').length;
    w.socket.close();
    c.socket.close();
    return `worker offering echo accepted; with the local I/O slot busy it got ${seen.length} of 50 clients' echo inputs, ${forged} forged outputs came back succeeded`;
  } finally {
    await stop(server, 'SIGKILL');
  }
}

async function progressFlood() {
  const server = await start(['--memory', '--workers', '1']);
  try {
    const w = await connect(server.url, '/worker', { auth: { name: 'chatty', kinds: ['chatty'], concurrency: 1 } });
    if (!w.ok) return `worker refused (${w.error})`;
    let span = 0;
    const acks = { ok: 0, refused: 0 };
    w.socket.on('job', async (task) => {
      const t0 = Date.now();
      const sent = [];
      for (let i = 1; i <= 5000; i++) sent.push(ask(w.socket, 'progress', { task_id: task.id, done: i, total: 5000 }));
      span = Date.now() - t0;
      for (const a of await Promise.all(sent)) acks[a.ok ? 'ok' : 'refused']++;
      w.socket.emit('done', { task_id: task.id, output: 'ok' });
    });
    const c = await connect(server.url);
    let pushes = 0;
    c.socket.on('progress', () => pushes++);
    const rec = results(c.socket);
    const ack = await ask(c.socket, 'task', { kind: 'chatty', input: null });
    const got = await rec.wait([ack.task?.id], WAIT_MS);
    w.socket.close();
    c.socket.close();
    return `5000 progress sent in ${span} ms (${acks.ok} acked ok, ${acks.refused} not), ${pushes} progress pushes reached the client, task ${got.size ? 'finished' : 'not finished in 20 s'}`;
  } finally {
    await stop(server, 'SIGKILL');
  }
}

async function kindsSize(url) {
  const res = await fetch(`${url}/kinds`);
  const text = await res.text();
  let n = '?';
  try { n = JSON.parse(text).length; } catch { /* not JSON */ }
  return `GET /kinds ${n} kinds, ${text.length} bytes`;
}

async function manyKinds() {
  const server = await start(['--memory', '--workers', '1']);
  const held = [];
  try {
    const out = [];
    const kinds = Array.from({ length: 10_002 }, (_, i) => `k${i}`);
    const one = await connect(server.url, '/worker', { auth: { name: 'many', kinds, concurrency: 1 } });
    out.push(`one worker with 10002 kinds ${one.ok ? 'accepted' : `refused (${one.error.slice(0, 90)})`}`);
    out.push(await kindsSize(server.url));
    one.socket.close();
    // The same spread over workers of 64 kinds each, until one is refused.
    let offered = 0;
    for (let w = 0; offered < 10_002; w++) {
      const some = Array.from({ length: Math.min(64, 10_002 - offered) }, (_, i) => `w${w}k${i}`);
      const c = await connect(server.url, '/worker', { auth: { name: `w${w}`, kinds: some, concurrency: 1 } });
      if (!c.ok) break;
      held.push(c.socket);
      offered += some.length;
    }
    out.push(`spread over workers of 64: ${offered} kinds accepted`);
    out.push(await kindsSize(server.url));
    return out.join(', ');
  } finally {
    for (const s of held) s.close();
    await stop(server, 'SIGKILL');
  }
}

async function markupKind() {
  const server = await start(['--memory', '--workers', '1']);
  try {
    const kind = '</title><img src=x onerror=alert(1)>';
    const w = await connect(server.url, '/worker', { auth: { name: 'markup', kinds: [kind], concurrency: 1 } });
    const c = await connect(server.url);
    const ack = await ask(c.socket, 'task', { kind, input: 1 });
    w.socket.close();
    c.socket.close();
    return `worker offering kind ${JSON.stringify(kind)} ${w.ok ? 'accepted' : `refused (${w.error.slice(0, 50)})`}; a task of that kind ${ack.ok ? 'accepted' : ack.error.code}`;
  } finally {
    await stop(server, 'SIGKILL');
  }
}

async function slowloris() {
  const server = await start(['--memory', '--workers', '1']);
  const socks = [];
  try {
    const closedAt = [];
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 200 }, () => new Promise((resolve) => {
      const s = net.connect(server.port, '127.0.0.1');
      const entry = { s, open: true };
      socks.push(entry);
      const gone = () => {
        if (!entry.open) return;
        entry.open = false;
        closedAt.push(Date.now() - t0);
        resolve();
      };
      s.on('connect', () => {
        s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        resolve();
      });
      s.on('error', gone);
      s.on('close', gone);
      s.on('end', gone);
    })));
    // One more header line every 2 s, for as long as the server lets them live.
    let n = 0;
    const trickle = setInterval(() => {
      n++;
      for (const e of socks) if (e.open) e.s.write(`X-Slow-${n}: a\r\n`);
    }, 2000);
    await sleep(15_000 - (Date.now() - t0));
    clearInterval(trickle);
    const open = socks.filter((e) => e.open).length;
    closedAt.sort((a, b) => a - b);
    const when = closedAt.length ? `, closed at ${(closedAt[0] / 1000).toFixed(1)}-${(closedAt.at(-1) / 1000).toFixed(1)} s` : '';
    return `${open} of 200 slowloris connections still open after 15 s${when}; /healthz ${await healthz(server.port)}`;
  } finally {
    for (const e of socks) e.s.destroy();
    await stop(server, 'SIGKILL');
  }
}

/**
 * 5000 idle connections to a server limited to 4096 descriptors, then
 * /healthz probes. With `churn`, the attacker keeps opening `churn` more
 * idle connections a second while it probes (so whatever slots free up, or
 * are kept for late comers, are taken again at once).
 */
async function idleFlood(churn) {
  const server = await start(['--memory', '--workers', '1'], { nofile: 4096 });
  const socks = [];
  const recent = [];
  try {
    let connected = 0;
    let failed = 0;
    const t0 = Date.now();
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 250 }, () => new Promise((resolve) => {
        const s = net.connect(server.port, '127.0.0.1');
        socks.push(s);
        const timer = setTimeout(() => { failed++; resolve(); }, 3000);
        s.once('connect', () => { clearTimeout(timer); connected++; resolve(); });
        s.once('error', () => { clearTimeout(timer); failed++; resolve(); });
        s.on('close', () => {});
      })));
    }
    const opened = Date.now() - t0;
    const cpu0 = cpuSecs(server.child.pid);
    let more = 0;
    // The newest 8000 are kept (the oldest let go), within this process's
    // own descriptor limit when the server closes none of them.
    const churner = churn && setInterval(() => {
      for (let i = 0; i < churn / 10; i++) {
        const s = net.connect(server.port, '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => s.destroy());
        recent.push(s);
        if (recent.length > 8000) recent.shift().destroy();
        more++;
      }
    }, 100);
    const probes = [];
    for (let i = 0; i < (churn ? 10 : 3); i++) {
      probes.push(await healthz(server.port, churn ? 2000 : 5000));
      await sleep(1000);
    }
    if (churner) clearInterval(churner);
    const cpu = (cpuSecs(server.child.pid) - cpu0) / ((Date.now() - t0 - opened) / 1000);
    const stillOpen = socks.filter((s) => !s.destroyed && s.readyState === 'open').length;
    const answered = probes.filter((p) => p.startsWith('200')).length;
    const head = `server nofile 4096, 5000 idle connections (${connected} connected, ${failed} not, in ${(opened / 1000).toFixed(1)} s)`;
    return churn
      ? `${head}, then ${more} more opened at ${churn}/s while probing: /healthz answered ${answered} of ${probes.length} probes (2 s bound each) [${probes.join('; ')}]; server CPU ${(cpu * 100).toFixed(0)} %`
      : `${head}: /healthz ${probes.join('; ')}; server CPU ${(cpu * 100).toFixed(0)} % meanwhile; ${stillOpen} still open client-side`;
  } finally {
    for (const s of socks) s.destroy();
    for (const s of recent) s.destroy();
    await stop(server, 'SIGKILL');
  }
}

/**
 * 400 echo tasks of 500 KB from one raw websocket on a fresh server, one
 * every `gapMs` (with 20 ms few run at once, so memory is about what waits
 * for the client; with 0 they all run at once): 600 MB of acks and results
 * pushed back. With `read` false the client reads nothing once it joined;
 * with `read` true it is the control, a client that reads everything under
 * the same load.
 */
async function pushLoad(read, gapMs) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-slow-'));
  const server = await start(['--data-dir', dir, '--workers', '1', '--retain-finished', '10']);
  let ws;
  let obs;
  try {
    const pid = server.child.pid;
    const before = rssMiB(pid);
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(pid)); }, 100);
    ({ ws } = await RawWs.open(server.port));
    ws.sock.setMaxListeners(0);
    const open = await ws.next((t) => t.startsWith('0'));
    ws.send('40');
    const joined = await ws.next((t) => t.startsWith('40'));
    if (!open || !joined) throw new Error('could not join /');
    if (!read) ws.pause();
    const pad = 'p'.repeat(500_000);
    const t0 = Date.now();
    let sent = 0;
    let cut = false;
    for (let i = 0; i < 400; i++) {
      if (ws.closed || ws.sock.destroyed) { cut = true; break; }
      const more = ws.send(`42${i}${JSON.stringify(['task', { kind: 'echo', input: pad }])}`);
      sent++;
      if (gapMs) await sleep(gapMs);
      if (!more && ws.sock.writableLength > 0) {
        const drained = await within(new Promise((r) => {
          ws.sock.once('drain', () => r(true));
          ws.sock.once('close', () => r(false));
        }), 20_000, false);
        if (!drained) { cut = true; break; }
      }
    }
    const sendMs = Date.now() - t0;
    // Let the server run what it read: nothing queued or running twice in
    // a row (and, for the reader, every task done).
    obs = await connect(server.url);
    let quiet = 0;
    for (let i = 0; i < 150 && quiet < 2; i++) {
      const st = (await ask(obs.socket, 'dashboard', {})).stats;
      quiet = st && st.queued + st.running === 0 && (!read || st.succeeded >= sent) ? quiet + 1 : 0;
      if (quiet < 2) await sleep(200);
    }
    await sleep(1000);
    clearInterval(sampler);
    peak = Math.max(peak, rssMiB(pid));
    const end = rssMiB(pid);
    let closed = null;
    if (!read) {
      ws.resume();
      closed = await within(new Promise((r) => {
        if (ws.closed) r(true);
        ws.sock.once('close', () => r(true));
      }), 20_000, false);
    }
    return { sent, cut, sendMs, before, peak, end, closed, big: ws.big, health: await healthz(server.port) };
  } finally {
    obs?.socket.close();
    ws?.destroy();
    await stop(server, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function slowReader(gapMs) {
  const r = await pushLoad(false, gapMs);
  const c = await pushLoad(true, gapMs);
  return `${r.sent} of 400 × 500 KB echo tasks${gapMs ? `, one every ${gapMs} ms,` : ' at once'} sent in ${(r.sendMs / 1000).toFixed(1)} s${r.cut ? ' (the server cut the connection)' : ''}; `
    + `server RSS ${r.before} MB -> peak ${r.peak} MB, ${r.end} MB after; `
    + `slow socket ${r.closed ? 'closed by the server' : 'still connected 20 s after it resumed reading'}; /healthz ${r.health}; `
    + `control, a client that reads (${c.sent} sent${c.cut ? ', cut' : ''}, ${c.big} large frames read): peak ${c.peak} MB`;
}

async function expect100() {
  const server = await start(['--memory', '--workers', '1']);
  try {
    const r = await rawRequest(server.port, 'POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
      + 'Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n', 3000);
    return `Content-Length 2000000 (limit 1 MiB) with Expect: 100-continue: first answer ${r.status ? JSON.stringify(r.status) : `none (${r.how})`}`;
  } finally {
    await stop(server, 'SIGKILL');
  }
}

async function unknownEvent() {
  const server = await start(['--memory', '--workers', '1']);
  try {
    const out = [];
    for (const [ns, auth, ev] of [['', {}, 'tsak'], ['/worker', WORKER_AUTH, 'dnoe']]) {
      const c = await connect(server.url, ns, { auth });
      const ack = c.ok ? await ask(c.socket, ev, { kind: 'echo' }, 5000) : null;
      c.socket.close();
      const what = !ack ? `connect refused (${c.error})`
        : ack.error?.code === 'timeout' ? 'no ack in 5 s'
          : JSON.stringify(ack);
      out.push(`${ns || '/'} "${ev}": ${what}`);
    }
    return out.join('; ');
  } finally {
    await stop(server, 'SIGKILL');
  }
}

/** Runs a server with `env`, lets `during(url)` act, stops it; its stderr. */
async function logOf(env, args, during) {
  const server = await start(['--memory', '--workers', '1', ...args], { env });
  try {
    await during(server.url);
  } finally {
    await stop(server);
  }
  return server.stderr();
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

async function logForge() {
  const name = 'x\nFORGED-LINE 2026-12-06T00:00:00Z  INFO admin logged in';
  const log = await logOf({ TASKWIRE_LOG: 'info' }, [], async (url) => {
    const w = await connect(url, '/worker', { auth: { name, kinds: ['shout'], concurrency: 1 } });
    await sleep(300);
    w.socket.close();
    await sleep(300);
  });
  const forged = stripAnsi(log).split('\n').filter((l) => l.startsWith('FORGED-LINE')).length;
  const where = stripAnsi(log).split('\n').filter((l) => l.includes('FORGED-LINE')).map((l) => l.trim().slice(0, 90));
  return `worker name with a newline: ${forged} forged log lines (lines starting "FORGED-LINE"); mentions: ${JSON.stringify(where)}`;
}

async function logColour() {
  const log = await logOf({ TASKWIRE_LOG: 'info' }, [], async (url) => {
    await fetch(`${url}/healthz`);
  });
  const escapes = (log.match(/\x1b\[/g) ?? []).length;
  return `stderr a pipe, TASKWIRE_LOG=info: ${escapes} ANSI escape sequences in ${log.split('\n').length - 1} log lines`;
}

async function logToken() {
  const token = `tok-${randomBytes(8).toString('hex')}`;
  const out = [];
  for (const env of [{ RUST_LOG: 'debug', TASKWIRE_LOG: undefined }, { TASKWIRE_LOG: 'debug' }]) {
    const log = await logOf(env, ['--token', token], async (url) => {
      const c = await connect(url, '', { auth: { token } });
      if (c.ok) {
        const rec = results(c.socket);
        const ack = await ask(c.socket, 'task', { kind: 'echo', input: 1 });
        if (ack.ok) await rec.wait([ack.task.id], 5000);
        c.socket.close();
      }
      await sleep(300);
    });
    const setting = Object.entries(env).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ');
    const hits = log.split(token).length - 1;
    const lines = log.split('\n').length - 1;
    const debug = stripAnsi(log).split('\n').filter((l) => /\bDEBUG\b/.test(l)).length;
    out.push(`${setting}: token printed ${hits} times (${lines} log lines, ${debug} DEBUG)`);
  }
  return out.join('; ');
}

async function burstRun() {
  const server = await start(['--memory', '--workers', '0']);
  const rw = spawn(bin, ['remote-worker', '--url', server.url, '--name', 'burst', '--kinds', 'echo,sleep', '--concurrency', '200'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, TASKWIRE_LOG: 'warn', RUST_BACKTRACE: '0' },
  });
  const err = [];
  rw.stderr.on('data', (d) => err.push(d));
  const rwExit = new Promise((r) => rw.once('exit', (code, signal) => r(code ?? signal)));
  let c;
  try {
    let up = false;
    for (let i = 0; i < 50 && !up; i++) {
      up = (await workerCount(server.url)) >= 1;
      if (!up) await sleep(200);
    }
    if (!up) return { outcome: 'no worker', left: 2000, secs: 0 };
    c = await connect(server.url);
    const ids = new Set();
    let finished = 0;
    let allDone;
    const done = new Promise((r) => { allDone = r; });
    // A result that came before its ack (not expected) is counted then.
    const early = new Set();
    const settle = () => { if (finished === 2000) allDone('all done'); };
    c.socket.on('result', (t) => {
      if (ids.delete(t.id)) finished++;
      else early.add(t.id);
      settle();
    });
    const t0 = Date.now();
    for (let b = 0; b < 2; b++) {
      const tasks = Array.from({ length: 1000 }, (_, i) => (i % 2
        ? { kind: 'echo', input: { b, i } }
        : { kind: 'sleep', input: { ms: i % 50 } }));
      const ack = await ask(c.socket, 'tasks', { tasks });
      if (ack.ok) for (const t of ack.tasks) if (early.delete(t.id)) finished++; else ids.add(t.id);
    }
    settle();
    const exited = rwExit.then((code) => `worker exited ${code}`);
    let outcome = await within(Promise.race([done, exited]), 60_000, 'wedged');
    const secs = (Date.now() - t0) / 1000;
    await sleep(200);
    const stderr = Buffer.concat(err).toString();
    const panic = stderr.split('\n').find((l) => l.includes('panicked'));
    const alive = rw.exitCode === null && rw.signalCode === null;
    if (panic) outcome = `panicked, ${outcome === 'all done' ? 'all done anyway' : outcome}${alive ? ', worker still running' : ''}`;
    // The panic's location, without the path of the local source cache.
    const where = (panic ?? '').replace(/\/\S*\/registry\/src\/[^/]+\//, '');
    return { outcome, secs, left: 2000 - finished, stderr: where };
  } finally {
    c?.socket.close();
    rw.kill('SIGKILL');
    await within(rwExit, 5000, null);
    await stop(server, 'SIGKILL');
  }
}

async function rwBurst() {
  const runs = [];
  for (let i = 0; i < BURST_RUNS; i++) runs.push(await burstRun());
  const tally = {};
  for (const r of runs) tally[r.outcome] = (tally[r.outcome] ?? 0) + 1;
  const detail = runs.map((r) => `${r.outcome}${r.left ? ` (${r.left} left)` : ''} ${r.secs.toFixed(1)} s`).join(', ');
  const panic = runs.find((r) => r.stderr)?.stderr;
  return `remote-worker --concurrency 200, 2000 echo/sleep tasks, ${BURST_RUNS} runs: ${Object.entries(tally).map(([k, v]) => `${v} ${k}`).join(', ')} [${detail}]${panic ? ` — ${panic.trim().slice(0, 120)}` : ''}`;
}

// Quick cases run RUNS times (one line, each run's figure); slow ones once.
const cases = {
  origin: [origin, RUNS],
  'text-plain': [textPlain, RUNS],
  'post-origin': [postOrigin, RUNS],
  'rogue-echo': [rogueEcho, RUNS],
  'progress-flood': [progressFlood, RUNS],
  'many-kinds': [manyKinds, RUNS],
  'markup-kind': [markupKind, RUNS],
  slowloris: [slowloris, 1],
  'idle-flood': [() => idleFlood(0), 1],
  'idle-churn': [() => idleFlood(Number(process.env.CHURN ?? 1000)), 1],
  'slow-reader': [() => slowReader(20), RUNS],
  'slow-reader-burst': [() => slowReader(0), RUNS],
  'expect-100': [expect100, RUNS],
  'unknown-event': [unknownEvent, RUNS],
  'log-forge': [logForge, 1],
  'log-colour': [logColour, 1],
  'log-token': [logToken, 1],
  'rw-burst': [rwBurst, 1],
};
for (const [name, [run, times]] of Object.entries(cases)) {
  if (only.length && !only.includes(name)) continue;
  const figures = [];
  for (let i = 0; i < times; i++) {
    try {
      figures.push(await run());
    } catch (e) {
      figures.push(`error: ${e.message}`);
    }
  }
  const same = figures.every((f) => f === figures[0]);
  console.log(`${name}: ${same && times > 1 ? `${figures[0]} (same in ${times} runs)` : figures.join(' / ')}`);
}
process.exit(0);
