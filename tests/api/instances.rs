//! Three `auditdesk serve` processes on one PostgreSQL database (issue 13),
//! started together, with 24 senders spread over them: every acknowledged
//! event gets exactly one log position, the checkpoints (made by whichever
//! instance's turn it is) cover them all, the servers' own checks pass,
//! `auditdesk verify` exits 0 against each instance's checkpoint log, and
//! when one instance is killed the others go on signing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use auditdesk::db;
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::cli::{Served, auditdesk, serve_logged};
use crate::durability::ingest_token;
use crate::helpers::{Backend, TestDb, client};
use crate::integrity::{event, signer, uuid};

/// Waits until a checkpoint covers every position and the servers' check
/// has verified them; the log's size.
async fn signed_and_checked(db: &TestDb) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conn = &mut db.connect();
        let next = db::log::next_position(conn).unwrap();
        let signed = db::checkpoints::latest(conn).unwrap().map(|c| c.size);
        let check = db::log_checks::read(conn).unwrap();
        if signed == Some(next) && check.verified_size == next && check.problems.is_empty() {
            return next;
        }
        assert!(
            check.problems.is_empty(),
            "the servers' check failed: {}",
            check.problems
        );
        assert!(
            Instant::now() < deadline,
            "within 30 s: log {next}, signed {signed:?}, checked {}",
            check.verified_size
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `count` batches of 20 events numbered from `first` to `port`; the
/// ids acknowledged.
async fn send(port: u16, token: &str, first: usize, count: usize) -> Vec<String> {
    let http = client();
    let mut acknowledged = Vec::new();
    for k in 0..count {
        let numbers: Vec<usize> = (0..20).map(|i| first + k * 20 + i).collect();
        let batch: Vec<_> = numbers.iter().map(|&n| event(n)).collect();
        let r = http
            .post(format!("http://127.0.0.1:{port}/api/v1/audit-logs"))
            .bearer_auth(token)
            .json(&json!(batch))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
        acknowledged.extend(numbers.into_iter().map(uuid));
    }
    acknowledged
}

async fn three_instances_seal_every_acknowledged_event_once() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing-key");
    signer(&key);
    let url = db.url_string();
    let copies: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("checkpoints-{i}.log")))
        .collect();
    // Started together on a fresh database: the migrations one at a time.
    let mut servers: Vec<(Served, u16, std::sync::mpsc::Receiver<String>)> =
        std::thread::scope(|s| {
            let started: Vec<_> = copies
                .iter()
                .map(|copy| {
                    let (dir, url, key) = (dir.path(), &url, &key);
                    s.spawn(move || {
                        serve_logged(
                            dir,
                            Some(url),
                            &[
                                "--signing-key",
                                key.to_str().unwrap(),
                                "--checkpoint-interval",
                                "2",
                                "--checkpoint-log",
                                copy.to_str().unwrap(),
                            ],
                            Stdio::null(),
                        )
                    })
                })
                .collect();
            started.into_iter().map(|h| h.join().unwrap()).collect()
        });
    let token = ingest_token(&db, "senders");
    let before = db::events::count_all(&mut db.connect()).unwrap();

    let ports: Vec<u16> = servers.iter().map(|(_, port, _)| *port).collect();
    let sends = (0..24).map(|sender| send(ports[sender % 3], &token, 100_000 + sender * 1000, 5));
    let acknowledged: Vec<String> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acknowledged.len(), 24 * 5 * 20);
    let size = signed_and_checked(&db).await;

    let conn = &mut db.connect();
    let stored = db::events::count_all(conn).unwrap();
    assert_eq!(stored, before + 2400, "nothing stored twice or lost");
    assert_eq!(size, stored, "one position per stored event");
    for id in &acknowledged {
        let row = db::events::find_by_uuid(conn, id).unwrap().expect(id);
        assert!(
            db::log::position_of(conn, row.id).unwrap().is_some(),
            "{id} sealed"
        );
    }
    let run = |args: &[&str]| {
        let out = auditdesk(&db, args, "");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Each instance copied the checkpoints it made (just after storing
    // each); together, all of them.
    let stored_checkpoints = db::checkpoints::all(conn).unwrap().len();
    let all = dir.path().join("all-checkpoints.log");
    let mut together = String::new();
    for _ in 0..50 {
        together = copies
            .iter()
            .filter_map(|copy| std::fs::read_to_string(copy).ok())
            .collect();
        if auditdesk::integrity::checkpoint::notes_in_log(&together).len() == stored_checkpoints {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        auditdesk::integrity::checkpoint::notes_in_log(&together).len(),
        stored_checkpoints
    );
    std::fs::write(&all, together).unwrap();
    let (code, out) = run(&[
        "verify",
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoints",
        all.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!("verified {size} events, checkpoint size {size} ")),
        "{out}"
    );

    // One instance killed: the others seal and sign what comes next.
    let (killed, _, _) = servers.remove(0);
    drop(killed);
    let more = send(ports[1], &token, 900_000, 3).await;
    assert_eq!(more.len(), 60);
    let after = signed_and_checked(&db).await;
    assert_eq!(after, size + 60);
    let (code, out) = run(&["verify", "--signing-key", key.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    for (_, _, log) in &servers {
        let failures: Vec<String> = log
            .try_iter()
            .filter(|line| line.contains("ERROR"))
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
    }
}

/// A process that froze inside a transaction holding the log's next
/// position (every ingest waits for it) is cut off by PostgreSQL after 30 s
/// idle, and ingest goes on.
async fn a_frozen_sealer_holds_up_ingest_for_at_most_thirty_seconds() {
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let token = app.token(auditdesk::auth::tokens::Scope::Ingest);
    // Another instance's pooled connection, frozen with the lock held.
    let pool = db::Database::new(app.db.url.clone()).pool().unwrap();
    let mut frozen = pool.get().unwrap();
    frozen
        .batch_execute("BEGIN; SELECT next_position FROM log_state FOR UPDATE;")
        .unwrap();
    let started = Instant::now();
    let (status, body) = app.ingest(&token, &event(1)).await;
    let waited = started.elapsed();
    assert_eq!(status, 201, "{body}");
    assert!(
        waited >= Duration::from_secs(25) && waited < Duration::from_secs(60),
        "stored once the frozen session was ended: {waited:?}"
    );
    assert!(
        frozen.batch_execute("SELECT 1").is_err(),
        "PostgreSQL ended the frozen session"
    );
}

crate::cases! {
    one(Postgres) => [
        three_instances_seal_every_acknowledged_event_once,
        a_frozen_sealer_holds_up_ingest_for_at_most_thirty_seconds,
    ];
}
