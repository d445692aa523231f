#!/usr/bin/env bash
# Runs every check and test of Taskwire: formatting, lints, unit and
# integration tests (real server on 127.0.0.1:0, Rust and JS clients), and
# the browser crate's wasm32 build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

step "frontend builds for wasm32"
cargo build -p frontend --target wasm32-unknown-unknown

step "Rust tests"
cargo test --workspace --exclude frontend

if [ -f tests/js/package.json ]; then
  step "JS socket.io-client conformance tests"
  cargo build -p taskwire
  (cd tests/js && TASKWIRE_BIN="$PWD/../../target/debug/taskwire" npm test)

  step "JS conformance tests again, on the durable store"
  (cd tests/js && TASKWIRE_JS_STORAGE=durable TASKWIRE_BIN="$PWD/../../target/debug/taskwire" npm test)
fi
