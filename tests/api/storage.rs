//! The database layer on both backends: migrations, every table's round trip,
//! append-only events, and the one write path for events.

use auditdesk::audit::{NewEvent, store};
use auditdesk::db::events::{self, OnConflict};
use auditdesk::db::{self, AnyConnection, DbConn, sessions, settings, tokens, users};
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;

use crate::helpers::{Backend, TestDb, new_event};

fn migrated(backend: Backend) -> Option<(TestDb, DbConn)> {
    let db = TestDb::new(backend)?;
    let mut conn = db.connect();
    db::run_migrations(&mut conn).expect("migrations run");
    Some((db, conn))
}

/// A time with a full microsecond fraction, to catch precision lost by a backend.
fn precise_time() -> NaiveDateTime {
    "2026-03-01T12:34:56.123456".parse().unwrap()
}

fn sample(id: u32, action: &str, user: &str, target: &str) -> NewEvent {
    new_event(&format!(
        r#"{{"id":"00000000-0000-4000-8000-{id:012}","time":"2026-03-01T12:00:{:02}.5Z",
        "user":{{"username":"{user}","email":"{user}@example.com"}},"action":"{action}",
        "resource_type":"workspace","resource_id":"ws-{id}","resource_target":"{target}",
        "ip":"203.0.113.9","user_agent":"test","status_code":200,"request_id":"r-{id}"}}"#,
        id % 60
    ))
}

async fn migrations_go_up_all_the_way_down_and_up_again(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let mut conn = db.connect();
    let applied = db::run_migrations(&mut conn).unwrap();
    assert!(!applied.is_empty());
    assert_eq!(
        db::run_migrations(&mut conn).unwrap(),
        Vec::<String>::new(),
        "idempotent"
    );
    let reverted = db::revert_all_migrations(&mut conn).unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(
        conn.batch_execute("SELECT id FROM events").is_err(),
        "the events table is gone after reverting"
    );
    assert_eq!(db::run_migrations(&mut conn).unwrap(), applied);
    store::store_batch(
        &mut conn,
        &[sample(1, "open", "alice", "alice-dev")],
        OnConflict::RefuseBatch,
    )
    .unwrap();
    assert_eq!(events::count_all(&mut conn).unwrap(), 1);
}

