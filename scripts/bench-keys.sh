#!/usr/bin/env bash
# What idempotency keys cost: bench (a) (echo, 20 sockets x 50 in flight) on
# the default durable store, with and without `key` on every task, the two
# interleaved round by round, each run on a fresh server and data directory.
#
#   scripts/bench-keys.sh [BIN] [ROUNDS] [TASKS]     (BIN: a release build)
#
# Prints one line per run (tasks/s, and the server's CPU per task: the
# server process and its worker processes, user + system) and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/taskwire}")
rounds=${2:-3}
tasks=${3:-50000}
tmp=$(mktemp -d)
server=
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
hz=$(getconf CLK_TCK)

# CPU ticks (user + system) of process PID and its children.
tree_ticks() {
  python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2 :].split()
total = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = stat(pid)
        if pid == root or fields[1] == root:
            total += int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        pass
print(total)
PY
}

run() {
  local what=$1
  shift
  local log=$tmp/server.log
  "$bin" serve --addr 127.0.0.1:0 --site-root /nonexistent --workers 1 \
    --data-dir "$tmp/data-$RANDOM$RANDOM" >"$log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do
    grep -q "taskwire listening on" "$log" && break
    sleep 0.05
  done
  local url
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)
  local before after
  before=$(tree_ticks "$server")
  "$bin" bench --url "$url" --clients 20 --inflight 50 --tasks "$tasks" --kind echo --json "$@" \
    >"$tmp/bench.json" 2>"$tmp/bench.err" || { cat "$tmp/bench.err" >&2; exit 1; }
  after=$(tree_ticks "$server")
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
  tail -1 "$tmp/bench.json" | node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const [what, ticks, hz] = process.argv.slice(1);
    const us = Math.round((ticks * 1e6) / hz / Math.max(j.ok, 1));
    console.log(`${what} tasks/s ${Math.round(j.throughput_per_s)} ok ${j.ok} errors ${j.tasks - j.ok} server_cpu_us_per_task ${us}`);
  ' "$what" $((after - before)) "$hz"
}

for ((r = 1; r <= rounds; r++)); do
  run plain | tee -a "$tmp/runs"
  run keys --keys | tee -a "$tmp/runs"
done
node -e '
  const runs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const of = (what, i) => median(runs.filter((r) => r[0] === what).map((r) => Number(r[i])));
  const [pt, kt, pc, kc] = [of("plain", 2), of("keys", 2), of("plain", 8), of("keys", 8)];
  console.log(`median tasks/s: plain ${pt}, keys ${kt} (${(kt / pt).toFixed(3)}x); server CPU us/task: plain ${pc}, keys ${kc}`);
' "$tmp/runs"
