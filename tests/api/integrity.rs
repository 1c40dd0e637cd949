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

pub(crate) const PW: &str = "correct horse battery";

pub(crate) fn event(n: usize) -> serde_json::Value {
    json!({
        "id": format!("30000000-0000-4000-8000-{n:012}"),
        "time": "2026-03-01T12:00:00.250Z",
        "user": {"username": format!("svc{}", n % 3), "email": "svc@example.com"},
        "action": "write", "resource_type": "workspace", "resource_id": format!("ws-{n}"),
        "resource_target": format!("w{n}"), "status_code": 200,
        "diff": {"ttl": {"old": n, "new": null}, "token": {"old": "a", "new": "b", "secret": true}}
    })
}

pub(crate) fn uuid(n: usize) -> String {
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    // No checkpoint yet (the server signs one interval after its start).
    let page = app.get("/manage/audit").await.text().await.unwrap();
    assert!(page.contains("No signed checkpoint yet"), "{page}");
    // (On SQLite the server's checkpointer, on by default, may have signed
    // a prefix already; on PostgreSQL there is no key by default.)
    assert!(
        out.starts_with(&format!("verified {stored} events, ")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1);
}

/// SQL a person with database access runs, per backend, in one session:
/// the append-only triggers (and foreign keys) are theirs to switch off.
pub(crate) fn tamper(app: &TestApp, sqlite: &str, postgres: &str) {
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

pub(crate) fn position_of(app: &TestApp, n: usize) -> i64 {
    let event = db::events::find_by_uuid(&mut app.conn(), &uuid(n))
        .unwrap()
        .unwrap();
    db::log::position_of(&mut app.conn(), event.id)
        .unwrap()
        .expect("sealed")
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
    // A later start or CLI command does not seal it: it stays named.
    assert!(auditdesk(&app.db, &["user", "list"], "").status.success());
    let (code, again) = verify(&app);
    assert_eq!((code, again.as_str()), (1, out.as_str()));
    // Nor can it be given a position out of sight, below 0.
    let id = db::events::find_by_uuid(&mut app.conn(), "30000000-0000-4000-8000-999999999999")
        .unwrap()
        .unwrap()
        .id;
    let below_zero =
        format!("INSERT INTO log_entries (position, event_id, leaf_hash) VALUES (-1, {id}, 'x')");
    assert!(
        app.conn().batch_execute(&below_zero).is_err(),
        "refused by the database"
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
        "DELETE FROM log_entries;
         UPDATE log_state SET next_position = 0, sealed_below = (SELECT MAX(id) + 1 FROM events);",
        "DELETE FROM log_entries;
         UPDATE log_state SET next_position = 0, sealed_below = (SELECT MAX(id) + 1 FROM events);",
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

/// An app that signs a checkpoint every `every` with a key in the test's
/// directory and copies each to a checkpoint log; the key file and the log.
pub(crate) async fn app_with_checkpoints(
    backend: Backend,
    dir: &std::path::Path,
    every: std::time::Duration,
) -> Option<(TestApp, std::path::PathBuf, std::path::PathBuf)> {
    let (key, copies) = (dir.join("signing-key"), dir.join("checkpoints.log"));
    if backend == Backend::Postgres {
        // Made once beforehand (`auditdesk key public --signing-key FILE`):
        // instances on PostgreSQL never make their own.
        signer(&key);
    }
    let (k, c) = (key.clone(), copies.clone());
    let app = TestApp::spawn_with(backend, move |config| {
        config.signing_key = Some(k);
        config.checkpoint_interval = every;
        config.checkpoint_log = Some(c);
    })
    .await?;
    Some((app, key, copies))
}

/// For the tampering tests: an app whose own checkpointer stays quiet (an
/// hour apart), with 30 events, and one checkpoint made now, as the
/// checkpointer makes it, copied to the log; its size.
async fn app_with_one_checkpoint(
    backend: Backend,
    dir: &std::path::Path,
) -> Option<(TestApp, std::path::PathBuf, std::path::PathBuf, i64)> {
    let (app, key, copies) =
        app_with_checkpoints(backend, dir, std::time::Duration::from_secs(3600)).await?;
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (0..30).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let signer = signer(&key);
    let row = auditdesk::integrity::checkpoint::make(&mut app.conn(), &signer)
        .unwrap()
        .expect("the log grew");
    auditdesk::integrity::checkpoint::append_to_log(&copies, &row.note).unwrap();
    assert_eq!(row.size, db::log::next_position(&mut app.conn()).unwrap());
    Some((app, key, copies, row.size))
}

/// Waits until a checkpoint covers every position; its size.
async fn checkpointed(app: &TestApp) -> i64 {
    for _ in 0..100 {
        let next = db::log::next_position(&mut app.conn()).unwrap();
        let latest = db::checkpoints::latest(&mut app.conn()).unwrap();
        if latest.as_ref().is_some_and(|c| c.size == next) {
            return next;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no checkpoint covered the log within 10 s");
}

/// The signing key in `key`, made if missing, as the server makes it.
pub(crate) fn signer(key: &std::path::Path) -> auditdesk::integrity::note::SigningKey {
    auditdesk::integrity::checkpoint::load_or_create_key(key, "auditdesk").unwrap()
}

/// `auditdesk key public --signing-key KEY`: the verifier key it prints.
fn public_key(app: &TestApp, key: &std::path::Path) -> String {
    let out = auditdesk(
        &app.db,
        &["key", "public", "--signing-key", key.to_str().unwrap()],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `auditdesk verify` with the key and the copies.
pub(crate) fn verify_with(app: &TestApp, key: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let key = key.to_str().unwrap();
    let mut args = vec!["verify", "--signing-key", key];
    args.extend_from_slice(extra);
    let out = auditdesk(&app.db, &args, "");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn checkpoints_sign_the_log_and_verify_checks_them(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let every = std::time::Duration::from_millis(200);
    let Some((app, key, copies)) = app_with_checkpoints(backend, dir.path(), every).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (0..30).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let first = checkpointed(&app).await;
    for n in 30..35 {
        assert_eq!(app.ingest(&token, &event(n)).await.0, 201);
    }
    let size = checkpointed(&app).await;
    assert!(size > first);

    // The key's public half, as a verifier elsewhere gets it.
    let public = public_key(&app, &key);
    let parsed = auditdesk::integrity::note::VerifierKey::parse(&public).unwrap();
    assert!(public.starts_with("auditdesk+"), "{public}");

    let latest = db::checkpoints::latest(&mut app.conn()).unwrap().unwrap();
    assert_eq!(parsed.open(&latest.note).map(|_| ()), Ok(()));
    let (code, out) = verify_with(
        &app,
        &key,
        &[
            "--public-key",
            public.trim(),
            "--checkpoints",
            copies.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "verified {size} events, checkpoint size {size} root {}",
            latest.root
        )
    );
    // Manage > Audit says which checkpoint signs the log, and with which key.
    app.add_user("ann", Role::Auditor, PW);
    let reader = app.another_visitor();
    assert_eq!(reader.login("ann", PW).await.status(), 303);
    // Her login is an event: once it is signed too, no checkpoint follows the page's.
    checkpointed(&app).await;
    let page = reader.get("/manage/audit").await.text().await.unwrap();
    let signed = db::checkpoints::latest(&mut app.conn()).unwrap().unwrap();
    assert!(
        page.contains(&format!(
            "Signed checkpoint: {} events at {} UTC, key auditdesk+{}",
            signed.size,
            signed.created_at.format("%Y-%m-%d %H:%M:%S"),
            parsed.key_id()
        )),
        "{page}"
    );
    // Every checkpoint was copied out, one note each.
    let notes =
        auditdesk::integrity::checkpoint::notes_in_log(&std::fs::read_to_string(&copies).unwrap());
    assert_eq!(
        notes.len() as i64,
        db::checkpoints::all(&mut app.conn()).unwrap().len() as i64
    );
}

async fn a_consistently_rewritten_event_is_caught_by_its_checkpoint(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _, size)) = app_with_one_checkpoint(backend, dir.path()).await else {
        return;
    };
    // The event and its recorded leaf hash both changed: the positions alone
    // cannot tell; the signed tree head can.
    let position = position_of(&app, 9);
    let sql = format!(
        "UPDATE events SET action = 'view' WHERE event_uuid = '{}';",
        uuid(9)
    );
    tamper(&app, &sql, &sql);
    let row = db::events::find_by_uuid(&mut app.conn(), &uuid(9))
        .unwrap()
        .unwrap();
    let new_hash = hex::encode(auditdesk::integrity::leaf::hash_of(&row));
    let sql =
        format!("UPDATE log_entries SET leaf_hash = '{new_hash}' WHERE position = {position};");
    tamper(&app, &sql, &sql);
    let (code, out) = verify_with(&app, &key, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "checkpoint of size {size}: the log's tree head at that size differs: the log was rewritten before position {size}"
        )),
        "{out}"
    );
}

async fn rewritten_or_cut_checkpoints_are_caught(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, copies, size)) = app_with_one_checkpoint(backend, dir.path()).await else {
        return;
    };
    let public = public_key(&app, &key);

    // Re-signed with another key (a rewritten history would need one): the
    // pinned key refuses it.
    let other = auditdesk::integrity::note::SigningKey::generate("auditdesk").unwrap();
    let latest = db::checkpoints::latest(&mut app.conn()).unwrap().unwrap();
    let body = latest.note.split("\n\n").next().unwrap().to_owned() + "\n";
    let forged = other.sign(&body).unwrap();
    let sql = format!(
        "UPDATE checkpoints SET note = '{}' WHERE size = {size};",
        forged.replace('\'', "''")
    );
    tamper(
        &app,
        &format!("DROP TRIGGER IF EXISTS checkpoints_refuse_update; {sql}"),
        &sql,
    );
    let (code, out) = verify_with(&app, &key, &["--public-key", public.trim()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "checkpoint of size {size}: the note has no signature by auditdesk+"
        )),
        "{out}"
    );

    // The checkpoints table emptied: the copies outside name what is gone.
    tamper(
        &app,
        "DROP TRIGGER IF EXISTS checkpoints_refuse_delete; DELETE FROM checkpoints;",
        "DELETE FROM checkpoints;",
    );
    let (code, out) = verify_with(&app, &key, &["--checkpoints", copies.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "copied checkpoint of size {size} is not in the database"
        )),
        "{out}"
    );
}

async fn a_log_cut_short_is_caught_by_its_checkpoint(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _, size)) = app_with_one_checkpoint(backend, dir.path()).await else {
        return;
    };
    // The newest three events go, with their positions: no gap is left.
    let sql = format!(
        "DELETE FROM log_entries WHERE position >= {cut};
         DELETE FROM events WHERE id NOT IN (SELECT event_id FROM log_entries);
         UPDATE log_state SET next_position = {cut};",
        cut = size - 3
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify_with(&app, &key, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "checkpoint of size {size}: the log has only {} positions: it was cut short",
            size - 3
        )),
        "{out}"
    );
}

