//! The verifiable log (issue 13), first part: every stored event, from every
//! path, gets one log position in commit order without gaps; events stored
//! before positions existed are sealed at start; `auditdesk verify` exits 0
//! on an untouched log and 1 naming what a person with database access
//! changed (the triggers dropped first).

use auditdesk::audit::store;
use auditdesk::auth::Role;
use auditdesk::auth::tokens::Scope;
use auditdesk::db::events::OnConflict;
use auditdesk::db::{self, DatabaseUrl};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::cli::auditdesk;
use crate::helpers::{Backend, TestApp, new_event};

const PW: &str = "correct horse battery";

fn event(n: usize) -> serde_json::Value {
    json!({
        "id": format!("30000000-0000-4000-8000-{n:012}"),
        "time": "2026-03-01T12:00:00.250Z",
        "user": {"username": format!("svc{}", n % 3), "email": "svc@example.com"},
        "action": "write", "resource_type": "workspace", "resource_id": format!("ws-{n}"),
        "resource_target": format!("w{n}"), "status_code": 200,
        "diff": {"ttl": {"old": n, "new": null}, "token": {"old": "a", "new": "b", "secret": true}}
    })
}

fn uuid(n: usize) -> String {
    format!("30000000-0000-4000-8000-{n:012}")
}

/// `auditdesk verify`: its exit code and stdout.
fn verify(app: &TestApp) -> (i32, String) {
    let out = auditdesk(&app.db, &["verify"], "");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An app with events from the API (a batch and single events), the CLI,
/// the product's own events (a login) and a direct store.
async fn app_with_a_log(backend: Backend) -> Option<TestApp> {
    let app = TestApp::spawn(backend).await?;
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (0..40).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    for n in 40..45 {
        assert_eq!(app.ingest(&token, &event(n)).await.0, 201);
    }
    // A replay gets no second position.
    assert_eq!(app.ingest(&token, &event(3)).await.0, 201);
    app.add_user("ann", Role::Auditor, PW);
    assert_eq!(app.login("ann", PW).await.status(), 303);
    let out = auditdesk(&app.db, &["token", "create", "--name", "ci"], "");
    assert!(out.status.success());
    let direct =
        new_event(r#"{"user":{"username":"importer"},"action":"create","resource_type":"image"}"#);
    store::store_batch(&mut app.conn(), &[direct], OnConflict::SkipEvent).unwrap();
    Some(app)
}

async fn every_stored_event_has_one_position_in_order_and_verify_agrees(backend: Backend) {
    let Some(app) = app_with_a_log(backend).await else {
        return;
    };
    let stored = db::events::count_all(&mut app.conn()).unwrap();
    let entries = db::log::entries(&mut app.conn(), 0, 1000).unwrap();
    let positions: Vec<i64> = entries.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (0..stored).collect::<Vec<_>>(),
        "0, 1, 2, ... no gaps"
    );
    let mut ids: Vec<i64> = entries.iter().map(|e| e.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as i64, stored, "each event once");
    // One writer at a time here: the positions follow the ids.
    assert!(entries.windows(2).all(|w| w[0].event_id < w[1].event_id));

    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!(
            "verified {stored} events, log size {stored} root "
        )),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1);
}

/// SQL a person with database access runs, per backend, in one session:
/// the append-only triggers (and foreign keys) are theirs to switch off.
fn tamper(app: &TestApp, sqlite: &str, postgres: &str) {
    let mut conn = app.conn();
    let sql = match &app.db.url {
        DatabaseUrl::Sqlite(_) => format!(
            "PRAGMA foreign_keys = OFF;
             DROP TRIGGER IF EXISTS events_refuse_update;
             DROP TRIGGER IF EXISTS events_refuse_delete;
             DROP TRIGGER IF EXISTS log_entries_refuse_update;
             DROP TRIGGER IF EXISTS log_entries_refuse_delete;
             {sqlite}"
        ),
        DatabaseUrl::Postgres(_) => {
            format!("SET session_replication_role = replica; {postgres}")
        }
    };
    conn.batch_execute(&sql).expect("the tampering SQL runs");
}

fn position_of(app: &TestApp, n: usize) -> i64 {
    let event = db::events::find_by_uuid(&mut app.conn(), &uuid(n))
        .unwrap()
        .unwrap();
    db::log::entries(&mut app.conn(), 0, 1000)
        .unwrap()
        .into_iter()
        .find(|e| e.event_id == event.id)
        .unwrap()
        .position
}

async fn a_changed_field_is_named(backend: Backend) {
    let Some(app) = app_with_a_log(backend).await else {
        return;
    };
    let sql = format!(
        "UPDATE events SET resource_target = 'w7 ' WHERE event_uuid = '{}';",
        uuid(7)
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "event {} at position {} was changed: it is not the event sealed there",
            uuid(7),
            position_of(&app, 7)
        )
    );
}

