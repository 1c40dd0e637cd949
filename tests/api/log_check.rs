//! The server's background check of the log (issue 13): every checkpoint
//! interval it reads the positions added since its last check, and Manage >
//! Audit shows the result to every reader; a failure is a red banner and our
//! own `verify` event, once per finding. Also: an event older than two
//! intervals that no checkpoint covers fails the check and `auditdesk verify`.

use std::time::Duration;

use auditdesk::auth::Role;
use auditdesk::auth::tokens::Scope;
use auditdesk::db;
use auditdesk::integrity::{checkpoint, watch};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::integrity::{
    PW, api_get, app_with_checkpoints, event, position_of, signer, tamper, uuid, verify_with,
};

/// Waits until the server's own check has verified every position; the
/// page's line then.
async fn verified_by_the_server(app: &TestApp) -> i64 {
    for _ in 0..100 {
        let next = db::log::next_position(&mut app.conn()).unwrap();
        let check = db::log_checks::read(&mut app.conn()).unwrap();
        if check.checked_at.is_some() && check.problems.is_empty() && check.verified_size == next {
            return next;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server's check did not cover the log within 10 s");
}

/// The `verify` events, newest first, as the API lists them.
async fn verify_events(app: &TestApp) -> Vec<Value> {
    let read = app.token(Scope::Read);
    let (status, body) = api_get(app, &read, "/api/v1/audit-logs?action=verify").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["events"].as_array().unwrap().clone()
}

async fn the_server_checks_new_events_and_the_page_says_so(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let every = Duration::from_secs(1);
    let Some((app, _, _)) = app_with_checkpoints(backend, dir.path(), every).await else {
        return;
    };
    app.add_user("ann", Role::Auditor, PW);
    let page = {
        assert_eq!(app.login("ann", PW).await.status(), 303);
        app.get("/manage/audit").await.text().await.unwrap()
    };
    assert!(page.contains(r#"id="verification">"#), "{page}");
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (0..30).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let size = verified_by_the_server(&app).await;
    assert!(size >= 31, "30 events and the login: {size}");
    let page = app.get("/manage/audit").await.text().await.unwrap();
    let line = format!(r#"UTC: the first {size} events match their checkpoints</span>"#);
    assert!(page.contains(&line), "{line} in {page}");
    assert!(!page.contains("integrity-alert"), "no banner: {page}");
    assert!(
        verify_events(&app).await.is_empty(),
        "a pass is not recorded"
    );
}

/// An app whose own checkpointer stays quiet, with 30 events (and the
/// token's creation) in a checkpoint and checked as the server checks; the
/// signing key and the log's size.
async fn app_checked_once(
    backend: Backend,
    dir: &std::path::Path,
) -> Option<(TestApp, auditdesk::integrity::note::SigningKey, u64)> {
    let (app, key, _) = app_with_checkpoints(backend, dir, Duration::from_secs(3600)).await?;
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (0..30).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let key = signer(&key);
    checkpoint::make(&mut app.conn(), &key).unwrap().unwrap();
    let first = check(&app, &key);
    assert_eq!(first.problems, Vec::<String>::new());
    let size = db::log::next_position(&mut app.conn()).unwrap() as u64;
    assert_eq!((first.from, first.to, first.stored), (0, size, true));
    Some((app, key, size))
}

/// One check, as the server runs it every interval.
fn check(app: &TestApp, key: &auditdesk::integrity::note::SigningKey) -> watch::Outcome {
    watch::check_new(
        &mut app.conn(),
        Some(&key.verifier()),
        Duration::from_secs(60),
    )
    .unwrap()
}

async fn a_changed_new_event_is_a_red_banner_and_one_verify_event(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, size)) = app_checked_once(backend, dir.path()).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (30..40).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    checkpoint::make(&mut app.conn(), &key).unwrap().unwrap();
    let changed = format!(
        "UPDATE events SET resource_target = 'w35 ' WHERE event_uuid = '{}';",
        uuid(35)
    );
    tamper(&app, &changed, &changed);
    let problem = format!(
        "event {} at position {} was changed: it is not the event sealed there",
        uuid(35),
        position_of(&app, 35)
    );

    let end = db::log::next_position(&mut app.conn()).unwrap() as u64;
    let failed = check(&app, &key);
    assert_eq!(failed.problems, vec![problem.clone()]);
    assert_eq!(
        (failed.from, failed.to),
        (size, end),
        "only the new positions"
    );
    assert!(failed.stored && failed.recorded);
    let recorded = verify_events(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let e = &recorded[0];
    assert_eq!(e["status_code"], 409);
    assert_eq!(e["user"]["username"], "auditdesk");
    assert_eq!(e["resource_type"], "audit_log");
    assert_eq!(e["diff"]["result"]["old"], "verified");
    assert_eq!(e["diff"]["result"]["new"], "failed");
    assert_eq!(
        e["diff"]["checked"]["new"],
        format!("positions {size} to {}", end - 1)
    );
    assert_eq!(e["diff"]["problem 1"]["new"], problem.as_str());

    // Every reader sees it, whatever they filter.
    app.add_user("ann", Role::Auditor, PW);
    assert_eq!(app.login("ann", PW).await.status(), 303);
    let page = app
        .get("/manage/audit?action=create")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="integrity-alert""#), "{page}");
    assert!(
        page.contains("The log failed its integrity check at "),
        "{page}"
    );
    assert!(page.contains(&format!("<li>{problem}</li>")), "{page}");
    assert!(
        page.contains(r#"id="verification">Integrity check failed "#),
        "{page}"
    );

    // Checked again: the same finding, from the same place, not recorded twice.
    let again = check(&app, &key);
    assert_eq!(again.problems, vec![problem.clone()]);
    assert_eq!(again.from, size);
    assert!(again.stored && !again.recorded);
    assert_eq!(verify_events(&app).await.len(), 1);

    // Put back (and the login and the failure event since): the check
    // passes, says so once, and the banner goes; the record stays.
    let restored = format!(
        "UPDATE events SET resource_target = 'w35' WHERE event_uuid = '{}';",
        uuid(35)
    );
    tamper(&app, &restored, &restored);
    let passed = check(&app, &key);
    assert_eq!(passed.problems, Vec::<String>::new());
    assert!(passed.recorded);
    let recorded = verify_events(&app).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0]["status_code"], 200);
    assert_eq!(recorded[0]["diff"]["result"]["old"], "failed");
    assert_eq!(recorded[0]["diff"]["result"]["new"], "verified");
    let page = app.get("/manage/audit").await.text().await.unwrap();
    assert!(!page.contains("integrity-alert"), "{page}");
    assert!(page.contains("match their checkpoints</span>"), "{page}");
    // Moved on to the latest checkpoint; what is past it is read again.
    let state = db::log_checks::read(&mut app.conn()).unwrap();
    let signed = db::checkpoints::latest(&mut app.conn()).unwrap().unwrap();
    assert_eq!(state.verified_size, signed.size);
}

async fn a_deleted_or_forged_checkpoint_fails_the_check(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _)) = app_checked_once(backend, dir.path()).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    assert_eq!(app.ingest(&token, &event(30)).await.0, 201);
    // A checkpoint signed by another key, inserted as the next one.
    let other = auditdesk::integrity::note::SigningKey::generate("auditdesk").unwrap();
    let made = checkpoint::make(&mut app.conn(), &other).unwrap().unwrap();
    let failed = check(&app, &key);
    assert_eq!(failed.problems.len(), 1, "{:?}", failed.problems);
    assert!(
        failed.problems[0].starts_with(&format!("checkpoint of size {}: ", made.size)),
        "{:?}",
        failed.problems
    );
    assert!(failed.recorded);
    // A position removed at the end of the log.
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _)) = app_checked_once(backend, dir.path()).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    assert_eq!(app.ingest(&token, &event(30)).await.0, 201);
    let last = position_of(&app, 30);
    let cut = format!("DELETE FROM log_entries WHERE position = {last};");
    tamper(&app, &cut, &cut);
    let failed = check(&app, &key);
    assert_eq!(
        failed.problems,
        vec![format!("positions {last} to {last} are missing")]
    );
}

