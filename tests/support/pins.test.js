// The workspace pins each client library once, at its root, and every suite
// loads that one copy: the lock names one version, one copy is installed, and
// the suites resolve the same file.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './index.js';

const PINNED = ['socket.io-client', 'playwright-core'];
const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const root = readJson(path.join(REPO_ROOT, 'package.json'));
const workspaces = root.workspaces.map((w) => path.join(REPO_ROOT, w));

/** Every installed copy of package `name` under `dir` (nested node_modules included), as paths. */
function installedCopies(dir, name, found = []) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue; // workspace links are symlinks: walked from their own folder
    const sub = path.join(dir, e.name);
    if (e.name.startsWith('@')) {
      installedCopies(sub, name, found);
      continue;
    }
    try {
      if (readJson(path.join(sub, 'package.json')).name === name) found.push(sub);
    } catch { /* not a package */ }
    installedCopies(path.join(sub, 'node_modules'), name, found);
  }
  return found;
}

for (const name of PINNED) {
  test(`${name} is pinned to an exact version once, at the workspace root`, () => {
    const pin = root.devDependencies?.[name];
    assert.match(pin ?? '', /^\d+\.\d+\.\d+$/, `the root pins ${name} exactly (got ${pin})`);
    for (const ws of workspaces) {
      const pkg = readJson(path.join(ws, 'package.json'));
      for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
        assert.equal(pkg[field]?.[name], undefined, `${path.relative(REPO_ROOT, ws)} declares ${name} again`);
      }
    }
  });

  test(`the lock and the install hold exactly one ${name}, the pinned one`, () => {
    const pin = root.devDependencies[name];
    const lock = readJson(path.join(REPO_ROOT, 'package-lock.json'));
    const locked = Object.entries(lock.packages)
      .filter(([key]) => key === `node_modules/${name}` || key.endsWith(`/node_modules/${name}`))
      .map(([key, v]) => `${key}@${v.version}`);
    assert.deepEqual(locked, [`node_modules/${name}@${pin}`]);
    const copies = [REPO_ROOT, ...workspaces]
      .flatMap((dir) => installedCopies(path.join(dir, 'node_modules'), name))
      .map((dir) => `${path.relative(REPO_ROOT, dir)}@${readJson(path.join(dir, 'package.json')).version}`);
    assert.deepEqual(copies, [`node_modules/${name}@${pin}`]);
  });
}

test('both suites load the same socket.io-client', () => {
  const resolved = ['tests/js', 'tests/browser'].map((ws) =>
    createRequire(path.join(REPO_ROOT, ws, 'package.json')).resolve('socket.io-client/package.json'));
  assert.equal(new Set(resolved).size, 1, resolved.join(' vs '));
  assert.equal(resolved[0], path.join(REPO_ROOT, 'node_modules/socket.io-client/package.json'));
});
