// Shared helpers for the Taskwire conformance suite.
//
// Every test file starts its own server (`taskwire serve --addr 127.0.0.1:0`),
// talks to it only through the wire protocol of shared/PROTOCOL.md (Socket.IO v4
// via the official socket.io-client, plus plain HTTP), and kills it afterwards.
// Every wait is bounded: a missing event fails the test instead of hanging it.
// Starting and stopping the server is tests/support's TaskwireServer.
//
// TASKWIRE_JS_STORAGE picks what "the server" is:
//   (unset)  one server, `--memory`;
//   durable  one server on its default durable store;
//   cluster  two cluster nodes on a fresh PostgreSQL database and Redis
//            prefix (tests/support/cluster.js): the tests' clients and remote
//            workers use the client node, which has no workers of its own,
//            and the local workers run on the worker node, so every task
//            crosses the cluster. PostgreSQL and Redis must be running.

import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { TaskwireServer, binPath, withTimeout } from '@taskwire/test-support';
import { startCluster } from '@taskwire/test-support/cluster';

export { binPath, withTimeout };

/** How long any single wait for an event / ack may take before the test fails. */
export const WAIT_MS = 20_000;
/** How long we watch to prove that an event does NOT arrive. */
export const ABSENCE_MS = 300;
export const TRANSPORTS = ['websocket', 'polling'];

