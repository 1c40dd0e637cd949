-- Nothing on PostgreSQL: the SQLite twin serves its free-text reading.
SELECT 1;
