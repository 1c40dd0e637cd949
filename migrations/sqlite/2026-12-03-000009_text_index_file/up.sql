-- The free-text index moves to a file of its own (src/db/text_index.rs):
-- written in the event's transaction, its ~50 µs an event halved batch
-- ingest. It is now written behind the log by the server's own thread, in
-- `<database>.search` (attached as `search`), which holds the id of the last
-- event indexed; searches test the events after it with instr(). The
-- trigger-kept index in this file goes, and the server fills the new one
-- from the first event.
DROP TRIGGER IF EXISTS events_text_insert;
DROP TRIGGER events_text_update;
DROP TABLE events_text_vocab;
DROP TABLE events_text;
