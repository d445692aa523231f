// TaskwireServer: first against stand-ins (a shell that prints the listening
// line, or fails in the ways a server can), then against the real binary.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TaskwireServer, LISTENING, WAIT_MS } from './index.js';

/** Runs `script` in sh as the "server". */
const sh = (script, opts = {}) => [['-c', script], { bin: '/bin/sh', ...opts }];

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

describe('TaskwireServer with a stand-in process', () => {
  test('resolves with the URL of the listening line, after other lines; env is passed on', async () => {
    const server = new TaskwireServer();
    const url = await server.start(...sh(
      'echo starting; echo "taskwire listening on http://127.0.0.1:$FAKE_PORT"; exec sleep 600',
      { env: { FAKE_PORT: '4321' } },
    ));
    try {
      assert.equal(url, 'http://127.0.0.1:4321');
      assert.equal(server.url, url);
      assert.equal(server.port, 4321);
      assert.ok(Number.isInteger(server.pid) && server.pid > 0, `pid ${server.pid}`);
      assert.equal(server.running, true);
    } finally {
      const status = await server.stop();
      assert.deepEqual(status, { code: null, signal: 'SIGKILL' });
    }
    assert.equal(server.running, false);
    assert.equal(exists(server.pid), false, 'the process is gone after stop()');
  });

  test('kill(signal) sends that signal and waits for the exit', async () => {
    const server = new TaskwireServer();
    await server.start(...sh('echo "taskwire listening on http://127.0.0.1:1"; exec sleep 600'));
    assert.deepEqual(await server.kill('SIGTERM'), { code: null, signal: 'SIGTERM' });
    // A second stop of a stopped server is a no-op with the same status.
    assert.deepEqual(await server.stop(), { code: null, signal: 'SIGTERM' });
  });

  test('a process that exits before listening fails the start with its stderr', async () => {
    const server = new TaskwireServer();
    await assert.rejects(
      server.start(...sh('echo "error: unexpected argument --frobnicate" >&2; exit 2')),
      /server exited early \(code 2, signal null\): error: unexpected argument --frobnicate/,
    );
    assert.equal(server.running, false);
  });

  test('a binary that cannot be run fails the start with its path', async () => {
    const server = new TaskwireServer();
    await assert.rejects(
      server.start(['serve'], { bin: '/nonexistent/taskwire' }),
      /cannot run \/nonexistent\/taskwire: .*ENOENT/,
    );
    assert.equal(server.running, false);
    assert.equal(server.pid, undefined);
    assert.equal((await server.stop()).error.code, 'ENOENT', 'stop() after a failed spawn returns at once');
  });

  test('no listening line within the wait fails the start, names stderr, and kills the process', async () => {
    const server = new TaskwireServer();
    await assert.rejects(
      server.start(...sh('echo "still loading" >&2; exec sleep 600', { waitMs: 500 })),
      (e) => {
        assert.match(e.message, /^timed out after 500 ms waiting for "taskwire listening on" from \/bin\/sh/);
        assert.match(e.message, /stderr: still loading/);
        return true;
      },
    );
    assert.equal(server.running, false);
    assert.equal(exists(server.pid), false, 'the process was killed');
  });

  test('a look-alike line that is not on 127.0.0.1 is not taken for the listening line', async () => {
    assert.equal(LISTENING.exec('taskwire listening on http://0.0.0.0:3000'), null);
    assert.equal(LISTENING.exec('taskwire listening on http://127.0.0.1:3000')?.[1], 'http://127.0.0.1:3000');
    const server = new TaskwireServer();
    await assert.rejects(
      server.start(...sh('echo "taskwire listening on http://0.0.0.0:3000"; exit 0')),
      /server exited early \(code 0/,
    );
  });

  test('both pipes are drained: megabytes before the line do not block the start; the stderr tail stays bounded', async () => {
    const server = new TaskwireServer();
    await server.start(...sh([
      'head -c 2000000 /dev/zero | tr "\\0" e >&2',
      'head -c 2000000 /dev/zero | tr "\\0" o',
      'echo',
      'echo "taskwire listening on http://127.0.0.1:2"',
      'exec sleep 600',
    ].join('; ')));
    try {
      const tail = server.stderrTail();
      assert.ok(tail.length > 0 && tail.length <= 8000, `tail of ${tail.length} chars`);
      assert.match(tail, /^e+$/);
    } finally {
      await server.stop();
    }
  });

  test('a server is started once', async () => {
    const server = new TaskwireServer();
    await server.start(...sh('echo "taskwire listening on http://127.0.0.1:3"; exec sleep 600'));
    try {
      await assert.rejects(server.start(['serve']), /started already/);
    } finally {
      await server.stop();
    }
  });
});

describe('TaskwireServer with the real binary (TASKWIRE_BIN)', () => {
  const args = ['serve', '--addr', '127.0.0.1:0', '--workers', '1', '--memory'];
  const env = { TASKWIRE_SITE_ROOT: '/nonexistent' };

  test('starts, answers, and is gone after stop()', async () => {
    const server = new TaskwireServer();
    const url = await server.start(args, { env });
    let stopped = false;
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(server.port > 0);
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(WAIT_MS) });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      assert.deepEqual(await server.stop(), { code: null, signal: 'SIGKILL' });
      stopped = true;
      await assert.rejects(fetch(`${url}/healthz`, { signal: AbortSignal.timeout(WAIT_MS) }),
        'nothing answers once the server is stopped');
    } finally {
      if (!stopped) await server.stop();
    }
  });

  test('kill(SIGTERM) right after the listening line stops the server gracefully', async () => {
    const server = new TaskwireServer();
    await server.start(args, { env });
    // The server listens for signals before it prints the line, so even a
    // signal sent at once gets the graceful stop (exit 0), not the default.
    const status = await server.kill('SIGTERM');
    assert.deepEqual(status, { code: 0, signal: null });
    assert.equal(server.running, false);
    assert.equal(exists(server.pid), false, 'the process is gone');
  });

  test('bad arguments fail the start with what the server said on stderr', async () => {
    const server = new TaskwireServer();
    await assert.rejects(
      server.start([...args, '--no-such-flag'], { env }),
      (e) => {
        assert.match(e.message, /^server exited early \(code 2, signal null\)/);
        assert.match(e.message, /--no-such-flag/);
        return true;
      },
    );
    assert.equal(server.running, false);
  });
});
