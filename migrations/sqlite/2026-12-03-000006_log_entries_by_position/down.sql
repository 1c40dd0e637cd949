CREATE TABLE log_entries_by_rowid (
    position BIGINT PRIMARY KEY NOT NULL CHECK (position >= 0),
    event_id BIGINT NOT NULL UNIQUE REFERENCES events (id),
    leaf_hash TEXT NOT NULL
);
INSERT INTO log_entries_by_rowid (position, event_id, leaf_hash)
    SELECT position, event_id, leaf_hash FROM log_entries ORDER BY position;
DROP TABLE log_entries;
ALTER TABLE log_entries_by_rowid RENAME TO log_entries;
CREATE TRIGGER log_entries_refuse_update BEFORE UPDATE ON log_entries
BEGIN
    SELECT RAISE(ABORT, 'log positions are append-only: UPDATE is refused');
END;
CREATE TRIGGER log_entries_refuse_delete BEFORE DELETE ON log_entries
BEGIN
    SELECT RAISE(ABORT, 'log positions are append-only: DELETE is refused');
END;
