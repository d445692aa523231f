#!/usr/bin/env bash
# Costs as the work grows, as curves, for the default durable store and for
# `--memory`, each run on a fresh server (and data directory), every output
# verified by `taskwire bench`:
#
#   (1) tasks/s of echo tasks with 10, 100, 1,000 and 10,000 sockets,
#       closed loop, 1,000 tasks in flight in all (1000/N per socket, at
#       least 1: 10,000 at 10,000 sockets);
#   (2) result latency p50 / p99 under an open-loop load (`--rate`) of 50 %,
#       75 % and 90 % of the peak: the 100-socket run of (1) of the same
#       round and store, run right before. 100 sockets, up to 1,000 in
#       flight each.
#
#   scripts/bench-curves.sh [BIN] [ROUNDS] [SECONDS]   (BIN: a release build)
#   SVG=docs/bench-curves.svg scripts/bench-curves.sh ...  (also draws the curves)
#
# Rounds interleave the stores (durable, memory) run by run. Prints one line
# per run, then markdown tables of medians over the rounds; every ratio is
# taken within a round, then its median. CPU is user + system: the server
# with its worker processes, the bench, and everything else on the machine
# ("others", from /proc/stat) per second of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/taskwire}")
rounds=${2:-3}
secs=${3:-8}
# 10,000 sockets need as many descriptors in the bench and in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < 10300)); then
  echo "bench-curves: open-file limit $(ulimit -n) is too low for 10,000 sockets" >&2
  exit 1
fi
tmp=$(mktemp -d)
server=
data=
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; [[ -n $data ]] && rm -rf "$data"; rm -rf "$tmp"' EXIT
hz=$(getconf CLK_TCK)

# "SERVER MACHINE THREADS": CPU ticks so far (user + system) of process
# SERVER and its children (the worker processes), of the whole machine, and
# of each of the server's own threads (tid:ticks,...).
ticks() {
  python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
server = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2 :].split()
        if pid == root or fields[1] == root:
            server += int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        pass
with open("/proc/stat") as f:
    cpu = [int(x) for x in f.readline().split()[1:]]
threads = []
for tid in os.listdir(f"/proc/{root}/task"):
    try:
        with open(f"/proc/{root}/task/{tid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2 :].split()
        threads.append(f"{tid}:{int(fields[11]) + int(fields[12])}")
    except (OSError, ValueError, IndexError):
        pass
# user nice system (idle iowait) irq softirq steal
print(server, sum(cpu[:3]) + sum(cpu[5:8]), ",".join(threads))
PY
}

