-- v1.1 paused kinds: claims skip the queued tasks of a kind listed here
-- (see server/src/cluster/db/pause.rs).
CREATE TABLE paused_kinds (
    kind      text PRIMARY KEY,
    paused_at timestamptz NOT NULL DEFAULT now()
);

-- Each node's queue waits and run times of the last minutes, by kind, as
-- of its last heartbeat: `stats.kinds` merges every node's.
ALTER TABLE nodes ADD COLUMN latencies jsonb NOT NULL DEFAULT '{}';
