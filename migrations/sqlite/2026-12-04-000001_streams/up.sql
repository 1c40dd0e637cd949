-- Streams (issue 14, CONTRACT.md "Streams"): destinations every event is
-- forwarded to, at least once, in log-position order, each with the page's
-- filters. `next_position` is the first log position not yet acknowledged by
-- the destination: moved only after a batch is acknowledged, so a restart
-- resumes from it. The lease names the instance delivering the stream (one
-- at a time): another may take it once `lease_until` has passed.
-- AUTOINCREMENT (SQLite): a removed stream's id is never given to another,
-- so `stream-N` in the log names one stream.
CREATE TABLE streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('webhook', 'syslog')),
    target TEXT NOT NULL,
    secret TEXT,
    filter TEXT NOT NULL,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    next_position BIGINT NOT NULL DEFAULT 0 CHECK (next_position >= 0),
    delivered BIGINT NOT NULL DEFAULT 0,
    last_delivered_time TIMESTAMP,
    last_delivered_at TIMESTAMP,
    retrying_since TIMESTAMP,
    last_error TEXT,
    failed_at TIMESTAMP,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