# Kilobytes of a /proc/PID/status field (VmRSS, VmHWM) of the server.
status_kb() {
  awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

# run ROUND STORE CLIENTS INFLIGHT [RATE]: one bench run on a fresh server;
# appends its figures to $tmp/runs as one JSON object.
run() {
  local round=$1 store=$2 clients=$3 inflight=$4 rate=${5:-}
  local log=$tmp/server.log flags=(--memory)
  if [[ $store == durable ]]; then
    data=$(mktemp -d)
    flags=(--data-dir "$data")
  fi
  "$bin" serve --addr 127.0.0.1:0 --site-root /nonexistent "${flags[@]}" >"$log" 2>&1 &
  server=$!
  local t0=$SECONDS
  until grep -q "taskwire listening on" "$log"; do
    if ((SECONDS - t0 > 60)) || ! kill -0 "$server" 2>/dev/null; then
      echo "bench-curves: the $store server did not start:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.05
  done
  local url
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)
  local idle_kb before after status=0
  idle_kb=$(status_kb "$server" VmRSS)
  before=$(ticks "$server")
  local extra=()
  [[ -n $rate ]] && extra=(--rate "$rate")
  /usr/bin/time -f '%e %U %S' -o "$tmp/time" \
    "$bin" bench --url "$url" --clients "$clients" --inflight "$inflight" \
    --duration-s "$secs" --deadline-ms 20000 --kind echo --json "${extra[@]}" \
    >"$tmp/bench.json" 2>"$tmp/bench.err" || status=$?
  after=$(ticks "$server")
  local hwm_kb load
  hwm_kb=$(status_kb "$server" VmHWM)
  load=$(cut -d' ' -f1 /proc/loadavg)
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
  if [[ -n $data ]]; then
    rm -rf "$data"
    data=
  fi
  if ! tail -1 "$tmp/bench.json" | grep -q '^{'; then
    echo "bench failed (exit $status):" >&2
    cat "$tmp/bench.err" >&2
    exit 1
  fi
  tail -1 "$tmp/bench.json" | node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const [round, store, rate, status, before, after, time, idleKb, hwmKb, load, hz] = process.argv.slice(1);
    const [s0, m0, t0] = before.split(" ");
    const [s1, m1, t1] = after.split(" ");
    const threads = (t) => new Map(t.split(",").map((x) => x.split(":").map(Number)));
    const was = threads(t0);
    // The server thread that worked most (its event loop, or the store).
    const busiest = Math.max(0, ...[...threads(t1)].map(([tid, ticks]) => ticks - (was.get(tid) ?? 0))) / hz;
    // time(1) puts "Command exited with non-zero status" first if so.
    const [wall, user, sys] = time.trim().split("\n").pop().split(/\s+/).map(Number);
    // Cores: CPU seconds per second of the bench process (its connects included).
    const server = (s1 - s0) / hz, bench = user + sys, machine = (m1 - m0) / hz;
    const r = {
      round: Number(round), store, clients: j.clients, connected: j.connected, inflight: j.inflight,
      rate: rate ? Number(rate) : null, tput: j.throughput_per_s, tasks: j.tasks, ok: j.ok,
      bad: j.tasks - j.ok, lost: j.lost, codes: j.error_codes, exit: Number(status), secs: j.duration_s,
      r50: j.result_p50_ms, r99: j.result_p99_ms, a99: j.ack_p99_ms,
      lag50: j.send_lag_p50_ms ?? null, lag99: j.send_lag_p99_ms ?? null,
      server_us: Math.round((server * 1e6) / Math.max(j.ok, 1)),
      bench_us: Math.round((bench * 1e6) / Math.max(j.ok, 1)),
      server_cores: +(server / wall).toFixed(2), bench_cores: +(bench / wall).toFixed(2),
      thread_cores: +(busiest / wall).toFixed(2),
      others_cores: +(Math.max(machine - server - bench, 0) / wall).toFixed(2),
      idle_mb: +(idleKb / 1024).toFixed(1), hwm_mb: +(hwmKb / 1024).toFixed(1), load: Number(load),
    };
    console.log(JSON.stringify(r));
  ' "$round" "$store" "$rate" "$status" "$before" "$after" "$(cat "$tmp/time")" "$idle_kb" "$hwm_kb" "$load" "$hz" \
    | tee -a "$tmp/runs" >&2
}

for ((r = 1; r <= rounds; r++)); do
  for n in 10 1000 10000; do
    for store in durable memory; do
      run "$r" "$store" "$n" $((1000 / n > 1 ? 1000 / n : 1))
    done
  done
  # The peak (100 sockets x 10) right before the runs at a share of it.
  for store in durable memory; do
    run "$r" "$store" 100 10
    peak=$(tail -1 "$tmp/runs" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).tput)')
    for share in 50 75 90; do
      run "$r" "$store" 100 1000 $((peak * share / 100))
    done
  done
done

node - "$tmp/runs" "$rounds" "$secs" "${SVG:-}" <<'JS'
const [file, rounds, secs, svg] = process.argv.slice(2);
const runs = require("fs").readFileSync(file, "utf8").trim().split("\n").map(JSON.parse);
const median = (xs) => {
  const s = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
};
const fmt = (x, d = 0) => (x === null ? "–" : x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }));
const pick = (f) => runs.filter(f);
const bad = runs.filter((x) => x.bad > 0 || x.exit !== 0 || x.connected !== x.clients);
const stores = ["durable", "memory"];
const closed = (store, n) => pick((x) => x.store === store && x.clients === n && x.rate === null);
const peakOf = (store, round) => closed(store, 100).find((x) => x.round === round);

