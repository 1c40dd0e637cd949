DROP TRIGGER events_refuse_search_doc_update;
DROP TRIGGER events_refuse_update;
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: UPDATE is refused');
END;
DROP TRIGGER events_text_update;
DROP TRIGGER IF EXISTS events_text_insert;
DROP TABLE events_text;
DROP INDEX IF EXISTS events_unsearched;
ALTER TABLE events DROP COLUMN search_doc;
