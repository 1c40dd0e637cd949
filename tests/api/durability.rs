//! The `auditdesk serve` process under real conditions: killed with SIGKILL while
//! clients send events, and its JSON log of stored events on stdout.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditdesk::auth::ChangedBy;
use auditdesk::auth::tokens::{self, Scope};
use auditdesk::db::events;
use serde_json::{Value, json};

use crate::cli::serve_with;
use crate::helpers::{Backend, TestDb, client};

fn single_event(client_no: usize, n: usize) -> (String, Value) {
    let id = format!("20000000-0000-4000-8000-{client_no:04}{n:08}");
    let event = json!({
        "id": id,
        "user": {"username": format!("client{client_no}"), "email": format!("c{client_no}@example.com")},
        "action": "connect",
        "resource_type": "workspace",
        "resource_id": format!("ws-{client_no}"),
        "resource_target": format!("client{client_no}-dev"),
        "status_code": 200
    });
    (id, event)
}

/// An ingest token made directly in the (migrated) database.
pub(crate) fn ingest_token(db: &TestDb, name: &str) -> String {
    tokens::create(
        &mut db.connect(),
        name,
        Scope::Ingest,
        &ChangedBy::local_operator(),
    )
    .unwrap()
    .1
    .expose()
    .to_owned()
}

async fn every_acknowledged_event_survives_a_sigkill(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url_string();
    let (mut server, port) = serve_with(dir.path(), Some(&url), &[], Stdio::null());
    let token = ingest_token(&db, "durability");

    // Eight clients send single events as fast as they are answered, and keep the
    // ids that were answered 201, until the server dies under them.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/audit-logs");
    let mut clients = Vec::new();
    for client_no in 0..8 {
        let (acknowledged, endpoint, token) =
            (acknowledged.clone(), endpoint.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            for n in 0.. {
                let (id, event) = single_event(client_no, n);
                let Ok(r) = http
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .json(&event)
                    .send()
                    .await
                else {
                    return; // the server is gone
                };
                match r.status().as_u16() {
                    201 => acknowledged.lock().unwrap().push(id),
                    other => panic!("event {id} answered {other} before the kill"),
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(
            Instant::now() < deadline,
            "the server stored too few events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Child::kill is SIGKILL on Unix: no shutdown hook runs.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .unwrap()
            .unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Restarted on the same database, the instance has every acknowledged event.
    let (_server, port) = serve_with(dir.path(), Some(&url), &[], Stdio::null());
    let r = client()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the restarted server is ready");
    let mut conn = db.connect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| events::find_by_uuid(&mut conn, id).unwrap().is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events were lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    let stored = events::count_all(&mut conn).unwrap();
    let unique: HashSet<&String> = acknowledged.iter().collect();
    // The app's own events (the token's creation) are stored too; an event whose
    // answer was lost in the kill may be stored without a 201, never the reverse.
    assert!(stored as usize > unique.len());
    assert!(
        stored as usize <= unique.len() + 1 + 8,
        "at most one unanswered event per client: {stored} stored, {} answered",
        unique.len()
    );
}

async fn stored_events_are_logged_on_stdout_as_coder_json(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = serve_with(
        dir.path(),
        Some(&db.url_string()),
        &["--log-audit-json"],
        Stdio::piped(),
    );
    let token = ingest_token(&db, "log");
    let (id, event) = single_event(1, 1);
    let replay = event.clone();
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/audit-logs");
    let http = client();
    for body in [event, replay] {
        let r = http
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a stored event is logged on stdout");
    let logged: Value = serde_json::from_str(&line).expect("each line is one JSON object");
    let audit_log = &logged["message"]["fields"]["audit_log"];
    assert_eq!(audit_log["action"], "connect", "{line}");
    assert_eq!(audit_log["id"], id.as_str(), "{line}");
    assert_eq!(audit_log["resource_target"], "client1-dev", "{line}");
    // The replay stored nothing, so it logged nothing.
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a replayed event is not logged twice"
    );
}

crate::cases! {
    both_backends() => [
        every_acknowledged_event_survives_a_sigkill,
        stored_events_are_logged_on_stdout_as_coder_json,
    ];
}