async fn every_table_stores_a_row_and_reads_it_back_unchanged(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let t = precise_time();

    // events, actors, resource_types, resource_targets
    let e = new_event(
        r#"{"id":"0bd4a990-0640-4e0f-a5b8-fd4b32fa2de8","time":"2026-03-01T12:34:56.123456Z",
        "user":{"username":"frank","email":"frank@example.com"},"action":"write",
        "resource_type":"oauth_configs","resource_id":"oc-1","resource_target":"GitHub ☃ \"quoted\"",
        "diff":{"client_id":{"old":"0fb2aaaa7a4a","new":"1234","secret":false},"n":{"old":1.5,"new":null,"secret":false}},
        "ip":"2001:db8::1","user_agent":"Mozilla/5.0","status_code":403,"request_id":"9c7c7377-79a2-4903-bbe3-3b243eae0032"}"#,
    );
    store::store_batch(&mut conn, std::slice::from_ref(&e), OnConflict::RefuseBatch).unwrap();
    let row = events::find_by_uuid(&mut conn, "0bd4a990-0640-4e0f-a5b8-fd4b32fa2de8")
        .unwrap()
        .expect("stored");
    assert_eq!(row.time, t, "microseconds survive");
    let back = store::from_row(row).unwrap();
    assert_eq!(back, e.event);
    assert_eq!(
        events::top_actors(&mut conn, 10).unwrap(),
        vec![("frank".into(), "frank@example.com".into(), 1)]
    );
    let types = events::resource_types(&mut conn).unwrap();
    assert_eq!(
        (types[0].name.as_str(), types[0].event_count),
        ("oauth_configs", 1)
    );
    let targets = events::top_resource_targets(&mut conn, 10).unwrap();
    assert_eq!(
        (targets[0].name.as_str(), targets[0].event_count),
        ("GitHub ☃ \"quoted\"", 1)
    );

    // users
    let new_user = users::NewUserRow {
        username: "ursula",
        email: "ursula@example.com",
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        role: "auditor",
        suspended: true,
        created_at: t,
        updated_at: t,
    };
    let user = users::insert(&mut conn, &new_user).unwrap().unwrap();
    assert_eq!(
        (
            user.username.as_str(),
            user.email.as_str(),
            user.role.as_str(),
            user.suspended,
            user.created_at
        ),
        ("ursula", "ursula@example.com", "auditor", true, t)
    );
    assert_eq!(user.last_login_at, None);
    users::set_last_login(&mut conn, auditdesk::ids::UserId(user.id), t).unwrap();
    assert_eq!(
        users::find_by_id(&mut conn, auditdesk::ids::UserId(user.id))
            .unwrap()
            .unwrap()
            .last_login_at,
        Some(t)
    );
    assert_eq!(
        users::insert(&mut conn, &new_user).unwrap(),
        Err(users::Taken::Username)
    );

    // sessions
    let session = sessions::SessionRow {
        key_hash: "ab".repeat(32),
        user_id: Some(user.id),
        state: r#"{"user_id":"1","csrf":"x"}"#.into(),
        created_at: t,
        last_seen_at: t,
        expires_at: t,
    };
    sessions::insert(&mut conn, &session).unwrap();
    assert_eq!(
        sessions::find(&mut conn, &session.key_hash).unwrap(),
        Some(session.clone())
    );

    // api_tokens
    let token = tokens::insert(
        &mut conn,
        &tokens::NewTokenRow {
            name: "ci",
            scope: "ingest",
            token_hash: &"cd".repeat(32),
            created_by: "ursula",
            created_at: t,
        },
    )
    .unwrap();
    tokens::revoke(&mut conn, auditdesk::ids::TokenId(token.id), t).unwrap();
    let listed = tokens::list(&mut conn).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].name.as_str(),
            listed[0].scope.as_str(),
            listed[0].created_at,
            listed[0].revoked_at
        ),
        ("ci", "ingest", t, Some(t))
    );

    // login_failures
    db::login_failures::record(&mut conn, "ursula", "203.0.113.9", t).unwrap();
    assert_eq!(
        db::login_failures::for_account(&mut conn, "ursula", t).unwrap(),
        (1, Some(t))
    );
    assert_eq!(
        db::login_failures::for_pair(&mut conn, "ursula", "203.0.113.9", t).unwrap(),
        (1, Some(t))
    );
    assert_eq!(
        db::login_failures::for_pair(&mut conn, "ursula", "203.0.113.10", t).unwrap(),
        (0, None)
    );
    assert_eq!(
        db::login_failures::for_ip(&mut conn, "203.0.113.9", t).unwrap(),
        (1, Some(t))
    );

    // settings
    assert_eq!(
        settings::get_or_insert(&mut conn, "k", || "v1".into()).unwrap(),
        "v1"
    );
    assert_eq!(
        settings::get_or_insert(&mut conn, "k", || "v2".into()).unwrap(),
        "v1"
    );

    // log_entries and log_state: every stored event has its position and leaf.
    let stored = events::count_all(&mut conn).unwrap();
    let entries = auditdesk::db::log::entries(&mut conn, 0, 100).unwrap();
    assert_eq!(entries.len() as i64, stored);
    assert_eq!(entries[0].position, 0);
    assert_eq!(
        entries[0].leaf_hash,
        hex::encode(auditdesk::integrity::leaf::hash_of(
            entries[0].event.as_ref().unwrap()
        ))
    );
    assert_eq!(
        auditdesk::db::log::next_position(&mut conn).unwrap(),
        stored
    );

    // checkpoints
    let checkpoint = auditdesk::db::checkpoints::CheckpointRow {
        size: stored,
        root: "3q2+7w==".into(),
        note: "auditdesk\n1\n3q2+7w==\n\n— auditdesk AAAA\n".into(),
        frontier: "ab,cd".into(),
        created_at: t,
    };
    auditdesk::db::checkpoints::insert(&mut conn, &checkpoint).unwrap();
    assert_eq!(
        auditdesk::db::checkpoints::latest(&mut conn).unwrap(),
        Some(checkpoint)
    );
}

async fn the_database_refuses_to_update_or_delete_events(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    store::store_batch(
        &mut conn,
        &[sample(1, "open", "alice", "alice-dev")],
        OnConflict::RefuseBatch,
    )
    .unwrap();
    // Not a column, nor the search text once it is set (only a NULL one, of
    // an event stored before free text was indexed, may be filled in).
    for sql in [
        "UPDATE events SET action = 'view'",
        "UPDATE events SET search_doc = 'hidden'",
        "UPDATE events SET search_doc = NULL",
        "UPDATE events SET search_doc = search_doc, diff = '{}'",
    ] {
        let update = conn.batch_execute(sql);
        assert!(
            update
                .as_ref()
                .is_err_and(|e| e.to_string().contains("append-only")),
            "{sql}: {update:?}"
        );
    }
    let delete = conn.batch_execute("DELETE FROM events");
    assert!(
        delete
            .as_ref()
            .is_err_and(|e| e.to_string().contains("append-only")),
        "{delete:?}"
    );
    if backend == Backend::Postgres {
        assert!(conn.batch_execute("TRUNCATE events").is_err());
    }
    let row = events::find_by_uuid(&mut conn, "00000000-0000-4000-8000-000000000001")
        .unwrap()
        .unwrap();
    assert_eq!(row.action, "open");
    assert_eq!(events::count_all(&mut conn).unwrap(), 1);
}