async fn a_deleted_event_is_named(backend: Backend) {
    let Some(app) = app_with_a_log(backend).await else {
        return;
    };
    let position = position_of(&app, 12);
    let sql = format!("DELETE FROM events WHERE event_uuid = '{}';", uuid(12));
    tamper(&app, &sql, &sql);
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("position {position}: its event (row "))
            && out.contains("is missing"),
        "{out}"
    );
    // Deleted with its position too: the gap is named.
    let Some(app) = app_with_a_log(backend).await else {
        return;
    };
    let position = position_of(&app, 12);
    let sql = format!(
        "DELETE FROM log_entries WHERE position = {position}; DELETE FROM events WHERE event_uuid = '{}';",
        uuid(12)
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        format!("positions {position} to {position} are missing")
    );
}

async fn swapped_positions_are_named(backend: Backend) {
    let Some(app) = app_with_a_log(backend).await else {
        return;
    };
    let (a, b) = (position_of(&app, 20), position_of(&app, 21));
    let sql = format!(
        "UPDATE log_entries SET event_id = -1 WHERE position = {a};
         UPDATE log_entries SET event_id = (SELECT id FROM events WHERE event_uuid = '{u20}') WHERE position = {b};
         UPDATE log_entries SET event_id = (SELECT id FROM events WHERE event_uuid = '{u21}') WHERE position = {a};",
        u20 = uuid(20),
        u21 = uuid(21)
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "event {} at position {a} was changed: it is not the event sealed there\n\
             event {} at position {b} was changed: it is not the event sealed there",
            uuid(21),
            uuid(20)
        )
    );
}

async fn a_forged_event_is_named(backend: Backend) {
    let Some(app) = app_with_a_log(backend).await else {
        return;
    };
    let sql = format!(
        "INSERT INTO events (event_uuid, time, actor_username, actor_email, action, resource_type,
             resource_id, resource_target, diff, ip, user_agent, status_code, request_id,
             content_hash, received_at)
         SELECT '{forged}', time, 'mallory', actor_email, 'delete', resource_type, resource_id,
             resource_target, diff, ip, user_agent, status_code, request_id, content_hash,
             received_at
         FROM events WHERE event_uuid = '{u5}';",
        forged = "30000000-0000-4000-8000-999999999999",
        u5 = uuid(5)
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("event 30000000-0000-4000-8000-999999999999 (row ")
            && out
                .trim_end()
                .ends_with("is not in the log: it has no position"),
        "{out}"
    );
}

async fn events_stored_before_positions_are_sealed_at_start(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let events: Vec<_> = (0..2500)
        .map(|n| {
            new_event(&format!(
                r#"{{"user":{{"username":"old{}"}},"action":"view","resource_type":"secret","resource_target":"s{n}"}}"#,
                n % 5
            ))
        })
        .collect();
    store::store_batch(&mut app.conn(), &events, OnConflict::SkipEvent).unwrap();
    // As a database from before positions: the positions are not there.
    tamper(
        &app,
        "DELETE FROM log_entries; UPDATE log_state SET next_position = 0;",
        "DELETE FROM log_entries; UPDATE log_state SET next_position = 0;",
    );
    let (code, out) = verify(&app);
    assert_eq!(code, 1);
    assert!(out.contains("is not in the log"), "{out}");
    // The next start (here: `migrate`) seals them, oldest first, then new
    // events follow.
    let out = auditdesk(&app.db, &["migrate"], "");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("gave log positions to 2500 earlier event(s)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = app.token(Scope::Ingest);
    assert_eq!(app.ingest(&token, &event(1)).await.0, 201);
    let entries = db::log::entries(&mut app.conn(), 0, 10_000).unwrap();
    assert!(entries.windows(2).all(|w| w[0].event_id < w[1].event_id));
    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("verified 2502 events"), "{out}");
}

async fn concurrent_senders_get_contiguous_positions() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    let before = db::events::count_all(&mut app.conn()).unwrap();
    let sends = (0..24).map(|sender| {
        let (app, token) = (&app, &token);
        async move {
            for k in 0..5 {
                let batch: Vec<_> = (0..20)
                    .map(|i| event(10_000 + sender * 1000 + k * 20 + i))
                    .collect();
                assert_eq!(app.ingest(token, &json!(batch)).await.0, 201);
            }
        }
    });
    futures_util::future::join_all(sends).await;
    let stored = db::events::count_all(&mut app.conn()).unwrap();
    assert_eq!(stored, before + 24 * 5 * 20);
    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("verified {stored} events")),
        "{out}"
    );
}

crate::cases! {
    both_backends() => [
        every_stored_event_has_one_position_in_order_and_verify_agrees,
        a_changed_field_is_named,
        a_deleted_event_is_named,
        swapped_positions_are_named,
        a_forged_event_is_named,
        events_stored_before_positions_are_sealed_at_start,
    ];
    one(Postgres) => [
        concurrent_senders_get_contiguous_positions,
    ];
}
