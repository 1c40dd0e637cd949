-- Free text (CONTRACT.md, "Free text and the search bar"), issue 12.
-- search_doc is the text `q` is matched against, written by the application
-- with every event: the target, user, email, resource id, request id and the
-- diff's field names and non-secret values, case-folded in Rust (the same on
-- both backends) and joined by U+001F, which no search term may hold. NULL
-- only on events stored before this migration, until the application's start
-- fills them in (events_unsearched finds them).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE events ADD COLUMN search_doc TEXT;
CREATE INDEX events_unsearched ON events (id) WHERE search_doc IS NULL;
-- A trigram index: `search_doc LIKE '%term%'` is a bitmap index scan.
CREATE INDEX events_search_doc ON events USING gin (search_doc gin_trgm_ops);

-- Events stay append-only: an UPDATE may only fill in a NULL search_doc (the
-- start's backfill), leaving every other column as it was.
CREATE FUNCTION auditdesk_refuse_event_update() RETURNS trigger AS $$
BEGIN
    IF OLD.search_doc IS NULL
        AND (to_jsonb(NEW) - 'search_doc') = (to_jsonb(OLD) - 'search_doc') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % is refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER events_refuse_update_delete ON events;
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION auditdesk_refuse_event_update();
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION auditdesk_refuse_event_change();
