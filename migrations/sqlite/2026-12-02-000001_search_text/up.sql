-- Free text (CONTRACT.md, "Free text and the search bar"), issue 12.
-- search_doc is the text `q` is matched against, written by the application
-- with every event: the target, user, email, resource id, request id and the
-- diff's field names and non-secret values, case-folded in Rust (the same on
-- both backends) and joined by U+001F, which no search term may hold. NULL
-- only on events stored before this migration, until the application's start
-- fills them in (events_unsearched finds them).
ALTER TABLE events ADD COLUMN search_doc TEXT;
CREATE INDEX events_unsearched ON events (id) WHERE search_doc IS NULL;

-- A trigram index of search_doc (external content: the text itself stays in
-- events). detail=none keeps the index small (no positions): a GLOB against
-- it is answered from the trigrams and checked against the stored text.
CREATE VIRTUAL TABLE events_text USING fts5(
    search_doc,
    content = 'events',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1',
    detail = none
);
-- Kept in the event's own transaction, on every write path.
CREATE TRIGGER events_text_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_text (rowid, search_doc) VALUES (new.id, new.search_doc);
END;
CREATE TRIGGER events_text_update AFTER UPDATE OF search_doc ON events BEGIN
    INSERT INTO events_text (events_text, rowid, search_doc) VALUES ('delete', old.id, old.search_doc);
    INSERT INTO events_text (rowid, search_doc) VALUES (new.id, new.search_doc);
END;

-- Events stay append-only: an UPDATE may only fill in a NULL search_doc (the
-- start's backfill). Every other column is named here, so an UPDATE that
-- sets any of them is refused; a migration adding a column adds it here.
DROP TRIGGER events_refuse_update;
CREATE TRIGGER events_refuse_update BEFORE UPDATE OF
    id, event_uuid, time, actor_username, actor_email, action, resource_type,
    resource_id, resource_target, diff, ip, user_agent, status_code, request_id,
    content_hash, received_at
ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: UPDATE is refused');
END;
CREATE TRIGGER events_refuse_search_doc_update BEFORE UPDATE OF search_doc ON events
WHEN old.search_doc IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: UPDATE is refused');
END;
