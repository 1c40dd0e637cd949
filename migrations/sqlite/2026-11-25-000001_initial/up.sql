-- Auditdesk schema, SQLite flavour. Kept column-for-column in step with
-- ../../postgres/2026-11-25-000001_initial/up.sql: one src/db/schema.rs serves both.

-- The audit log itself. Append-only: the triggers at the end refuse UPDATE and DELETE.
CREATE TABLE events (
    id INTEGER PRIMARY KEY NOT NULL,
    event_uuid TEXT NOT NULL,
    time TIMESTAMP NOT NULL,
    actor_username TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_target TEXT NOT NULL,
    diff TEXT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX events_event_uuid ON events (event_uuid);
-- Every page is a range scan of one of these, newest first: each filter
-- dimension ends in (time, id) so a filtered page costs what an unfiltered one does.
CREATE INDEX events_time ON events (time, id);
CREATE INDEX events_actor_time ON events (actor_username, time, id);
CREATE INDEX events_action_time ON events (action, time, id);
CREATE INDEX events_resource_type_time ON events (resource_type, time, id);
CREATE INDEX events_resource_target_time ON events (resource_target, time, id);
CREATE INDEX events_resource_id_time ON events (resource_id, time, id);
CREATE INDEX events_request_id_time ON events (request_id, time, id);

CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: UPDATE is refused');
END;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: DELETE is refused');
END;

-- Small tables that feed the filter dropdowns, kept current by the event write path
-- so that the page never runs SELECT DISTINCT over the event table.
CREATE TABLE actors (
    username TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    event_count BIGINT NOT NULL
);
CREATE INDEX actors_event_count ON actors (event_count);
CREATE TABLE resource_types (
    name TEXT PRIMARY KEY NOT NULL,
    event_count BIGINT NOT NULL
);
CREATE TABLE resource_targets (
    name TEXT PRIMARY KEY NOT NULL,
    event_count BIGINT NOT NULL
);
CREATE INDEX resource_targets_event_count ON resource_targets (event_count);

-- People who log in to the web UI.
CREATE TABLE users (
    id INTEGER PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('site_manager', 'auditor', 'member')),
    suspended BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP
);
CREATE UNIQUE INDEX users_username ON users (username);
CREATE UNIQUE INDEX users_email ON users (email);

-- Browser sessions (actix-session SessionStore). The cookie holds a random key;
-- only its SHA-256 is stored here.
CREATE TABLE sessions (
    key_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT REFERENCES users (id),
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- API tokens for services. Only a hash of the secret is stored.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('ingest', 'read')),
    token_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE UNIQUE INDEX api_tokens_token_hash ON api_tokens (token_hash);

-- Failed logins, for throttling per account name and per address. Lives in the
-- database so that every instance behind a load balancer sees the same state.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY NOT NULL,
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    time TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_account_time ON login_failures (account, time);
CREATE INDEX login_failures_ip_time ON login_failures (ip, time);

-- Values that every instance must share (e.g. the cookie signing key).
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
