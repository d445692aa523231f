// Taskwire clusters for the JavaScript suites: a throwaway PostgreSQL
// database, a Redis prefix of its own, and a set of `taskwire serve --cluster`
// nodes on both.
//
// The database is made and dropped with `psql` (trust auth, as on the test
// machine), on TASKWIRE_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432), the server the Rust tests use too;
// Redis is TASKWIRE_TEST_REDIS_URL (default redis://127.0.0.1:6379). Every
// wait is bounded, and stopping a cluster drops its database even when a
// node cannot be stopped. A test process that exits without stopping its
// clusters (a crash outside a test) still kills their nodes and drops their
// databases on its way out.

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { TaskwireServer, WAIT_MS, withTimeout } from './index.js';

/** The PostgreSQL server test databases are made on (its database part is ignored). */
export function databaseServerUrl() {
  return process.env.TASKWIRE_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432';
}

/** The Redis server clusters use. */
export function redisUrl() {
  return process.env.TASKWIRE_TEST_REDIS_URL || 'redis://127.0.0.1:6379';
}

/** `databaseServerUrl()` with its database part replaced by `name`. */
function urlOf(name) {
  const url = new URL(databaseServerUrl());
  url.pathname = `/${name}`;
  return url.href;
}

/** A fresh random name: `prefix_` and 16 hex digits (a plain SQL identifier). */
export function randomName(prefix) {
  return `${plain(prefix)}_${randomBytes(8).toString('hex')}`;
}

/** `name` itself if it is a plain lower-case SQL identifier (safe to put in a statement). */
function plain(name) {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain lower-case identifier: ${name}`);
  return name;
}

/**
 * Runs one SQL statement with psql on the maintenance database and resolves
 * with its rows (unaligned, without headers); rejects with psql's stderr.
 */
export function psql(sql, { waitMs = WAIT_MS } = {}) {
  const args = [urlOf('postgres'), '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-c', sql];
  return withTimeout(new Promise((resolve, reject) => {
    execFile('psql', args, { timeout: waitMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql -c ${JSON.stringify(sql)} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  }), waitMs + 1000, `psql -c ${JSON.stringify(sql)}`);
}

/** Whether a database with this name exists. */
export async function databaseExists(name) {
  const out = await psql(`SELECT count(*) FROM pg_database WHERE datname = '${plain(name)}'`);
  return out.trim() === '1';
}

const dropSql = (name) => `DROP DATABASE IF EXISTS ${plain(name)} WITH (FORCE)`;

/** The databases and clusters not yet dropped or stopped, for the exit hook. */
const live = { databases: new Set(), clusters: new Set() };

// 'exit' handlers cannot wait: kill with a signal and drop with a blocking psql.
process.once('exit', () => {
  for (const cluster of live.clusters) {
    for (const n of cluster.nodes) if (n.running) n.proc.kill('SIGKILL');
  }
  for (const db of live.databases) {
    try {
      execFileSync('psql', [urlOf('postgres'), '-X', '-q', '-c', dropSql(db.name)],
        { timeout: WAIT_MS, stdio: 'ignore' });
    } catch { /* nothing more can be done on the way out */ }
  }
});

/** A database made for one test run; `drop()` it afterwards. */
export class TestDatabase {
  constructor(name) {
    this.name = plain(name);
    /** The `postgres://` URL of this database. */
    this.url = urlOf(name);
  }

  /** Creates a database with a fresh random name (`prefix_<16 hex digits>`). */
  static async create(prefix = 'taskwire_js') {
    const db = new TestDatabase(randomName(prefix));
    await psql(`CREATE DATABASE ${db.name}`);
    live.databases.add(db);
    return db;
  }

  /** Drops the database, closing whatever connections it still has. A second drop is a no-op. */
  async drop() {
    if (!live.databases.has(this)) return;
    await psql(dropSql(this.name));
    live.databases.delete(this);
  }
}

/** A fresh Redis prefix, so that clusters sharing the Redis never hear each other. */
export function randomPrefix() {
  return randomName('taskwire_js');
}

/**
 * Starts a cluster: a fresh database and Redis prefix, and one node per item
 * of `nodes`, each `taskwire serve --addr 127.0.0.1:0 --cluster …
 * --lease-ms leaseMs` plus that item's own flags. The nodes start at once
 * (the schema is brought up under an advisory lock, so that is allowed).
 * The database is named `databasePrefix` and 16 random hex digits.
 * Resolves once every node listens; if one fails, the others are stopped,
 * the database is dropped, and the start rejects with what failed.
 */
export async function startCluster(nodes, {
  leaseMs = 2000, env = {}, waitMs = WAIT_MS, bin, databasePrefix = 'taskwire_js',
} = {}) {
  const database = await TestDatabase.create(databasePrefix);
  const prefix = randomPrefix();
  const servers = nodes.map(() => new TaskwireServer());
  const cluster = new TaskwireCluster(database, prefix, servers);
  live.clusters.add(cluster);
  const common = [
    'serve', '--addr', '127.0.0.1:0', '--cluster',
    '--database-url', database.url, '--redis-url', redisUrl(), '--redis-prefix', prefix,
    '--lease-ms', String(leaseMs),
  ];
  const started = await Promise.allSettled(servers.map((s, i) => s.start([...common, ...nodes[i]], {
    env, waitMs, ...(bin ? { bin } : {}),
  })));
  const failed = started.findIndex((r) => r.status === 'rejected');
  if (failed >= 0) {
    await cluster.stop().catch(() => {});
    const e = started[failed].reason;
    e.message = `cluster node ${failed} did not start: ${e.message}`;
    throw e;
  }
  return cluster;
}

/** The nodes of one cluster, its database and its Redis prefix. */
export class TaskwireCluster {
  constructor(database, prefix, nodes) {
    this.database = database;
    this.prefix = prefix;
    /** One `TaskwireServer` per node, in the order they were asked for. */
    this.nodes = nodes;
  }

  /** The URL of each node. */
  get urls() {
    return this.nodes.map((n) => n.url);
  }

  /** The end of every node's stderr, each under a `--- node i ---` line. */
  stderrTail() {
    return this.nodes.map((n, i) => `--- node ${i} (${n.url ?? 'not listening'}) ---\n${n.stderrTail()}`).join('\n');
  }

  /**
   * Kills every node (SIGKILL) and waits until they have exited, then drops
   * the database, also when a node could not be stopped. Rejects with the
   * first thing that failed.
   */
  async stop() {
    const killed = await Promise.allSettled(this.nodes.map((n) => n.stop()));
    if (killed.every((r) => r.status === 'fulfilled')) live.clusters.delete(this);
    await this.database.drop();
    const failed = killed.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
