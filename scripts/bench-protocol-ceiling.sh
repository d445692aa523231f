#!/usr/bin/env bash
# The ceiling of bench (a) for Taskwire's own messages: the bench kit's
# limit-echo (no queue, no store, no workers) made to send what PROTOCOL.md
# asks of Taskwire for each task, and nothing else:
#
#   - the ack and `result` carry the v1.1 task object (its eight v1.1 fields
#     too), and the ack carries `deduplicated: false`;
#   - a `status` `running` push goes to the task's room before its `result`;
#   - `worker` is a worker's id ("local-2") rather than "inline".
#
# Only `task` is edited: `tasks` batches (bench (b)) are answered as before.
#
# The kit's load generator spends most of its CPU reading these messages, so
# this server shows how fast that generator can go against any server that
# keeps to the protocol. The kit itself is not changed: limit-echo is copied
# into OUT, edited there and built.
#
#   scripts/bench-protocol-ceiling.sh KIT OUT   (KIT: a copy of the bench kit
#                                               with its limit-echo built)
# then, from KIT:
#   ./compare.sh -r 3 -s "seed-node=..." -s "limit-echo=..." \
#     -s "protocol-ceiling=OUT/target/release/limit-echo --port {port}" \
#     -s "taskwire=..." -- --clients 20 --tasks 50000 --inflight 50 --kind echo
set -euo pipefail
kit=$(realpath "${1:?usage: bench-protocol-ceiling.sh KIT OUT}")
out=${2:?usage: bench-protocol-ceiling.sh KIT OUT}
rm -rf "$out"
cp -r "$kit/limit-echo" "$out"
rm -rf "$out/target"
python3 - "$out/src/main.rs" <<'EOF'
import sys

path = sys.argv[1]
src = open(path).read()
edits = [
    # The v1.1 fields every task object carries.
    ('"worker": null, "created_at": now, "started_at": null, "finished_at": null,\n    });',
     '"worker": null, "created_at": now, "started_at": null, "finished_at": null,\n'
     '        "run_at": null, "key": null, "after": [], "retry_on_failure": false, "backoff_ms": 1000,\n'
     '        "concurrency_key": null, "concurrency_limit": 1, "retry_of": null,\n    });'),
    ('done["worker"] = json!("inline");', 'done["worker"] = json!("local-2");'),
    # `deduplicated` on the ack, and `status` running before `result`.
    ('ack.send(&json!({"ok": true, "task": queued})).ok();\n'
     '                    s.within(id).emit("result", &done).await.ok();',
     'ack.send(&json!({"ok": true, "task": queued, "deduplicated": false})).ok();\n'
     '                    let running = json!({"task_id": id, "status": "running", "attempt": 1, "worker": "local-2"});\n'
     '                    s.within(id.clone()).emit("status", &running).await.ok();\n'
     '                    s.within(id).emit("result", &done).await.ok();'),
]
for old, new in edits:
    if src.count(old) != 1:
        sys.exit(f"bench-protocol-ceiling: limit-echo has changed; cannot find:\n{old}")
    src = src.replace(old, new)
open(path, "w").write(src)
EOF
(cd "$out" && cargo build --release --quiet)
echo "built $out/target/release/limit-echo"
