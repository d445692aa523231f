-- Cluster mode's shared state: every task, the live nodes, and the counts
-- of finished tasks. See server/src/cluster/db.rs for how each is used.

CREATE TABLE nodes (
    id         text PRIMARY KEY,
    addr       text NOT NULL,
    started_at timestamptz NOT NULL,
    -- Set from the database's clock only, so leases never compare two
    -- machines' clocks.
    heartbeat  timestamptz NOT NULL,
    workers    jsonb NOT NULL DEFAULT '[]',
    running    bigint NOT NULL DEFAULT 0
);

-- fillfactor: room on each page for updates that touch no indexed column
-- (a running task's worker and progress) to stay on the page (HOT).
CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    -- Submission order across the cluster.
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    kind             text NOT NULL,
    priority         integer NOT NULL,
    max_attempts     integer NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- The node running the current attempt. A running task always has a
    -- live node row (the foreign key): a node cannot leave, or be reaped,
    -- without giving back its tasks, so none is ever stranded `running`.
    owner            text REFERENCES nodes (id),
    worker           text,
    -- Set by a cancel while it runs: whoever gives it back (its owner, or
    -- a reaper) ends it `cancelled` instead of queueing it again.
    cancel_requested boolean NOT NULL DEFAULT false,
    -- json, not jsonb: inputs and outputs keep their keys' order.
    progress         json,
    output           json,
    error            json,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- The task as submitted, never updated: the columns above hold
    -- everything that changed since, and win when it is read back.
    body             json NOT NULL,
    CHECK ((status = 'running') = (owner IS NOT NULL))
) WITH (fillfactor = 90);

-- Claims walk this in order: per kind, highest priority first, then
-- submission order. Partial, so finished tasks cost it nothing.
CREATE INDEX tasks_queued ON tasks (kind, priority DESC, seq) WHERE status = 'queued';

-- The running tasks by node (owner is set exactly while running): reaps,
-- the running count, and the foreign key's check when a node row goes.
CREATE INDEX tasks_owner ON tasks (owner) WHERE owner IS NOT NULL;

-- How many tasks ended in each final status. Counting them in `tasks`
-- would read every finished row; instead each transaction that finishes
-- tasks adds to one of 16 shards (its backend's pid mod 16), so nodes
-- finishing tasks at once rarely wait on the same row. A read sums them.
CREATE TABLE finished_counts (
    status text NOT NULL,
    shard  integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (status, shard)
);
