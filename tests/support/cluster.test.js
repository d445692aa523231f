// cluster.js against the real PostgreSQL, Redis and server binary: throwaway
// databases come and go, a cluster's nodes share one queue, and stopping it
// (or failing to start it) leaves no process and no database behind.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TestDatabase, databaseExists, psql, randomName, startCluster } from './cluster.js';
import { WAIT_MS } from './index.js';

const env = { TASKWIRE_SITE_ROOT: '/nonexistent' };

/** Whether a process with this id exists (zombies included). */
function exists(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if (e.code === 'ESRCH') return false;
    throw e;
  }
}

/** The databases whose names start with `prefix_`. */
async function databasesNamed(prefix) {
  const out = await psql(`SELECT datname FROM pg_database WHERE starts_with(datname, '${prefix}_')`);
  return out.split('\n').filter(Boolean);
}

describe('TestDatabase', () => {
  test('create makes a fresh database, drop removes it, a second drop is a no-op', async () => {
    const a = await TestDatabase.create('taskwire_jstest');
    const b = await TestDatabase.create('taskwire_jstest');
    try {
      assert.match(a.name, /^taskwire_jstest_[0-9a-f]{16}$/);
      assert.notEqual(a.name, b.name);
      assert.equal(new URL(a.url).pathname, `/${a.name}`);
      assert.equal(await databaseExists(a.name), true);
    } finally {
      await a.drop();
      await b.drop();
    }
    assert.equal(await databaseExists(a.name), false);
    await a.drop();
  });

  test('names that are not plain identifiers are refused before reaching SQL', async () => {
    assert.throws(() => randomName('x; DROP DATABASE postgres'), /not a plain lower-case identifier/);
    assert.throws(() => new TestDatabase('Upper'), /not a plain lower-case identifier/);
    await assert.rejects(databaseExists("x' OR '1'='1"), /not a plain lower-case identifier/);
  });
});

describe('startCluster with the real binary (TASKWIRE_BIN)', () => {
  test('two nodes share one queue: a task posted on one is run by the other; stop() removes all', async () => {
    const cluster = await startCluster([['--workers', '0'], ['--workers', '1']], { env });
    const pids = cluster.nodes.map((n) => n.pid);
    let stopped = false;
    try {
      assert.equal(cluster.nodes.length, 2);
      assert.notEqual(cluster.urls[0], cluster.urls[1]);
      for (const url of cluster.urls) {
        const h = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(WAIT_MS) });
        assert.equal(h.status, 200, `${url}/healthz: ${await h.text()}`);
      }
      const posted = await fetch(`${cluster.urls[0]}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ kind: 'sha256', input: { data: 'abc', rounds: 1 } }),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      assert.equal(posted.status, 202);
      const { id } = await posted.json();
      // Node 0 has no workers: only node 1 can run it; read it back on node 1.
      const deadline = Date.now() + WAIT_MS;
      let task;
      do {
        const r = await fetch(`${cluster.urls[1]}/tasks/${id}`, {
          headers: { accept: 'application/json' }, signal: AbortSignal.timeout(WAIT_MS),
        });
        task = r.status === 200 ? await r.json() : { status: `HTTP ${r.status}` };
        if (task.status === 'succeeded') break;
        await new Promise((r2) => setTimeout(r2, 50));
      } while (Date.now() < deadline);
      assert.equal(task.status, 'succeeded', JSON.stringify(task));
      assert.equal(task.output.hex, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      assert.match(cluster.stderrTail(), /--- node 0 .*\n[^]*joined the cluster[^]*--- node 1 /);
      await cluster.stop();
      stopped = true;
    } finally {
      if (!stopped) await cluster.stop();
    }
    for (const pid of pids) assert.equal(exists(pid), false, `node ${pid} is gone`);
    assert.equal(await databaseExists(cluster.database.name), false, 'the database is dropped');
    await cluster.stop(); // a second stop is harmless
  });

  test('a node that cannot start fails the start with its stderr, and nothing is left behind', async () => {
    const prefix = randomName('taskwire_jstest');
    await assert.rejects(
      startCluster([['--workers', '0'], ['--workers', '0', '--no-such-flag']], { env, databasePrefix: prefix }),
      (e) => {
        assert.match(e.message, /^cluster node 1 did not start: server exited early \(code 2/);
        assert.match(e.message, /--no-such-flag/);
        return true;
      },
    );
    assert.deepEqual(await databasesNamed(prefix), [], 'the database is dropped');
  });
});
