// What Taskwire's JavaScript suites share: starting the real server.
//
// `TaskwireServer` spawns the binary (TASKWIRE_BIN, default
// target/debug/taskwire), waits for the one line the server prints on stdout
// once it accepts connections, `taskwire listening on URL`, and kills it
// afterwards. Every wait is bounded: a server that never says it listens fails
// the start with what it wrote on stderr, instead of hanging the suite. Both
// pipes are always drained, so the server can never block on a full pipe.
//
// The suites' own helpers (tests/js/helpers.js, tests/browser/helpers.js)
// build their `startServer` on this and add their clients. Clusters of
// several nodes on a throwaway PostgreSQL database are `./cluster.js`
// (`@taskwire/test-support/cluster`).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The repository's root, where the workspace and `target/` are. */
export const REPO_ROOT = path.resolve(HERE, '../..');

/** How long a start, or a stop, may take before it fails. */
export const WAIT_MS = 20_000;

/** The server's listening line; the URL is group 1. */
export const LISTENING = /^taskwire listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/;

/** How much of the end of stderr a server keeps for error messages. */
const TAIL_CHARS = 8000;

/** The server binary: TASKWIRE_BIN, or the debug build. */
export function binPath() {
  return path.resolve(process.env.TASKWIRE_BIN || path.join(REPO_ROOT, 'target/debug/taskwire'));
}

/** The built site: TASKWIRE_SITE_ROOT, or what `cargo leptos build` writes. */
export function siteRoot() {
  return path.resolve(process.env.TASKWIRE_SITE_ROOT || path.join(REPO_ROOT, 'target/site'));
}

/** Rejects with a descriptive error after `ms` unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** One server process, started once and stopped once. */
export class TaskwireServer {
  #proc = null;
  #lines = null;
  /** Resolves with `{code, signal}` once the process is gone (or never started). */
  #exited = null;
  #stderrTail = '';
  #url = null;

  /**
   * Runs `bin args` (by default the server binary; `env` is added to this
   * process's environment) and resolves with the URL of its listening line.
   * Rejects, with the end of stderr, when the process fails to start, exits
   * first, or does not print the line within `waitMs`; the process is then
   * killed.
   */
  async start(args, { bin = binPath(), env = {}, waitMs = WAIT_MS } = {}) {
    if (this.#proc) throw new Error('this TaskwireServer has been started already');
    const proc = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = proc;
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      this.#stderrTail = (this.#stderrTail + d).slice(-TAIL_CHARS);
    });
    // A process that could not be spawned emits 'error' and never 'exit'.
    this.#exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
      proc.once('error', (error) => {
        if (proc.pid === undefined) resolve({ code: proc.exitCode, signal: null, error });
      });
    });
    // Reading every line, after the listening one too, keeps stdout drained.
    this.#lines = createInterface({ input: proc.stdout });
    const listening = new Promise((resolve, reject) => {
      this.#lines.on('line', (line) => {
        const m = LISTENING.exec(line);
        if (m) resolve(m[1]);
      });
      this.#exited.then(({ code, signal, error }) => reject(new Error(error
        ? `cannot run ${bin}: ${error.message}`
        : `server exited early (code ${code}, signal ${signal}): ${this.#stderrTail}`)));
    });
    try {
      this.#url = await withTimeout(listening, waitMs, `"taskwire listening on" from ${bin} ${args.join(' ')}`);
    } catch (e) {
      await this.kill('SIGKILL', waitMs).catch(() => {});
      if (/^timed out/.test(e.message) && this.#stderrTail) e.message += `; stderr: ${this.#stderrTail}`;
      throw e;
    }
    return this.#url;
  }

  /** `http://127.0.0.1:PORT` once started. */
  get url() {
    return this.#url;
  }

  get port() {
    return this.#url === null ? null : Number(new URL(this.#url).port);
  }

  /** The process id (undefined until started, or when the spawn failed). */
  get pid() {
    return this.#proc?.pid;
  }

  /** The child process itself. */
  get proc() {
    return this.#proc;
  }

  /** Whether the process runs: started and not yet exited. */
  get running() {
    const p = this.#proc;
    return p !== null && p.pid !== undefined && p.exitCode === null && p.signalCode === null;
  }

  /** The last few kilobytes the server wrote on stderr. */
  stderrTail() {
    return this.#stderrTail;
  }

  /**
   * Sends `signal` (if the process still runs) and waits, bounded, until it
   * has exited. Resolves with `{code, signal}`, or null if never started.
   */
  async kill(signal = 'SIGKILL', waitMs = WAIT_MS) {
    if (!this.#proc) return null;
    if (this.running) this.#proc.kill(signal);
    const status = await withTimeout(this.#exited, waitMs, `server exit after ${signal}`);
    this.#lines.close();
    return status;
  }

  /** Kills the server at once (SIGKILL) and waits until it has exited. */
  stop() {
    return this.kill('SIGKILL');
  }
}
