DROP TRIGGER events_refuse_delete ON events;
DROP TRIGGER events_refuse_update ON events;
DROP FUNCTION auditdesk_refuse_event_update();
CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION auditdesk_refuse_event_change();
DROP INDEX IF EXISTS events_search_doc;
DROP INDEX IF EXISTS events_unsearched;
ALTER TABLE events DROP COLUMN search_doc;
