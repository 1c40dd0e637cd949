// @generated automatically by Diesel CLI.

diesel::table! {
    actors (username) {
        username -> Text,
        email -> Text,
        event_count -> Int8,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        name -> Text,
        scope -> Text,
        token_hash -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    checkpoints (size) {
        size -> Int8,
        root -> Text,
        note -> Text,
        frontier -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        event_uuid -> Text,
        time -> Timestamp,
        actor_username -> Text,
        actor_email -> Text,
        action -> Text,
        resource_type -> Text,
        resource_id -> Text,
        resource_target -> Text,
        diff -> Text,
        ip -> Text,
        user_agent -> Text,
        status_code -> Int4,
        request_id -> Text,
        content_hash -> Text,
        received_at -> Timestamp,
        search_doc -> Nullable<Text>,
    }
}

diesel::table! {
    /// SQLite only: the FTS5 trigram index of `events.search_doc`, in the
    /// attached file `search` (see `db::text_index`).
    events_text (rowid) {
        rowid -> BigInt,
        search_doc -> Nullable<Text>,
    }
}

diesel::table! {
    log_checks (id) {
        id -> Int4,
        verified_size -> Int8,
        frontier -> Text,
        checked_at -> Nullable<Timestamp>,
        problems -> Text,
    }
}

diesel::table! {
    log_entries (position) {
        position -> Int8,
        event_id -> Int8,
        leaf_hash -> Text,
    }
}

diesel::table! {
    log_state (id) {
        id -> Int4,
        next_position -> Int8,
        sealed_below -> Int8,
    }
}

diesel::table! {
    log_subtrees (level, idx) {
        level -> Int4,
        idx -> Int8,
        head -> Text,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Int8,
        account -> Text,
        ip -> Text,
        time -> Timestamp,
    }
}

diesel::table! {
    resource_targets (name) {
        name -> Text,
        event_count -> Int8,
    }
}

diesel::table! {
    resource_types (name) {
        name -> Text,
        event_count -> Int8,
    }
}

diesel::table! {
    sessions (key_hash) {
        key_hash -> Text,
        user_id -> Nullable<Int8>,
        state -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    streams (id) {
        id -> Int8,
        name -> Text,
        kind -> Text,
        target -> Text,
        secret -> Nullable<Text>,
        filter -> Text,
        paused -> Bool,
        next_position -> Int8,
        delivered -> Int8,
        last_delivered_time -> Nullable<Timestamp>,
        last_delivered_at -> Nullable<Timestamp>,
        retrying_since -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        failed_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        suspended -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(log_entries -> events (event_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    actors,
    api_tokens,
    checkpoints,
    events,
    log_checks,
    log_entries,
    log_state,
    log_subtrees,
    login_failures,
    resource_targets,
    resource_types,
    sessions,
    settings,
    streams,
    users,
);