async fn under_checkpoints_a_change_or_a_gap_is_named_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _, _)) = app_with_one_checkpoint(backend, dir.path()).await else {
        return;
    };
    // More events and a second checkpoint after the first.
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (100..110).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let signer = signer(&key);
    auditdesk::integrity::checkpoint::make(&mut app.conn(), &signer)
        .unwrap()
        .expect("the log grew");
    let sql = format!(
        "UPDATE events SET ip = '192.0.2.66' WHERE event_uuid = '{}';",
        uuid(4)
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify_with(&app, &key, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "event {} at position {} was changed: it is not the event sealed there",
            uuid(4),
            position_of(&app, 4)
        ),
        "one line, not one per checkpoint since"
    );
    // A position gone with its event: the gap is named, and the checkpoints
    // past it are said not to have been compared.
    let position = position_of(&app, 6);
    let sql = format!(
        "DELETE FROM log_entries WHERE position = {position}; DELETE FROM events WHERE event_uuid = '{}';",
        uuid(6)
    );
    tamper(&app, &sql, &sql);
    let (code, out) = verify_with(&app, &key, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("positions {position} to {position} are missing")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "2 checkpoints past position {position} were not compared: the log has a gap there"
        )),
        "{out}"
    );
}

async fn on_postgresql_a_missing_signing_key_stops_the_start() {
    let Some(db) = crate::helpers::TestDb::new(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = auditdesk::config::Config::new(db.url.clone());
    config.bind = "127.0.0.1:0".into();
    config.signing_key = Some(dir.path().join("missing-key"));
    let err = auditdesk::app::Application::build(config)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains(
            "does not exist: on PostgreSQL every instance must be given the same key file"
        ),
        "{err}"
    );
    assert!(!dir.path().join("missing-key").exists(), "no key was made");
}