console.log(`Median of ${rounds} rounds, ${secs} s per run; load average (1 min) during the runs ${fmt(median(runs.map((x) => x.load)), 2)} (${fmt(Math.min(...runs.map((x) => x.load)), 2)}–${fmt(Math.max(...runs.map((x) => x.load)), 2)}); CPU of other processes ${fmt(median(runs.map((x) => x.others_cores)), 2)} cores (median).`);
console.log();
console.log("| sockets × in flight | durable tasks/s | ÷ 10 sockets | memory tasks/s | ÷ 10 sockets | durable ÷ memory | server CPU µs/task (d / m) | bench CPU µs/task (d / m) | server's busiest thread, cores (d / m) | server peak RSS MB (d / m) |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const n of [10, 100, 1000, 10000]) {
  const cells = [];
  for (const store of stores) {
    const xs = closed(store, n);
    const ratio = median(xs.map((x) => x.tput / closed(store, 10).find((y) => y.round === x.round).tput));
    cells.push(fmt(median(xs.map((x) => x.tput))), `${fmt(ratio, 2)}×`);
  }
  const dm = median(closed("durable", n).map((x) => x.tput / closed("memory", n).find((y) => y.round === x.round).tput));
  const both = (k, d = 0) => stores.map((s) => fmt(median(closed(s, n).map((x) => x[k])), d)).join(" / ");
  const w = Math.max(1, Math.floor(1000 / n));
  console.log(`| ${fmt(n)} × ${w} | ${cells.join(" | ")} | ${fmt(dm, 2)} | ${both("server_us")} | ${both("bench_us")} | ${both("thread_cores", 2)} | ${both("hwm_mb")} |`);
}
console.log();
console.log("| store | load | target tasks/s (÷ peak) | achieved tasks/s | result p50 ms | result p99 ms | result p99 by round, ms | ack p99 ms | send lag p50 / p99 ms | cores: server (busiest thread) / bench / others |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const store of stores) {
  const peaks = closed(store, 100);
  const row = (label, xs, target) => {
    const m = (k, d) => fmt(median(xs.map((x) => x[k])), d);
    const lag = xs[0].rate === null ? "–" : `${m("lag50", 2)} / ${m("lag99", 2)}`;
    const byRound = [...xs].sort((a, b) => a.round - b.round).map((x) => fmt(x.r99, 0)).join(" / ");
    console.log(`| ${store} | ${label} | ${target} | ${m("tput")} | ${m("r50", 2)} | ${m("r99", 2)} | ${byRound} | ${m("a99", 2)} | ${lag} | ${m("server_cores", 2)} (${m("thread_cores", 2)}) / ${m("bench_cores", 2)} / ${m("others_cores", 2)} |`);
  };
  row("peak, closed loop (100 × 10)", peaks, "–");
  for (const share of [50, 75, 90]) {
    const xs = pick((x) => x.store === store && x.rate !== null && Math.abs(x.rate / peakOf(store, x.round).tput - share / 100) < 0.01);
    const achieved = median(xs.map((x) => x.tput / x.rate));
    row(`${share} % of peak, open loop (100 sockets)`, xs, `${fmt(median(xs.map((x) => x.rate)))} (${share} %; achieved ${fmt(achieved, 2)}× target)`);
  }
}
if (bad.length) {
  console.log();
  console.log(`Runs with tasks not ok or sockets not connected: ${bad.length}`);
  for (const x of bad) console.log(JSON.stringify(x));
}
if (svg) require("fs").writeFileSync(svg, draw());