async fn an_event_no_checkpoint_covers_in_time_fails(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _)) =
        app_with_checkpoints(backend, dir.path(), Duration::from_secs(3600)).await
    else {
        return;
    };
    let token = app.token(Scope::Ingest);
    // Without any checkpoint, no event is late: checkpoints are off, or no
    // server has signed yet (said on stderr).
    checkpoint::make(&mut app.conn(), &signer(&key))
        .unwrap()
        .unwrap();
    let batch: Vec<_> = (0..3).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let (code, out) = verify_with(&app, &key, &["--checkpoint-interval", "1"]);
    assert_eq!(code, 0, "received just now: {out}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, out) = verify_with(&app, &key, &["--checkpoint-interval", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "event {} at position {} is not in any checkpoint, though received at ",
            uuid(0),
            position_of(&app, 0)
        )) && out
            .trim_end()
            .ends_with("UTC, more than two checkpoint intervals ago (and 2 later events)"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    // The server's check, with its interval, finds the same.
    let problems = watch::check_new(
        &mut app.conn(),
        Some(&signer(&key).verifier()),
        Duration::from_secs(1),
    )
    .unwrap()
    .problems;
    assert_eq!(problems, vec![out.trim_end().to_owned()]);
    // Once signed, all is well (the interval of 60 s is the default).
    checkpoint::make(&mut app.conn(), &signer(&key))
        .unwrap()
        .unwrap();
    let (code, out) = verify_with(&app, &key, &["--checkpoint-interval", "1"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify_with(&app, &key, &["--checkpoint-interval", "0"]);
    assert_eq!(code, 2, "{out}");
}

async fn a_standing_finding_is_recorded_once_while_checkpoints_go_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((app, key, _)) = app_checked_once(backend, dir.path()).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    let batch: Vec<_> = (30..40).map(event).collect();
    assert_eq!(app.ingest(&token, &json!(batch)).await.0, 201);
    let signed = checkpoint::make(&mut app.conn(), &key).unwrap().unwrap();
    // The recorded leaf hash of one position rewritten: the event no longer
    // matches it, and the tree differs at every checkpoint from there on.
    let position = position_of(&app, 33);
    let sql = format!(
        "UPDATE log_entries SET leaf_hash = '{}' WHERE position = {position};",
        "ab".repeat(32)
    );
    tamper(&app, &sql, &sql);
    let first = check(&app, &key);
    assert_eq!(
        first.problems,
        vec![
            format!(
                "event {} at position {position} was changed: it is not the event sealed there",
                uuid(33)
            ),
            format!(
                "checkpoint of size {}: the log's tree head at that size differs: the log was rewritten before position {}",
                signed.size, signed.size
            ),
        ]
    );
    assert!(first.recorded);
    // More events, another checkpoint: the same finding, with a count that
    // grows, is not recorded again.
    for n in 40..43 {
        assert_eq!(app.ingest(&token, &event(n)).await.0, 201);
        checkpoint::make(&mut app.conn(), &key).unwrap().unwrap();
        let again = check(&app, &key);
        assert_eq!(again.problems.len(), 2, "{:?}", again.problems);
        assert!(
            again.problems[1].ends_with("later checkpoints differ too)"),
            "{:?}",
            again.problems
        );
        assert!(!again.recorded, "{:?}", again.problems);
    }
    assert_eq!(verify_events(&app).await.len(), 1);
}

async fn a_stopped_server_signs_what_it_stored_last() {
    let Some(db) = crate::helpers::TestDb::new(Backend::Sqlite) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url_string();
    let (mut server, port) = crate::cli::serve_with(
        dir.path(),
        Some(&url),
        &["--checkpoint-interval", "3600"],
        std::process::Stdio::null(),
    );
    let token = crate::durability::ingest_token(&db, "last");
    let batch: Vec<_> = (0..5).map(event).collect();
    let r = crate::helpers::client()
        .post(format!("http://127.0.0.1:{port}/api/v1/audit-logs"))
        .bearer_auth(&token)
        .json(&json!(batch))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(db::checkpoints::latest(&mut db.connect()).unwrap(), None);
    // The shell's own kill: no procps needed.
    let stopped = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", server.0.id())])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(server.0.wait().unwrap().success());
    let conn = &mut db.connect();
    let size = db::log::next_position(conn).unwrap();
    let signed = db::checkpoints::latest(conn).unwrap().map(|c| c.size);
    assert_eq!(signed, Some(size), "the last events signed on the way out");
}

crate::cases! {
    both_backends() => [
        the_server_checks_new_events_and_the_page_says_so,
        a_changed_new_event_is_a_red_banner_and_one_verify_event,
        a_deleted_or_forged_checkpoint_fails_the_check,
        an_event_no_checkpoint_covers_in_time_fails,
        a_standing_finding_is_recorded_once_while_checkpoints_go_on,
    ];
    one() => [
        a_stopped_server_signs_what_it_stored_last,
    ];
}
