#!/usr/bin/env bash
# Installs what building and testing Taskwire needs, skipping whatever is
# already there at the right version. Safe to run again; when everything is
# in place it only checks versions and installs nothing.
#
# PATH convention. This script cannot change its caller's PATH, and the tools
# it installs live in two places:
#   scripts/tools/node_modules/.bin   wasm-opt (npm's binaryen, pinned in
#                                     scripts/tools/package-lock.json; it must
#                                     come before any Debian wasm-opt)
#   ${CARGO_HOME:-$HOME/.cargo}/bin   cargo-leptos, wasm-bindgen,
#                                     wasm-bindgen-test-runner, wasm-pack
# so whoever runs it (scripts/test.sh) puts both first on PATH afterwards,
# from the repository root:
#   export PATH="$PWD/scripts/tools/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# (with CARGO_HOME unset that is ".../node_modules/.bin:$HOME/.cargo/bin:$PATH").
#
# `scripts/setup.sh --site` installs only what building and serving the web UI
# needs (scripts/serve.sh): no Chromium, no wasm-pack, no test packages.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
site_only=false
[ "${1:-}" = --site ] && site_only=true

cargo_root="${CARGO_HOME:-$HOME/.cargo}"
cargo_bin="$cargo_root/bin"
# The same PATH the caller is told to use, so every version check below sees
# the binaries the build and tests will run.
export PATH="$root/scripts/tools/node_modules/.bin:$cargo_bin:$PATH"

# Pinned tool versions. wasm-bindgen-cli must equal the wasm-bindgen crate in
# Cargo.lock, so that one is read from there.
cargo_leptos_version=0.3.10 # 0.3.11 needs a newer rustc
wasm_pack_version=0.15.1

# Prints the version a tool reports as "name 1.2.3 ...", or nothing when the
# tool is missing or fails.
reported_version() {
  { "$@" 2>/dev/null || true; } | awk 'NR == 1 && NF >= 2 { print $2 }'
}

# cargo install, timed, from outside the repository so that its
# .cargo/config.toml does not apply. --force replaces a binary at another
# version or one cargo does not know about.
cargo_install() {
  local crate=$1 version=$2 start=$SECONDS
  shift 2
  echo "setup: installing $crate $version with cargo (several minutes)"
  (cd / && cargo install "$crate" --version "$version" --root "$cargo_root" --force "$@")
  echo "setup: installed $crate $version in $((SECONDS - start)) s"
}

# --- Debian packages (one apt-get update at most) ---
need_apt=()
packages=(pkg-config libssl-dev chromium chromium-driver)
$site_only && packages=(pkg-config libssl-dev)
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: please install these Debian packages first (as root): ${need_apt[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}"
  start=$SECONDS
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  echo "setup: installed ${need_apt[*]} in $((SECONDS - start)) s"
fi

# --- Rust toolchain pieces ---
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy

# --- cargo-installed tools ---
# cargo-leptos without downloads: it takes wasm-bindgen and wasm-opt from PATH.
if [ "$(reported_version cargo leptos --version)" != "$cargo_leptos_version" ]; then
  # Its release profile asks for fat LTO in one codegen unit, which costs
  # minutes of a 2-core machine and buys a build tool nothing.
  cargo_install cargo-leptos "$cargo_leptos_version" --locked --features no_downloads \
    --config 'profile.release.lto=false' --config 'profile.release.codegen-units=16'
fi

wasm_bindgen_version=$(awk '
  /^\[\[package\]\]/ { name = "" }
  /^name = /         { name = $3 }
  /^version = / && name == "\"wasm-bindgen\"" { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock 2>/dev/null || true)
if [ -z "$wasm_bindgen_version" ]; then
  echo "setup: no wasm-bindgen in Cargo.lock; skipping wasm-bindgen-cli"
elif [ "$(reported_version wasm-bindgen --version)" != "$wasm_bindgen_version" ] ||
  [ ! -x "$cargo_bin/wasm-bindgen-test-runner" ]; then
  # No --locked: the crate's own lockfile names a version that cannot be had.
  cargo_install wasm-bindgen-cli "$wasm_bindgen_version"
fi

if ! $site_only && [ "$(reported_version wasm-pack --version)" != "$wasm_pack_version" ]; then
  cargo_install wasm-pack "$wasm_pack_version" --locked
fi

# --- npm-installed tools and test dependencies ---
command -v node >/dev/null || { echo "setup: Node.js and npm are required" >&2; exit 1; }

# wasm-opt from npm's binaryen: Debian's binaryen builds release wasm that
# crashes on load.
tools=scripts/tools
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules" ]; then
  echo "setup: npm ci in $tools (binaryen's wasm-opt)"
  start=$SECONDS
  (cd "$tools" && npm ci --no-audit --no-fund --silent)
  echo "setup: installed $(wasm-opt --version) in $((SECONDS - start)) s"
fi

# app: the browser's socket.io-client (app/build.rs would fetch it too), a
# package of its own; the repository root: the test workspace (tests/support,
# tests/js, tests/browser) with socket.io-client and playwright-core in one
# package-lock.json.
npm_dirs=(app .)
$site_only && npm_dirs=(app)
for dir in "${npm_dirs[@]}"; do
  [ -f "$dir/package-lock.json" ] || continue
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    if [ "$dir" = . ]; then what="the test workspace"; else what=$dir; fi
    echo "setup: npm ci in $what"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
done

echo "setup: tools ready; put them on PATH with:"
# shellcheck disable=SC2016 # printed for the caller, not expanded here
echo '  export PATH="$PWD/scripts/tools/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"'
