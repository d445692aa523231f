-- Recurring schedules (see server/src/schedules and
-- server/src/cluster/db/schedules.rs). Every node reads them; a firing is
-- claimed by a compare-and-set on next_run_at, so one node only fires it.

CREATE TABLE schedules (
    name         text PRIMARY KEY,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    -- json, not jsonb: the task's input keeps its keys' order.
    task         json NOT NULL,
    paused       boolean NOT NULL,
    next_run_at  timestamptz,
    -- The last firing's time and task.
    last_run_at  timestamptz,
    last_task_id uuid
);
