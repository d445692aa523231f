-- A node may start the tasks it was just submitted (see
-- server/src/cluster/db/submit.rs): they are inserted `running` instead of
-- being claimed by a second statement. Such an insert is ordered with
-- pauses as a claim is (server/src/cluster/db/pause.rs): it holds the
-- pause lock shared, and reads `paused_kinds` after it took it. A
-- volatile function's queries each take a new snapshot, so this one sees
-- a pause that committed while it waited for the lock, though the insert
-- calling it took its snapshot before.
--
-- Of `kinds`, those no pause holds back now; no lock is taken for none.
CREATE FUNCTION tasks_startable_kinds(kinds text[], lock_a integer, lock_b integer)
RETURNS text[] LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF cardinality(kinds) = 0 THEN
        RETURN kinds;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(lock_a, lock_b);
    RETURN ARRAY(SELECT k FROM unnest(kinds) AS k
                 WHERE NOT EXISTS (SELECT 1 FROM paused_kinds p WHERE p.kind = k));
END
$$;