// Two panels: tasks/s by sockets (log x), result latency by load (log y).
function draw() {
  const W = 360, H = 260, L = 62, R = 16, T = 30, B = 44;
  const colour = { durable: "#1f6fb4", memory: "#d9730d" };
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" font-family="sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`];
  const text = (x, y, t, a = "middle", extra = "") => out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" text-anchor="${a}" ${extra}>${t}</text>`);
  const line = (x1, y1, x2, y2, style) => out.push(`<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" ${style}/>`);
  const path = (pts, style) => out.push(`<polyline fill="none" points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}" ${style}/>`, ...pts.map(([x, y]) => `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="2.5" ${style.replace("stroke=", "fill=")}/>`));
  const frame = (ox, title, xlabel, ylabel) => {
    line(ox + L, H - B, ox + W - R, H - B, 'stroke="#444"');
    line(ox + L, T, ox + L, H - B, 'stroke="#444"');
    text(ox + (L + W - R) / 2, 16, title, "middle", 'font-weight="bold"');
    text(ox + (L + W - R) / 2, H - 8, xlabel);
    text(ox + 14, (T + H - B) / 2, ylabel, "middle", `transform="rotate(-90 ${ox + 14} ${(T + H - B) / 2})"`);
  };
  // Panel 1.
  const ns = [10, 100, 1000, 10000];
  const tp = (store, n) => median(closed(store, n).map((x) => x.tput));
  const most = Math.max(...stores.flatMap((s) => ns.map((n) => tp(s, n))));
  const unit = 10 ** Math.floor(Math.log10(most / 4));
  const step = [1, 2, 5, 10].map((k) => k * unit).find((k) => most / k <= 5);
  const top = Math.ceil(most / step) * step;
  const x1 = (n) => L + 30 + ((Math.log10(n) - 1) / 3) * (W - L - R - 60);
  const y1 = (v) => H - B - (v / top) * (H - B - T);
  frame(0, "echo tasks/s by sockets (1,000 in flight)", "sockets (× in flight each)", "tasks/s");
  for (let v = 0; v <= top; v += step) {
    line(L - 4, y1(v), L, y1(v), 'stroke="#444"');
    line(L, y1(v), W - R, y1(v), 'stroke="#ddd"');
    text(L - 6, y1(v) + 4, fmt(v), "end");
  }
  ns.forEach((n) => text(x1(n), H - B + 14, `${fmt(n)} × ${Math.max(1, Math.floor(1000 / n))}`));
  for (const s of stores) path(ns.map((n) => [x1(n), y1(tp(s, n))]), `stroke="${colour[s]}" stroke-width="2"`);
  // Panel 2.
  const loads = [50, 75, 90];
  const lat = (store, share, k) =>
    median(pick((x) => x.store === store && x.rate !== null && Math.abs(x.rate / peakOf(store, x.round).tput - share / 100) < 0.01).map((x) => x[k]));
  const vals = stores.flatMap((s) => loads.flatMap((l) => [lat(s, l, "r50"), lat(s, l, "r99")]));
  const lo = Math.floor(Math.log10(Math.min(...vals))), hi = Math.ceil(Math.log10(Math.max(...vals)));
  const x2 = (l) => W + L + 40 + ((l - 50) / 40) * (W - L - R - 80);
  const y2 = (v) => H - B - ((Math.log10(v) - lo) / (hi - lo)) * (H - B - T);
  frame(W, "result latency, open loop (100 sockets)", "load, % of the closed-loop peak", "ms (log)");
  for (let e = lo; e <= hi; e++) {
    line(W + L - 4, y2(10 ** e), W + L, y2(10 ** e), 'stroke="#444"');
    line(W + L, y2(10 ** e), 2 * W - R, y2(10 ** e), 'stroke="#ddd"');
    text(W + L - 6, y2(10 ** e) + 4, fmt(10 ** e, e < 0 ? -e : 0), "end");
  }
  loads.forEach((l) => text(x2(l), H - B + 14, `${l} %`));
  for (const s of stores) {
    path(loads.map((l) => [x2(l), y2(lat(s, l, "r99"))]), `stroke="${colour[s]}" stroke-width="2"`);
    path(loads.map((l) => [x2(l), y2(lat(s, l, "r50"))]), `stroke="${colour[s]}" stroke-width="1.5" stroke-dasharray="4 3"`);
  }
  // Legend, where the curves are low.
  let ly = H - B - 34;
  for (const s of stores) {
    line(L + 10, ly, L + 30, ly, `stroke="${colour[s]}" stroke-width="2"`);
    text(L + 34, ly + 4, s === "memory" ? "--memory" : "durable (default)", "start");
    ly += 14;
  }
  line(W + L + 10, T + 4, W + L + 30, T + 4, 'stroke="#444" stroke-width="2"');
  text(W + L + 34, T + 8, "p99", "start");
  line(W + L + 64, T + 4, W + L + 84, T + 4, 'stroke="#444" stroke-width="1.5" stroke-dasharray="4 3"');
  text(W + L + 88, T + 8, "p50", "start");
  out.push("</svg>");
  return out.join("\n") + "\n";
}
JS
