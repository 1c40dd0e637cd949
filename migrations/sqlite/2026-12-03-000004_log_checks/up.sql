-- The server's background check of the log (issue 13): positions below
-- verified_size were found whole, and frontier is the tree's right edge
-- there (hex subtree heads, comma-separated), so each check reads only the
-- positions added since. problems: what the last check found wrong, one per
-- line, empty when it passed; a failed check does not move verified_size,
-- so the next one looks again. One row; checked_at NULL until the first check.
CREATE TABLE log_checks (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    verified_size BIGINT NOT NULL,
    frontier TEXT NOT NULL,
    checked_at TIMESTAMP,
    problems TEXT NOT NULL
);
INSERT INTO log_checks (id, verified_size, frontier, checked_at, problems)
    VALUES (1, 0, '', NULL, '');