async fn a_replayed_batch_stores_nothing_new_and_keeps_counts(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let batch: Vec<NewEvent> = (1..=5)
        .map(|i| sample(i, "open", "alice", "alice-dev"))
        .collect();
    let first = store::store_batch(&mut conn, &batch, OnConflict::RefuseBatch).unwrap();
    assert_eq!(first.stored, vec![0, 1, 2, 3, 4]);
    let again = store::store_batch(&mut conn, &batch, OnConflict::RefuseBatch).unwrap();
    assert!(again.stored.is_empty());
    assert_eq!(again.already_present, vec![0, 1, 2, 3, 4]);
    assert_eq!(events::count_all(&mut conn).unwrap(), 5);
    assert_eq!(
        events::top_actors(&mut conn, 10).unwrap()[0].2,
        5,
        "a replay does not inflate counts"
    );
}

async fn a_changed_event_under_a_stored_id_is_a_conflict(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    store::store_batch(
        &mut conn,
        &[sample(1, "open", "alice", "alice-dev")],
        OnConflict::RefuseBatch,
    )
    .unwrap();
    let batch = vec![
        sample(2, "open", "bob", "bob-dev"),
        sample(1, "delete", "alice", "alice-dev"),
    ];

    let refused = store::store_batch(&mut conn, &batch, OnConflict::RefuseBatch).unwrap();
    assert_eq!(refused.conflicts, vec![1]);
    assert!(refused.stored.is_empty());
    assert_eq!(
        events::count_all(&mut conn).unwrap(),
        1,
        "nothing of the refused batch is stored"
    );

    let skipped = store::store_batch(&mut conn, &batch, OnConflict::SkipEvent).unwrap();
    assert_eq!((skipped.stored, skipped.conflicts), (vec![0], vec![1]));
    assert_eq!(events::count_all(&mut conn).unwrap(), 2);
    let kept = events::find_by_uuid(&mut conn, "00000000-0000-4000-8000-000000000001")
        .unwrap()
        .unwrap();
    assert_eq!(kept.action, "open", "the stored event is never overwritten");
}

async fn the_same_id_twice_in_one_batch_is_stored_once(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let e = sample(7, "ssh", "carol", "carol-dev");
    let outcome = store::store_batch(&mut conn, &[e.clone(), e], OnConflict::RefuseBatch).unwrap();
    assert_eq!(
        (outcome.stored, outcome.already_present),
        (vec![0], vec![1])
    );
    assert_eq!(events::count_all(&mut conn).unwrap(), 1);
}

async fn dropdown_tables_count_events_per_value(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let mut batch = Vec::new();
    for i in 0..30u32 {
        let (user, target) = if i % 3 == 0 {
            ("bob", "bob-dev")
        } else {
            ("alice", "alice-dev")
        };
        batch.push(sample(i, "open", user, target));
    }
    store::store_batch(&mut conn, &batch[..10], OnConflict::SkipEvent).unwrap();
    store::store_batch(&mut conn, &batch[10..], OnConflict::SkipEvent).unwrap();
    let actors = events::top_actors(&mut conn, 10).unwrap();
    assert_eq!(
        actors,
        vec![
            ("alice".into(), "alice@example.com".into(), 20),
            ("bob".into(), "bob@example.com".into(), 10)
        ]
    );
    let targets: Vec<(String, i64)> = events::top_resource_targets(&mut conn, 10)
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.event_count))
        .collect();
    assert_eq!(
        targets,
        vec![("alice-dev".into(), 20), ("bob-dev".into(), 10)]
    );
}

