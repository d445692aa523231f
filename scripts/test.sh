#!/usr/bin/env bash
# Runs every check and test of Taskwire: formatting, lints, the web UI's
# build, unit and integration tests (real server on 127.0.0.1:0, Rust and JS
# clients), and the browser tests (wasm-bindgen tests and end-to-end tests in
# headless Chromium). Installs what it needs first (scripts/setup.sh).
# PostgreSQL (127.0.0.1:5432, user postgres, trust auth; psql on the PATH)
# and Redis (127.0.0.1:6379) must be running: the cluster tests make a
# throwaway database on them (TASKWIRE_TEST_DATABASE_URL and
# TASKWIRE_TEST_REDIS_URL point them elsewhere). This script does not start
# them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# PostgreSQL and Redis, for cluster mode's tests (started if not running).
scripts/services.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# One build from scratch: incremental state would only cost disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n== %s\n' "$*"; }
timings=()
# Runs a step and records how long it took.
timed() {
  local name=$1 start=$SECONDS
  shift
  step "$name"
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - start)) "$name")")
}

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p app --target wasm32-unknown-unknown --features csr --all-targets -- -D warnings

# The server and the site (WASM, JS glue, socket.io-client module, CSS).
timed "web UI build (cargo leptos build)" cargo leptos build

step "Rust tests"
cargo test --workspace --exclude frontend

chromedriver=$(command -v chromedriver)
timed "browser: wasm-bindgen tests (headless Chromium)" \
  env CHROMEDRIVER="$chromedriver" wasm-pack test --headless --chrome app --features csr

bin="$PWD/target/debug/taskwire"
cargo build -p taskwire
# The JavaScript suites are one npm workspace (root package.json).
step "JS socket.io-client conformance tests"
TASKWIRE_BIN="$bin" npm test --workspace tests/js

step "JS conformance tests again, on the durable store"
TASKWIRE_JS_STORAGE=durable TASKWIRE_BIN="$bin" npm test --workspace tests/js

# Two nodes on a fresh database and Redis prefix: the clients on one, the
# workers on the other (tests/js/helpers.js).
step "JS conformance tests again, on a cluster (PostgreSQL + Redis)"
TASKWIRE_JS_STORAGE=cluster TASKWIRE_BIN="$bin" npm test --workspace tests/js

step "JS test support (the shared server and cluster helpers, the workspace's pins)"
TASKWIRE_BIN="$bin" npm test --workspace tests/support

timed "browser: end-to-end tests (headless Chromium, real server)" \
  env TASKWIRE_BIN="$bin" TASKWIRE_SITE_ROOT="$PWD/target/site" npm test --workspace tests/browser

step "durations"
printf '%s\n' "${timings[@]}"
