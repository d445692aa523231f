// PROTOCOL.md "HTTP": REST routes, health and metrics. Uses global fetch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, http, pollTask, assertTaskShape, UUID_V7 } from './helpers.js';

let server;
let base;
before(async () => { server = await startServer(); base = server.url; });
after(async () => { await server?.stop(); });

const UNKNOWN_UUID = '0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40';
const json = (body) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

async function errorBody(r, code, what) {
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch { assert.fail(`${what}: error body is not JSON: ${text.slice(0, 200)}`); }
  assert.equal(typeof body.error, 'object', `${what}: body ${text.slice(0, 200)}`);
  assert.equal(body.error.code, code, `${what}: body ${text.slice(0, 200)}`);
  assert.equal(typeof body.error.message, 'string', `${what}: error.message`);
  assert.equal(body.ok, undefined, `${what}: HTTP errors have no ok field`);
}

test('POST /tasks (JSON) -> 202 + task object, GET /tasks/{id} -> the task, then succeeded', async () => {
  const input = { z: 1, a: { y: 2, b: [3] } };
  const r = await http(`${base}/tasks`, json({ kind: 'echo', input, priority: 2 }));
  assert.equal(r.status, 202);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  const task = await r.json();
  assertTaskShape(task, 'POST body');
  assert.equal(task.ok, undefined, 'no {ok, task} wrapper');
  assert.equal(task.kind, 'echo');
  assert.equal(task.status, 'queued');
  assert.equal(task.priority, 2);
  assert.equal(JSON.stringify(task.input), JSON.stringify(input));
  const g = await http(`${base}/tasks/${task.id}`, { headers: { accept: 'application/json' } });
  assert.equal(g.status, 200);
  const got = await g.json();
  assertTaskShape(got, 'GET body');
  assert.equal(got.id, task.id);
  const done = await pollTask(base, task.id, (t) => t.status === 'succeeded', 'echo to succeed');
  assert.equal(JSON.stringify(done.output), JSON.stringify(input));
  assert.equal(done.attempt, 1);
});

test('DELETE /tasks/{id} cancels a running task -> 200 + cancelled task', async () => {
  const r = await http(`${base}/tasks`, json({ kind: 'sleep', input: { ms: 600000 } }));
  assert.equal(r.status, 202);
  const task = await r.json();
  await pollTask(base, task.id, (t) => t.status === 'running', 'sleep to run');
  const d = await http(`${base}/tasks/${task.id}`, { method: 'DELETE', headers: { accept: 'application/json' } });
  assert.equal(d.status, 200);
  const cancelled = await d.json();
  assertTaskShape(cancelled, 'DELETE body');
  assert.equal(cancelled.ok, undefined, 'no {ok, task} wrapper');
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(cancelled.error?.code, 'cancelled');
  const g = await (await http(`${base}/tasks/${task.id}`)).json();
  assert.equal(g.status, 'cancelled');
  // cancelling again: already_finished
  const again = await http(`${base}/tasks/${task.id}`, { method: 'DELETE' });
  assert.ok(again.status >= 400 && again.status < 500, `second DELETE status ${again.status}`);
  await errorBody(again, 'already_finished', 'second DELETE');
});

test('unknown id -> 404 {error:{code:"not_found"}} on GET and DELETE', async () => {
  const g = await http(`${base}/tasks/${UNKNOWN_UUID}`, { headers: { accept: 'application/json' } });
  assert.equal(g.status, 404);
  await errorBody(g, 'not_found', 'GET unknown');
  const d = await http(`${base}/tasks/${UNKNOWN_UUID}`, { method: 'DELETE' });
  assert.equal(d.status, 404);
  await errorBody(d, 'not_found', 'DELETE unknown');
});

test('POST /tasks errors: bad JSON 400 invalid_payload, unknown kind 422, bad input 4xx invalid_payload', async () => {
  const bad = await http(`${base}/tasks`, json('{"kind": "echo", "input": '));
  assert.equal(bad.status, 400);
  await errorBody(bad, 'invalid_payload', 'bad JSON');
  const notObj = await http(`${base}/tasks`, json('[1,2]'));
  assert.equal(notObj.status, 400);
  await errorBody(notObj, 'invalid_payload', 'JSON array body');
  const unk = await http(`${base}/tasks`, json({ kind: 'nope', input: {} }));
  assert.equal(unk.status, 422);
  await errorBody(unk, 'unknown_kind', 'unknown kind');
  const badInput = await http(`${base}/tasks`, json({ kind: 'sleep', input: { ms: -1 } }));
  assert.ok([400, 422].includes(badInput.status), `bad input status ${badInput.status}`);
  await errorBody(badInput, 'invalid_payload', 'sleep ms -1');
});

test('POST /tasks form-urlencoded -> 303 to /tasks/{id}', async () => {
  const r = await http(`${base}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ kind: 'echo', input: '{"a":1}' }).toString(),
    redirect: 'manual',
  });
  assert.equal(r.status, 303);
  const loc = r.headers.get('location');
  assert.ok(loc, 'a Location header');
  const m = /^(?:http:\/\/127\.0\.0\.1:\d+)?\/tasks\/([0-9a-f-]{36})$/.exec(loc);
  assert.ok(m, `Location ${loc} is /tasks/{id}`);
  assert.match(m[1], UUID_V7);
  const done = await pollTask(base, m[1], (t) => t.status === 'succeeded', 'form task to succeed');
  assert.equal(done.kind, 'echo');
  assert.deepEqual(done.input, { a: 1 });
  assert.deepEqual(done.output, { a: 1 });
});

test('GET /healthz -> 200', async () => {
  const r = await http(`${base}/healthz`);
  assert.equal(r.status, 200);
  await r.arrayBuffer();
});

test('GET /metrics -> Prometheus text with taskwire_tasks', async () => {
  const r = await http(`${base}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await r.text();
  assert.match(text, /taskwire_tasks/);
  // every non-comment, non-empty line is `name{labels} value`
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEInfNa]+( \d+)?$/, `metrics line: ${line}`);
  }
});