/// GETs an API path with a token: the status and the body.
pub(crate) async fn api_get(app: &TestApp, token: &str, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Runs contrib/check-proof.py, the README's independent check (Python's
/// standard library, and `cryptography` for the signature): exit code, output.
fn check_proof(dir: &std::path::Path, line: &str, proof: &str, key: Option<&str>) -> (i32, String) {
    let (line_file, proof_file, key_file) = (
        dir.join("event.ndjson"),
        dir.join("proof.json"),
        dir.join("key.pub"),
    );
    std::fs::write(&line_file, line).unwrap();
    std::fs::write(&proof_file, proof).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/check-proof.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(&line_file).arg(&proof_file);
    if let Some(key) = key {
        std::fs::write(&key_file, key).unwrap();
        command.arg(&key_file);
    }
    let out = command.output().expect("python3 runs the check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn a_proof_from_the_api_checks_out_without_auditdesk(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _, size)) = app_with_one_checkpoint(backend, dir.path()).await else {
        return;
    };
    let read = app.token(Scope::Read);
    let (status, note) = api_get(&app, &read, "/api/v1/checkpoints/latest").await;
    assert_eq!(status, 200);
    let latest = db::checkpoints::latest(&mut app.conn()).unwrap().unwrap();
    assert_eq!(note, latest.note);

    let (status, proof) = api_get(
        &app,
        &read,
        &format!("/api/v1/audit-logs/{}/proof", uuid(5)),
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    let parsed: serde_json::Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(parsed["tree_size"], size);
    assert_eq!(parsed["leaf_index"], position_of(&app, 5));
    // The event's leaf, as a service that sent it would export it.
    let out = auditdesk(
        &app.db,
        &["export", "--format", "ndjson", "--resource-target", "w5"],
        "",
    );
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");

    let public = public_key(&app, &key);
    let (code, said) = check_proof(dir.path(), &line, &proof, Some(&public));
    assert_eq!(code, 0, "{said}");
    assert!(
        said.starts_with(&format!(
            "ok: leaf {} is in auditdesk's log of {size} events",
            position_of(&app, 5)
        )),
        "{said}"
    );
    assert!(said.contains("signature checked"), "{said}");

    // Another event's line, a changed path or another key: not proven.
    let other = line.replace("\"w5\"", "\"w6\"");
    assert_eq!(check_proof(dir.path(), &other, &proof, None).0, 1);
    let mut changed = parsed.clone();
    changed["audit_path"][0] = serde_json::Value::String("00".repeat(32));
    assert_eq!(
        check_proof(dir.path(), &line, &changed.to_string(), None).0,
        1
    );
    let stranger = auditdesk::integrity::note::SigningKey::generate("auditdesk").unwrap();
    let (code, said) = check_proof(
        dir.path(),
        &line,
        &proof,
        Some(&stranger.verifier().encode()),
    );
    assert_eq!(code, 1, "{said}");

    // No such event; one newer than the latest checkpoint; the wrong scope.
    let (status, problem) = api_get(
        &app,
        &read,
        "/api/v1/audit-logs/30000000-0000-4000-8000-000000099999/proof",
    )
    .await;
    assert_eq!(status, 404, "{problem}");
    assert!(problem.contains("no event has the id"), "{problem}");
    let ingest = app.token(Scope::Ingest);
    assert_eq!(app.ingest(&ingest, &event(77)).await.0, 201);
    let (status, problem) = api_get(
        &app,
        &read,
        &format!("/api/v1/audit-logs/{}/proof", uuid(77)),
    )
    .await;
    assert_eq!(status, 404, "{problem}");
    assert!(
        problem.contains("is not in a signed checkpoint yet"),
        "{problem}"
    );
    assert_eq!(
        api_get(&app, &ingest, "/api/v1/checkpoints/latest").await.0,
        403
    );
}

/// A log of 1,300 events signed in two checkpoints: each stores the heads of
/// the perfect subtrees of 256 positions and more that it completes, and the
/// API's proofs (built from those and a few hundred leaf hashes) check out
/// with the README's script; a proof does not depend on a stored head being
/// right, or there.
async fn proofs_in_a_larger_log_come_from_stored_subtree_heads(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _)) =
        app_with_checkpoints(backend, dir.path(), std::time::Duration::from_secs(3600)).await
    else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let signer = signer(&key);
    for part in [0..700, 700..1300] {
        for chunk in part.collect::<Vec<_>>().chunks(100) {
            let batch: Vec<_> = chunk.iter().map(|&n| event(n)).collect();
            assert_eq!(app.ingest(&ingest, &json!(batch)).await.0, 201);
        }
        auditdesk::integrity::checkpoint::make(&mut app.conn(), &signer)
            .unwrap()
            .expect("the log grew");
    }
    let size = db::checkpoints::latest(&mut app.conn())
        .unwrap()
        .unwrap()
        .size;
    let expected: i64 = (8..20).map(|level| size >> level).sum();
    let stored: i64 = app
        .table_counts()
        .into_iter()
        .find(|(table, _)| table == "log_subtrees")
        .map(|(_, n)| n)
        .unwrap();
    assert_eq!(stored, expected, "every head of 256 and more, once");
    // They are the heads of their leaves.
    let leaves: Vec<auditdesk::integrity::merkle::Hash> =
        db::log::leaf_hashes(&mut app.conn(), 0, size)
            .unwrap()
            .into_iter()
            .map(|(_, hex)| auditdesk::integrity::checkpoint::parse_hash(&hex).unwrap())
            .collect();
    for (level, index) in [(8u32, 0u64), (8, 4), (9, 1), (10, 0)] {
        let from = (index << level) as usize;
        let head = db::log::subtree(&mut app.conn(), level as i32, index as i64)
            .unwrap()
            .expect("stored");
        assert_eq!(
            head,
            hex::encode(auditdesk::integrity::merkle::root(
                &leaves[from..from + (1 << level)]
            )),
            "{level}/{index}"
        );
    }

    let read = app.token(Scope::Read);
    let public = public_key(&app, &key);
    let proof_of = |n: usize| {
        let (app, read) = (&app, &read);
        async move {
            let (status, proof) =
                api_get(app, read, &format!("/api/v1/audit-logs/{}/proof", uuid(n))).await;
            assert_eq!(status, 200, "{proof}");
            proof
        }
    };
    let mut proofs = Vec::new();
    for n in [0, 300, 1000, 1299] {
        let proof = proof_of(n).await;
        let out = auditdesk(
            &app.db,
            &[
                "export",
                "--format",
                "ndjson",
                "--resource-target",
                &format!("w{n}"),
            ],
            "",
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let (code, said) = check_proof(dir.path(), &line, &proof, Some(&public));
        assert_eq!(code, 0, "event {n}: {said}");
        assert!(
            said.starts_with(&format!(
                "ok: leaf {} is in auditdesk's log of {size} events",
                position_of(&app, n)
            )),
            "{said}"
        );
        proofs.push(proof);
    }
    // A stored head changed and another gone: the same proofs.
    let sql = format!(
        "UPDATE log_subtrees SET head = '{}' WHERE level = 8 AND idx = 0;
         DELETE FROM log_subtrees WHERE level = 10;",
        "00".repeat(32)
    );
    tamper(&app, &sql, &sql);
    for (i, n) in [0, 300, 1000, 1299].into_iter().enumerate() {
        assert_eq!(proof_of(n).await, proofs[i], "event {n}");
    }
    // A log signed before heads were kept gets them at the next start.
    let sql = "DELETE FROM log_subtrees;";
    tamper(&app, sql, sql);
    let stored = auditdesk::integrity::checkpoint::store_missing_subtrees(&mut app.conn()).unwrap();
    assert_eq!(stored as i64, expected);
    assert_eq!(
        auditdesk::integrity::checkpoint::store_missing_subtrees(&mut app.conn()).unwrap(),
        0,
        "once"
    );
    assert_eq!(proof_of(1000).await, proofs[2]);
}

/// A copy of a SQLite database kept as evidence is checked as it is: verify
/// opens it read-only, makes no free-text index file beside it and leaves its
/// bytes unchanged (the copy's name has the characters a file URI reads as
/// its own).
async fn verify_leaves_a_copy_as_it_was() {
    let Some(app) = app_with_a_log(Backend::Sqlite).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("evidence 100% ?#1.db");
    app.conn()
        .batch_execute(&format!(
            "VACUUM main INTO '{}'",
            copy.to_str().unwrap().replace('\'', "''")
        ))
        .unwrap();
    let before = std::fs::read(&copy).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditdesk"))
        .args(["verify"])
        .env("DATABASE_URL", &copy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = db::events::count_all(&mut app.conn()).unwrap();
    assert!(
        stdout.starts_with(&format!("verified {stored} events")),
        "{stdout}"
    );
    assert!(
        std::fs::read(&copy).unwrap() == before,
        "the copy's bytes changed"
    );
    let mut made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".search") || !name.starts_with("evidence 100% ?#1.db"))
        .collect();
    made.sort();
    assert!(made.is_empty(), "made beside the copy: {made:?}");
}

crate::cases! {
    both_backends() => [
        every_stored_event_has_one_position_in_order_and_verify_agrees,
        a_changed_field_is_named,
        a_deleted_event_is_named,
        swapped_positions_are_named,
        a_forged_event_is_named,
        events_stored_before_positions_are_sealed_at_start,
        checkpoints_sign_the_log_and_verify_checks_them,
        a_consistently_rewritten_event_is_caught_by_its_checkpoint,
        rewritten_or_cut_checkpoints_are_caught,
        a_log_cut_short_is_caught_by_its_checkpoint,
        under_checkpoints_a_change_or_a_gap_is_named_once,
        a_proof_from_the_api_checks_out_without_auditdesk,
        proofs_in_a_larger_log_come_from_stored_subtree_heads,
    ];
    one() => [verify_leaves_a_copy_as_it_was];
    one(Postgres) => [
        concurrent_senders_get_contiguous_positions,
        on_postgresql_a_missing_signing_key_stops_the_start,
    ];
}
