-- Back to the index kept in the event's transaction (2026-12-02-000001 and
-- 2026-12-03-000007), rebuilt from every event's search text.
CREATE VIRTUAL TABLE events_text USING fts5(
    search_doc,
    content = 'events',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1',
    detail = none
);
CREATE TRIGGER events_text_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_text (rowid, search_doc) VALUES (new.id, new.search_doc);
END;
CREATE TRIGGER events_text_update AFTER UPDATE OF search_doc ON events BEGIN
    INSERT INTO events_text (events_text, rowid, search_doc) VALUES ('delete', old.id, old.search_doc);
    INSERT INTO events_text (rowid, search_doc) VALUES (new.id, new.search_doc);
END;
CREATE VIRTUAL TABLE events_text_vocab USING fts5vocab(events_text, instance);
INSERT INTO events_text (events_text) VALUES ('rebuild');
