-- v1.1 dependencies: a task `waiting` for the tasks it names in `after`.
-- See server/src/cluster/db/deps.rs for how they are resolved.

-- Set on a task once some unfinished task names it (under its row lock,
-- so the statement that finishes it reads it): its end is then followed
-- by a check of its dependents.
ALTER TABLE tasks ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

-- Who waits for whom: each waiting task's `after`, in order.
CREATE TABLE task_deps (
    task uuid NOT NULL,
    n    integer NOT NULL,
    dep  uuid NOT NULL,
    PRIMARY KEY (task, n)
);
CREATE INDEX task_deps_dep ON task_deps (dep);

-- Work for any node, written in the transaction that makes it due: a task
-- with dependents ended (look at them again), or a task came due and now
-- waits for others (look at it again). Whoever takes a row deletes it in
-- the transaction that does the work, so none is lost with a node.
CREATE TABLE dependency_checks (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task uuid NOT NULL
);
