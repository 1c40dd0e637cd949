-- The log position of every stored event (issue 13): one total order in which
-- events were committed, 0, 1, 2, ... without gaps, and the hash of each
-- event's leaf (its NDJSON export line, v1), from which the Merkle tree over
-- the log is built. Append-only like the events.
CREATE TABLE log_entries (
    position BIGINT PRIMARY KEY CHECK (position >= 0),
    event_id BIGINT NOT NULL UNIQUE REFERENCES events (id),
    leaf_hash TEXT NOT NULL
);
CREATE TRIGGER log_entries_refuse_update_delete BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION auditdesk_refuse_event_change();
CREATE TRIGGER log_entries_refuse_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION auditdesk_refuse_event_change();

-- The next position to give: one row, locked (SELECT ... FOR UPDATE) by each
-- sealing transaction until it commits, so that positions follow the order of
-- commits across every instance.
-- sealed_below: events stored before this migration (ids below it) get their
-- positions at the next start, once; 0 when that is done. An event without a
-- position that is not one of them was slipped in past the application, and
-- `auditdesk verify` names it: it is never sealed.
CREATE TABLE log_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_position BIGINT NOT NULL,
    sealed_below BIGINT NOT NULL
);
INSERT INTO log_state (id, next_position, sealed_below)
    SELECT 1, 0, COALESCE(MAX(id), 0) + 1 FROM events;
