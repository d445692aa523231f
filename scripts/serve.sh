#!/usr/bin/env bash
# The whole product from a fresh clone: installs what building the web UI
# needs (scripts/setup.sh --site: the wasm32 target, cargo-leptos,
# wasm-bindgen, wasm-opt, the browser's socket.io-client), builds the server
# and the site in release mode, and serves both with the embedded store on
# http://127.0.0.1:3000. Arguments go to `taskwire serve`:
#
#   scripts/serve.sh                      # http://127.0.0.1:3000, durable store
#   scripts/serve.sh --memory --workers 4
#
# For development, `cargo leptos serve` (or `watch`) builds a debug server
# and site instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --site
export PATH="$PWD/scripts/tools/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo leptos build --release
exec env TASKWIRE_SITE_ROOT="$PWD/target/site" target/release/taskwire serve "$@"
