-- SQLite's free-text index moved to a file of its own; PostgreSQL's GIN index
-- (events_search_doc) stays in the event's transaction. Nothing to do here.
SELECT 1;