export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const ERROR_CODES = [
  'invalid_payload', 'unknown_kind', 'payload_too_large', 'queue_full', 'not_found',
  'already_finished', 'unauthorized', 'rate_limited', 'worker_lost', 'task_failed',
  'timed_out', 'cancelled', 'internal',
];
export const TASK_KEYS = [
  'id', 'kind', 'input', 'priority', 'status', 'attempt', 'max_attempts', 'timeout_ms',
  'progress', 'output', 'error', 'worker', 'created_at', 'started_at', 'finished_at',
];
export const FINAL_STATUSES = ['succeeded', 'failed', 'cancelled', 'timed_out'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What the suite runs against: `memory` (the default), `durable` or `cluster`. */
export const STORAGE = process.env.TASKWIRE_JS_STORAGE || 'memory';
if (!['memory', 'durable', 'cluster'].includes(STORAGE)) {
  throw new Error(`TASKWIRE_JS_STORAGE=${STORAGE}: expected durable or cluster (or nothing)`);
}
/** Whether the suite runs against a cluster (TASKWIRE_JS_STORAGE=cluster). */
export const CLUSTER = STORAGE === 'cluster';
/** The cluster's `--lease-ms`: nodes heartbeat every tenth of it. */
export const LEASE_MS = 2000;

/** Flags that shape one node's own worker pool: only the worker node gets them. */
const POOL_FLAGS = new Set(['--workers', '--cpu-slots', '--io-slots']);

/**
 * Splits a test's flags between the two nodes of cluster mode. The client
 * node (the one tests talk to) gets `--workers 0` and no other pool flag;
 * the worker node gets `--workers 2` unless the test names its own, and the
 * pool flags (`--workers`, `--cpu-slots`, `--io-slots`). Every other flag
 * shapes the API or the node as a whole (`--token`, `--max-message-bytes`,
 * `--allowed-origin`, rate limits, timeouts) and goes to both, so that both
 * behave alike whichever one a request reaches. A flag's value is the next
 * item unless it is written `--flag=value`.
 */
export function clusterNodeFlags(extra = []) {
  const client = ['--workers', '0'];
  const worker = extra.includes('--workers') ? [] : ['--workers', '2'];
  for (let i = 0; i < extra.length; i++) {
    const flag = extra[i];
    if (!flag.startsWith('--')) throw new Error(`expected a flag at ${JSON.stringify(flag)} in ${extra.join(' ')}`);
    const name = flag.split('=')[0];
    if (name === '--memory' || name === '--data-dir') throw new Error(`${name} has no meaning in a cluster`);
    const item = [flag];
    if (!flag.includes('=') && i + 1 < extra.length && !extra[i + 1].startsWith('--')) item.push(extra[++i]);
    if (!POOL_FLAGS.has(name)) client.push(...item);
    worker.push(...item);
  }
  return { client, worker };
}

/**
 * Starts `taskwire serve --addr 127.0.0.1:0 --workers 2 [extra]` and resolves once
 * it printed `taskwire listening on http://127.0.0.1:PORT`.
 * `extra` may contain its own `--workers N`, which then replaces the default 2.
 * With TASKWIRE_JS_STORAGE=cluster it starts a cluster instead (see
 * `clusterNodeFlags`), and `url` is the client node's.
 */
export async function startServer(extra = []) {
  const env = { TASKWIRE_SITE_ROOT: '/nonexistent' };
  let url;
  let procs;
  let stderrTail;
  let stopServer;
  if (CLUSTER) {
    const { client, worker } = clusterNodeFlags(extra);
    const cluster = await startCluster([client, worker], { env, waitMs: WAIT_MS, leaseMs: LEASE_MS });
    url = cluster.nodes[0].url;
    procs = cluster.nodes.map((n) => n.proc);
    stderrTail = () => cluster.stderrTail();
    stopServer = () => cluster.stop();
  } else {
    const args = ['serve', '--addr', '127.0.0.1:0'];
    if (!extra.includes('--workers')) args.push('--workers', '2');
    // TASKWIRE_JS_STORAGE=durable runs the suite on the default durable store.
    if (!extra.includes('--data-dir') && STORAGE !== 'durable') args.push('--memory');
    args.push(...extra);
    const taskwire = new TaskwireServer();
    url = await taskwire.start(args, { env, waitMs: WAIT_MS });
    procs = [taskwire.proc];
    stderrTail = () => taskwire.stderrTail();
    stopServer = () => taskwire.stop();
  }
  const sockets = new Set();
  const server = {
    url,
    /** The process tests talk to (in a cluster, the client node). */
    proc: procs[0],
    /** The process whose children the local workers are (in a cluster, the worker node). */
    workerProc: procs.at(-1),
    stderrTail,
    /** Connects a socket on the given transport and waits for `connect`. */
    async connect(transport = 'websocket', opts = {}) {
      const socket = io(url, {
        transports: [transport],
        forceNew: true,
        reconnection: false,
        timeout: WAIT_MS,
        ...opts,
      });
      sockets.add(socket);
      const rec = new Recorder(socket);
      await withTimeout(
        new Promise((resolve, reject) => {
          if (socket.connected) return resolve();
          socket.once('connect', resolve);
          socket.once('connect_error', reject);
        }),
        WAIT_MS,
        `socket connect (${transport})`,
      );
      return rec;
    },
    async stop() {
      for (const s of sockets) s.disconnect();
      sockets.clear();
      await stopServer();
    },
  };
  return server;
}

/**
 * Wraps a socket and records every event it receives (in order), so tests can
 * wait for events that may already have arrived and prove that others did not.
 */
export class Recorder {
  constructor(socket) {
    this.socket = socket;
    this.events = []; // {event, data, at}
    this.waiters = new Set();
    this.disconnects = [];
    socket.onAny((event, ...args) => this._push(event, args[0]));
    socket.on('disconnect', (reason) => {
      this.disconnects.push(reason);
      this._push('$disconnect', reason);
    });
  }

  get id() {
    return this.socket.id;
  }

  _push(event, data) {
    const e = { event, data, at: Date.now() };
    this.events.push(e);
    // onAny listeners run before the event's own listeners: re-check the
    // waiters only once those have run too (they may update test state).
    queueMicrotask(() => {
      for (const w of [...this.waiters]) {
        if (w.check()) this.waiters.delete(w);
      }
    });
  }

  /** Events with this name (and optional predicate on the payload). */
  all(event, pred = () => true) {
    return this.events.filter((e) => e.event === event && pred(e.data)).map((e) => e.data);
  }

  /** All events (any name) that are about the given task id. */
  about(taskId) {
    return this.events.filter((e) => e.data && typeof e.data === 'object'
      && (e.data.task_id === taskId || e.data.id === taskId));
  }

  /** Resolves once `cond()` is truthy (re-checked on every event); fails after `ms`. */
  until(cond, what, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          let v;
          try {
            v = cond();
          } catch (err) {
            clearTimeout(w.timer);
            reject(err);
            return true;
          }
          if (v) {
            clearTimeout(w.timer);
            resolve(v);
            return true;
          }
          return false;
        },
      };
      if (w.check()) return;
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; `
          + `last events: ${JSON.stringify(this.events.slice(-5)).slice(0, 1500)}`));
      }, ms);
      this.waiters.add(w);
    });
  }

  /** Waits for the first event `event` whose payload satisfies `pred`. */
  waitFor(event, pred = () => true, what = event, ms = WAIT_MS) {
    return this.until(() => this.all(event, pred)[0], what, ms);
  }

  waitResult(taskId, ms = WAIT_MS) {
    return this.waitFor('result', (d) => d && d.id === taskId, `result of ${taskId}`, ms);
  }

  waitStatus(taskId, status, ms = WAIT_MS) {
    return this.waitFor('status', (d) => d && d.task_id === taskId && d.status === status,
      `status ${status} of ${taskId}`, ms);
  }

  /** emit with an acknowledgement; fails the test if no ack arrives in time. */
  async ack(event, ...args) {
    try {
      return await this.socket.timeout(WAIT_MS).emitWithAck(event, ...args);
    } catch (err) {
      throw new Error(`no ack for ${event} within ${WAIT_MS} ms (${err.message})`);
    }
  }

  /** Submits a task, asserts a success ack, returns the acked task. */
  async submit(payload) {
    const res = await this.ack('task', payload);
    assert.equal(res?.ok, true, `task ${JSON.stringify(payload).slice(0, 200)} was refused: ${JSON.stringify(res)}`);
    return res.task;
  }

  /** Submits a task and waits for its `result`. */
  async run(payload) {
    const task = await this.submit(payload);
    return this.waitResult(task.id);
  }

  close() {
    this.socket.disconnect();
  }
}

/** Asserts `{ok:false, error:{code, message}}` with the given code (or one of several). */
export function assertErrorAck(res, code, what = '') {
  assert.ok(res && typeof res === 'object', `${what}: ack is not an object: ${JSON.stringify(res)}`);
  assert.equal(res.ok, false, `${what}: expected an error ack, got ${JSON.stringify(res).slice(0, 300)}`);
  assert.ok(res.error && typeof res.error === 'object', `${what}: no error object: ${JSON.stringify(res)}`);
  const codes = Array.isArray(code) ? code : [code];
  assert.ok(codes.includes(res.error.code),
    `${what}: expected error code ${codes.join(' or ')}, got ${JSON.stringify(res.error)}`);
  assert.equal(typeof res.error.message, 'string', `${what}: error.message must be a string`);
}

/** Checks the shape of a task object as PROTOCOL.md describes it. */
export function assertTaskShape(task, what = 'task') {
  assert.ok(task && typeof task === 'object' && !Array.isArray(task), `${what} is not an object`);
  for (const k of TASK_KEYS) assert.ok(k in task, `${what} lacks field ${k}: ${JSON.stringify(task)}`);
  assert.match(task.id, UUID_V7, `${what}.id is not a UUID v7`);
  assert.equal(typeof task.kind, 'string');
  assert.equal(typeof task.priority, 'number');
  assert.ok(Number.isInteger(task.attempt), `${what}.attempt`);
  assert.ok(Number.isInteger(task.max_attempts), `${what}.max_attempts`);
  assert.ok(task.timeout_ms === null || Number.isInteger(task.timeout_ms), `${what}.timeout_ms`);
  assert.match(task.created_at, ISO_MS, `${what}.created_at`);
  for (const k of ['started_at', 'finished_at']) {
    assert.ok(task[k] === null || ISO_MS.test(task[k]), `${what}.${k} = ${JSON.stringify(task[k])}`);
  }
  assert.ok(task.worker === null || typeof task.worker === 'string', `${what}.worker`);
  if (task.error !== null) {
    assert.equal(typeof task.error.code, 'string', `${what}.error.code`);
    assert.equal(typeof task.error.message, 'string', `${what}.error.message`);
  }
}

/** Sum of all per-status counters of a `stats` object: the number of tasks known. */
export function totalTasks(stats) {
  return ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out']
    .reduce((a, k) => a + stats[k], 0);
}

/** HTTP helper with a bounded wait. */
export async function http(url, init = {}) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(WAIT_MS) });
}

/** Polls GET /tasks/{id} until `cond(task)`; bounded. */
export async function pollTask(base, id, cond, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    const r = await http(`${base}/tasks/${id}`, { headers: { accept: 'application/json' } });
    last = { status: r.status, body: await r.text() };
    if (r.status === 200) {
      const t = JSON.parse(last.body);
      if (cond(t)) return t;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms polling ${what}; last: ${JSON.stringify(last).slice(0, 500)}`);
}