/// PostgreSQL: two writers inserting the same new ids in opposite orders
/// deadlock, and PostgreSQL aborts one of them. That batch is written again and
/// finds the events present, as a replay would. Made certain here: the test's
/// own transaction checks for deadlocks only after 60 s, so the batch's
/// transaction (1 s, the default) is the one aborted. (`SET deadlock_timeout`
/// needs a superuser, as the test databases are made by one.)
fn a_batch_aborted_by_a_deadlock_is_written_again() {
    use std::time::{Duration, Instant};
    let Some((db, mut holder)) = migrated(Backend::Postgres) else {
        return;
    };
    let deadlocks = |conn: &mut DbConn| -> i64 {
        let AnyConnection::Postgres(c) = conn.backend() else {
            unreachable!("a PostgreSQL test")
        };
        use diesel::RunQueryDsl;
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())",
        ))
        .get_result(c)
        .unwrap()
    };
    // Whether some transaction waits for transaction `xid` (as an insert of a
    // key that `xid` has inserted and not committed does).
    let waits_for = |conn: &mut DbConn, xid: &str| -> bool {
        let AnyConnection::Postgres(c) = conn.backend() else {
            unreachable!("a PostgreSQL test")
        };
        use diesel::RunQueryDsl;
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' \
             AND NOT granted AND transactionid::text = '{xid}')"
        )))
        .get_result(c)
        .unwrap()
    };
    let mut watcher = db.connect();
    let deadlocks_before = deadlocks(&mut watcher);
    let (x, y) = (
        sample(1, "open", "alice", "a"),
        sample(2, "open", "bob", "b"),
    );
    holder
        .batch_execute("SET deadlock_timeout = '60s'")
        .unwrap();
    let batch_writer = db::write_transaction(&mut holder, |holder| {
        store::store_batch(holder, std::slice::from_ref(&x), OnConflict::RefuseBatch)?;
        let xid: String = {
            let AnyConnection::Postgres(c) = holder.backend() else {
                unreachable!("a PostgreSQL test")
            };
            use diesel::RunQueryDsl;
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                "pg_current_xact_id()::text",
            ))
            .get_result(c)?
        };
        let mut writer = db.connect();
        let batch = vec![y.clone(), x.clone()];
        // Inserts y, then waits for the holder's x.
        let batch_writer = std::thread::spawn(move || {
            store::store_batch(&mut writer, &batch, OnConflict::RefuseBatch)
        });
        // Once the batch waits for x, its deadlock check comes 1 s later.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !waits_for(&mut watcher, &xid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Waits for the batch's y: a deadlock, which the batch's side breaks.
        store::store_batch(holder, std::slice::from_ref(&y), OnConflict::RefuseBatch)?;
        Ok::<_, db::DbError>(batch_writer)
    })
    .unwrap();
    let outcome = batch_writer
        .join()
        .unwrap()
        .expect("the batch aborted by the deadlock is written again");
    assert_eq!(outcome.stored, Vec::<usize>::new());
    assert_eq!(outcome.already_present, vec![0, 1]);
    assert_eq!(events::count_all(&mut holder).unwrap(), 2);
    // The statistics arrive a moment later; they show the deadlock happened.
    let deadline = Instant::now() + Duration::from_secs(10);
    while deadlocks(&mut watcher) == deadlocks_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let _ = watcher.batch_execute("SELECT pg_stat_clear_snapshot()");
    }
    // At least one: the retry can meet the same race once more (it takes y
    // again before the test's transaction, woken by the abort, does), and is
    // aborted and written again in turn (seen once in CI).
    let seen = deadlocks(&mut watcher) - deadlocks_before;
    assert!(seen >= 1, "PostgreSQL saw a deadlock: {seen}");
}

/// The list a bulk load drops and rebuilds is every index the migrations make
/// on events (but the unique id): an index added by a migration and missing
/// from the list would be lost by the first import into an empty table.
async fn the_bulk_load_index_list_is_the_migrated_one(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let migrated = events::index_names(&mut conn).unwrap();
    let mut listed: Vec<String> = events::secondary_index_names(&mut conn)
        .into_iter()
        .map(str::to_owned)
        .chain(["events_event_uuid".to_owned()])
        .collect();
    listed.sort();
    assert_eq!(migrated, listed);
    events::drop_secondary_indexes(&mut conn).unwrap();
    assert_eq!(
        events::index_names(&mut conn).unwrap(),
        ["events_event_uuid"]
    );
    events::ensure_secondary_indexes(&mut conn).unwrap();
    assert_eq!(
        events::index_names(&mut conn).unwrap(),
        migrated,
        "rebuilt as migrated"
    );
}

crate::cases! {
    both_backends() => [
        the_bulk_load_index_list_is_the_migrated_one,
        migrations_go_up_all_the_way_down_and_up_again,
        every_table_stores_a_row_and_reads_it_back_unchanged,
        the_database_refuses_to_update_or_delete_events,
        a_replayed_batch_stores_nothing_new_and_keeps_counts,
        a_changed_event_under_a_stored_id_is_a_conflict,
        the_same_id_twice_in_one_batch_is_stored_once,
        dropdown_tables_count_events_per_value,
    ];
    blocking(Postgres) => [
        a_batch_aborted_by_a_deadlock_is_written_again,
    ];
}
