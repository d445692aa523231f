-- v1.1 delays and retries: a task may be `scheduled` until its `run_at`.
-- Any node promotes the due ones to `queued` (see server/src/cluster/db/due.rs).

ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN
    ('scheduled', 'waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out'));

-- When it may run from: as submitted, or a retry's backoff (the body keeps
-- the submitted one; this column wins when the task is read back).
ALTER TABLE tasks ADD COLUMN run_at timestamptz;

-- Promotions walk this in time order. Partial, so it holds only tasks
-- still waiting for their time.
CREATE INDEX tasks_scheduled ON tasks (run_at) WHERE status = 'scheduled';

-- `waiting` (for the tasks named in `after`) is allowed above; counted over
-- this index, so `stats` reads no finished row.
CREATE INDEX tasks_waiting ON tasks (id) WHERE status = 'waiting';
