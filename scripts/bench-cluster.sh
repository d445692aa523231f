#!/usr/bin/env bash
# Cluster mode's benchmark: 1, 2 and 3 nodes on one PostgreSQL and one
# Redis (the machine's, 127.0.0.1:5432 and :6379), beside single-node
# durable Taskwire, in one run, with `taskwire bench` as the load.
#
#   scripts/bench-cluster.sh [BIN] [ROUNDS]     (BIN: a release build)
#
# With BULLMQ=<the bench kit's bullmq-node folder, after `npm ci` in it>,
# (a) also runs the BullMQ baseline (its server, workers and private Redis
# counted the same way).
#
# (a) echo, 20 sockets x 50 in flight, spread evenly over the nodes' own
#     generators: tasks/s, and CPU per task of everything that serves it —
#     the nodes and their workers, every PostgreSQL process, every Redis
#     process (the generators' CPU is not counted).
# (s) slot-bound: `sleep` 100 ms tasks, 4 slots per node, 10 s: tasks/s
#     is the cluster's capacity, ideally 40 per node.
# Prints one line per run; CPU per task is also split into the nodes (and
# their workers), PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/taskwire}")
rounds=${2:-3}
scripts/services.sh >/dev/null
pg=postgres://postgres@127.0.0.1:5432
redis=redis://127.0.0.1:6379
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
hz=$(getconf CLK_TCK)

# CPU ticks (user + system) so far of the processes that serve, as
# "total nodes postgres redis": the nodes and their workers (taskwire, but
# not `taskwire bench`; BullMQ's node processes), PostgreSQL, Redis.
serving_ticks() {
  python3 - <<'PY'
import os
parts = {"nodes": 0, "postgres": 0, "redis": 0}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm not in ("taskwire", "postgres", "redis-server", "node"):
            continue
        if comm == "node":
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"bullmq-node" not in f.read():
                    continue
        if comm == "taskwire":
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"\0bench\0" in f.read():
                    continue
        fields = stat[stat.rindex(")") + 2 :].split()
        part = {"postgres": "postgres", "redis-server": "redis"}.get(comm, "nodes")
        parts[part] += int(fields[11]) + int(fields[12])
    except (OSError, ValueError):
        pass
print(sum(parts.values()), parts["nodes"], parts["postgres"], parts["redis"])
PY
}

# Starts a server with ARGS; sets `port` to its port.
start() {
  local log=$tmp/server-$RANDOM.log
  "$bin" serve --addr 127.0.0.1:0 --site-root /nonexistent "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    if grep -q "taskwire listening on" "$log"; then
      port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f3)
      return
    fi
    sleep 0.05
  done
  echo "server did not start: $(tail -3 "$log")" >&2
  exit 1
}

stop_all() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

# Runs the load on every port at once, split evenly; prints
# "tasks_per_s ok errors".
load() {
  local n=$# i=0 port
  local -a gen=()
  for port in "$@"; do
    "$bin" bench --url "http://127.0.0.1:$port" --json "${load_args[@]}" \
      --clients $((clients / n)) >"$tmp/gen-$i.json" 2>"$tmp/gen-$i.err" &
    gen+=($!)
    i=$((i + 1))
  done
  wait "${gen[@]}" || { cat "$tmp"/gen-*.err >&2; exit 1; }
  for ((i = 0; i < n; i++)); do tail -1 "$tmp/gen-$i.json"; done |
    node -e 'let t=0,ok=0,err=0;for(const l of require("fs").readFileSync(0,"utf8").trim().split("\n")){const j=JSON.parse(l);t+=j.throughput_per_s;ok+=j.ok;err+=j.errors+(j.tasks-j.ok-j.errors)}console.log(Math.round(t),ok,err)'
}

# One measured run of SERVER (1node-durable, or Nnodes) under the load.
run() {
  local what=$1 nodes=$2
  shift 2
  local -a ports=()
  if [[ $what == durable ]]; then
    start --workers 1 "$@"
    ports+=("$port")
  elif [[ $what == bullmq ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    WORKERS=1 "$BULLMQ/start.sh" --port "$port" >"$tmp/bullmq.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 200); do
      curl -s "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling" >/dev/null && break
      sleep 0.05
    done
    ports+=("$port")
  else
    local db="tw_bench_$RANDOM$RANDOM"
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
    for ((k = 0; k < nodes; k++)); do
      start --cluster --database-url "$pg/$db" --redis-url "$redis" \
        --redis-prefix "$db" --workers 1 "$@"
      ports+=("$port")
    done
  fi
  sleep 1
  local -a before after
  local result
  read -ra before <<<"$(serving_ticks)"
  result=$(load "${ports[@]}")
  read -ra after <<<"$(serving_ticks)"
  stop_all
  [[ $what == cluster ]] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
  read -r tps ok errors <<<"$result"
  local -a us=()
  for i in 0 1 2 3; do
    us+=($(((after[i] - before[i]) * 1000000 / hz / (ok > 0 ? ok : 1))))
  done
  echo "$scenario $what $nodes: tasks/s $tps ok $ok errors $errors serving_cpu_us_per_task ${us[0]}" \
    "(nodes ${us[1]} postgres ${us[2]} redis ${us[3]})"
}

# ONLY=a or ONLY=s runs one scenario; NODES="1 2" runs only those cluster
# sizes (and not the single-node durable line).
for ((r = 1; r <= rounds; r++)); do
  if [[ ${ONLY:-a} == a ]]; then
    scenario=a clients=20
    load_args=(--inflight 50 --tasks 60000 --kind echo)
    [[ -z ${NODES:-} ]] && run durable 1
    [[ -n ${BULLMQ:-} ]] && run bullmq 1
    for n in ${NODES:-1 2 3}; do run cluster "$n"; done
  fi
  if [[ ${ONLY:-s} == s ]]; then
    # 24 in flight: enough for every slot of 3 nodes, few enough that the
    # last ones drain in well under a second.
    scenario=s clients=12
    load_args=(--inflight 2 --duration-s 10 --kind sleep --input '{"ms":100}')
    for n in ${NODES:-1 2 3}; do run cluster "$n" --io-slots 4; done
  fi
done
