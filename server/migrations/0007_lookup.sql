-- v1.1 lookups (see server/src/cluster/db/lookup.rs): `list` over every
-- task, newest first, each filter served by an index; and every attempt of
-- a task.

-- The idempotency key of each task (task_keys holds only the current
-- holder of each key); set at insert, never changed.
ALTER TABLE tasks ADD COLUMN key text;
UPDATE tasks SET key = body->>'key' WHERE body->>'key' IS NOT NULL;

-- Newest first, with or without a status or kind filter. A key filter is
-- exact or a prefix (a range of keys in byte order: COLLATE "C").
CREATE INDEX tasks_seq ON tasks (seq);
CREATE INDEX tasks_status_seq ON tasks (status, seq);
CREATE INDEX tasks_kind_seq ON tasks (kind, seq);
CREATE INDEX tasks_kind_status_seq ON tasks (kind, status, seq);
CREATE INDEX tasks_key_seq ON tasks (key COLLATE "C", seq) WHERE key IS NOT NULL;

-- Attempts that ended while their task went on: its worker was lost and it
-- was queued again, or it failed or timed out and waits for a retry. The
-- task row itself holds its current (or last) attempt. Removing a task
-- removes its attempts.
CREATE TABLE task_attempts (
    task        uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker      text,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome     text NOT NULL,
    error       json,
    PRIMARY KEY (task, attempt)
);

-- Recorded by the database whoever requeues the task (its node, or the
-- reaper that takes back a dead node's tasks), so no path forgets one. A
-- node that reschedules a failed attempt sends the attempt's error and
-- worker with the `scheduled` write (its running write may not have landed
-- yet); they are moved here and cleared from the task. A
-- task released without its attempt counted (a drain) records nothing.
CREATE FUNCTION tasks_record_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.started_at IS NOT NULL THEN
        INSERT INTO task_attempts (task, attempt, worker, started_at, finished_at, outcome, error)
        VALUES (
            OLD.id, OLD.attempt, coalesce(OLD.worker, NEW.worker), OLD.started_at,
            date_trunc('milliseconds', clock_timestamp()),
            CASE WHEN NEW.status = 'queued' THEN 'worker_lost'
                 WHEN NEW.error->>'code' = 'timed_out' THEN 'timed_out'
                 ELSE 'failed' END,
            CASE WHEN NEW.status = 'queued' THEN json_build_object(
                     'code', 'worker_lost',
                     'message', format('worker %s was lost on attempt %s',
                                       coalesce(OLD.worker, 'of node ' || OLD.owner), OLD.attempt))
                 ELSE NEW.error END)
        ON CONFLICT (task, attempt) DO NOTHING;
    END IF;
    NEW.error := NULL;
    NEW.worker := NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_attempt_ended BEFORE UPDATE OF status ON tasks
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status IN ('queued', 'scheduled')
          AND NEW.attempt = OLD.attempt)
    EXECUTE FUNCTION tasks_record_attempt();
