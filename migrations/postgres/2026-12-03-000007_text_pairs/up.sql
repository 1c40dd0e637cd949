-- Nothing on PostgreSQL: the SQLite twin adds a view of its FTS5 index.
SELECT 1;
