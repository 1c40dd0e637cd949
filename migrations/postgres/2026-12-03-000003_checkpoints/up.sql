-- Signed checkpoints of the log (issue 13): each a C2SP signed note of the
-- tree head at one size, with the tree's right edge at that size (the heads
-- of its perfect subtrees, hex, comma-separated) so that the next checkpoint
-- costs only the leaves added since. Kept, append-only.
CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    frontier TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TRIGGER checkpoints_refuse_update_delete BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION auditdesk_refuse_event_change();
CREATE TRIGGER checkpoints_refuse_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION auditdesk_refuse_event_change();
