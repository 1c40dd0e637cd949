-- Nothing on PostgreSQL: its log_entries is keyed by position already (the SQLite twin of this
-- migration rebuilds that table around its rowid).
SELECT 1;
