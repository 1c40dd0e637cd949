-- SQLite: log_entries keyed by the position itself (INTEGER PRIMARY KEY, the
-- table's rowid), not by a hidden rowid plus an index on the position: one
-- B-tree less to write for every event stored (bench/README.md, "Tenth
-- sitting"). The same columns, checks and append-only triggers; the rows are
-- copied in position order.
CREATE TABLE log_entries_by_position (
    position INTEGER PRIMARY KEY NOT NULL CHECK (position >= 0),
    event_id BIGINT NOT NULL UNIQUE REFERENCES events (id),
    leaf_hash TEXT NOT NULL
);
INSERT INTO log_entries_by_position (position, event_id, leaf_hash)
    SELECT position, event_id, leaf_hash FROM log_entries ORDER BY position;
DROP TABLE log_entries;
ALTER TABLE log_entries_by_position RENAME TO log_entries;
CREATE TRIGGER log_entries_refuse_update BEFORE UPDATE ON log_entries
BEGIN
    SELECT RAISE(ABORT, 'log positions are append-only: UPDATE is refused');
END;
CREATE TRIGGER log_entries_refuse_delete BEFORE DELETE ON log_entries
BEGIN
    SELECT RAISE(ABORT, 'log positions are append-only: DELETE is refused');
END;
