-- v1.1 concurrency keys: tasks sharing a key run at most their limit at
-- once, cluster-wide (see server/src/cluster/db.rs, `claim`).
ALTER TABLE tasks ADD COLUMN concurrency_key text;
ALTER TABLE tasks ADD COLUMN concurrency_limit integer NOT NULL DEFAULT 1;

-- The running tasks of each key, counted by claims (the owner is set
-- exactly while running).
CREATE INDEX tasks_running_keys ON tasks (concurrency_key)
    WHERE owner IS NOT NULL AND concurrency_key IS NOT NULL;
