-- v1.1 idempotency keys: which task holds each key. A task holds its key
-- while unfinished and for the dedup window after it finished; a key whose
-- holder is out of its window passes to the next task submitted with it.
-- The primary key makes two submissions racing with one key create one
-- task (see server/src/cluster/db/submit.rs).
CREATE TABLE task_keys (
    key  text PRIMARY KEY,
    task uuid NOT NULL
);
