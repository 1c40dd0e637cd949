//! The JSON API: ingesting with an `ingest` token, reading with a `read` token.

use auditdesk::auth::ChangedBy;
use auditdesk::auth::Role;
use auditdesk::auth::tokens::{self, Scope};
use auditdesk::db::events;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, strings};

impl TestApp {
    /// Creates an API token directly and returns its secret.
    pub fn token(&self, scope: Scope) -> String {
        tokens::create(
            &mut self.conn(),
            &format!("test-{scope}"),
            scope,
            &ChangedBy::local_operator(),
        )
        .unwrap()
        .1
        .expose()
        .to_owned()
    }

    /// POSTs a JSON body to the ingest endpoint; the whole response.
    pub async fn post_events(&self, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/audit-logs"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a JSON body to the ingest endpoint.
    pub async fn ingest(&self, token: &str, body: &Value) -> (u16, Value) {
        let r = self.post_events(token, body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a body as it is, with its content type, to the ingest endpoint.
    pub async fn ingest_raw(&self, token: &str, content_type: &str, body: String) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/api/v1/audit-logs"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GETs the read endpoint.
    pub async fn read_api(&self, token: &str, query: &str) -> (u16, String, Value) {
        let r = self
            .client
            .get(self.url(&format!("/api/v1/audit-logs?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, r.json().await.unwrap_or(Value::Null))
    }
}

fn event(n: u32) -> Value {
    json!({
        "id": format!("10000000-0000-4000-8000-{n:012}"),
        "time": format!("2026-03-01T12:{:02}:{:02}.250Z", n / 60 % 60, n % 60),
        "user": {"username": format!("svc{}", n % 3), "email": "svc@example.com"},
        "action": "create", "resource_type": "workspace", "resource_id": format!("ws-{n}"),
        "resource_target": format!("w{n}"), "diff": {}, "ip": "203.0.113.5",
        "user_agent": "service/1.0", "status_code": 201, "request_id": format!("req-{n}")
    })
}

async fn stored(app: &TestApp) -> i64 {
    events::count_all(&mut app.conn()).unwrap()
}

async fn events_go_in_and_come_back_out_in_the_interchange_format(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (ingest, read) = (app.token(Scope::Ingest), app.token(Scope::Read));
    let before = stored(&app).await;
    let (status, body) = app.ingest(&ingest, &event(1)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ids"], json!(["10000000-0000-4000-8000-000000000001"]));
    assert_eq!(body["stored"], 1);

    let batch: Vec<Value> = (2..=120).map(event).collect();
    let (status, body) = app.ingest(&ingest, &Value::Array(batch)).await;
    assert_eq!((status, body["stored"].as_u64()), (201, Some(119)));
    assert_eq!(stored(&app).await, before + 120);

    let (status, ct, page) = app.read_api(&read, "resource_type=workspace&limit=1").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(
        page["events"][0],
        event(120),
        "the interchange format, exactly"
    );

    // next_cursor walks every event once, newest first.
    let mut seen = Vec::new();
    let mut query = "resource_type=workspace&limit=50".to_owned();
    loop {
        let (status, _, page) = app.read_api(&read, &query).await;
        assert_eq!(status, 200);
        for e in page["events"].as_array().unwrap() {
            seen.push(e["resource_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("resource_type=workspace&limit=50&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = (1..=120).rev().map(|n| format!("ws-{n}")).collect();
    assert_eq!(seen, want);

    // NDJSON works too.
    let ndjson = format!("{}\n{}\n", event(121), event(122));
    let (status, _) = app
        .ingest_raw(&ingest, "application/x-ndjson", ndjson)
        .await;
    assert_eq!(status, 201);
    assert_eq!(stored(&app).await, before + 122);
}

async fn missing_id_and_time_are_assigned_on_arrival(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let mut bare = event(1);
    bare.as_object_mut().unwrap().remove("id");
    bare.as_object_mut().unwrap().remove("time");
    let before = chrono::Utc::now();
    let (status, body) = app.ingest(&ingest, &json!([bare.clone(), bare])).await;
    assert_eq!(status, 201, "{body}");
    let ids = strings(&body["ids"], None);
    assert_eq!(ids.len(), 2, "two events without ids are two events");
    assert_ne!(ids[0], ids[1]);
    for id in ids {
        let uuid = uuid::Uuid::parse_str(id).expect("an assigned id is a UUID");
        let row = events::find_by_uuid(&mut app.conn(), &uuid.to_string())
            .unwrap()
            .expect("stored under the assigned id");
        let time = row.time.and_utc();
        assert!(
            time >= before - chrono::Duration::seconds(1)
                && time <= chrono::Utc::now() + chrono::Duration::seconds(1),
            "the time of arrival: {time}"
        );
    }
}

async fn a_batch_with_one_bad_event_stores_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let before = stored(&app).await;
    let mut bad = event(2);
    bad["action"] = json!("read");
    let r = app
        .client
        .post(app.url("/api/v1/audit-logs"))
        .bearer_auth(&ingest)
        .json(&json!([event(1), bad, event(3)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.unwrap();
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("events[1].action: unknown action 'read'"),
        "{detail}"
    );
    assert_eq!(p["errors"][0]["field"], "action");
    assert_eq!(
        stored(&app).await,
        before,
        "nothing of the request is stored"
    );

    let mut unknown = event(4);
    unknown["colour"] = json!("red");
    let (status, p) = app.ingest(&ingest, &unknown).await;
    assert_eq!(status, 400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{p}"
    );

    let mut future = event(5);
    future["time"] = json!("2099-01-01T00:00:00Z");
    let (status, p) = app.ingest(&ingest, &future).await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("time"))
    );

    let mut long = event(6);
    long["resource_target"] = json!("x".repeat(5000));
    let (status, p) = app.ingest(&ingest, &long).await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("resource_target")),
        "refused, never cut"
    );

    let (status, p) = app.ingest(&ingest, &json!("hello")).await;
    assert_eq!(status, 400, "{p}");
    let (status, _) = app.ingest(&ingest, &json!([])).await;
    assert_eq!(status, 400);
    assert_eq!(stored(&app).await, before);
}

async fn replays_are_no_ops_and_changed_content_is_a_conflict(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let batch = json!([event(1), event(2)]);
    assert_eq!(app.ingest(&ingest, &batch).await.0, 201);
    let before = stored(&app).await;
    let (status, body) = app.ingest(&ingest, &batch).await;
    assert_eq!(
        (
            status,
            body["stored"].as_u64(),
            body["already_present"].as_u64()
        ),
        (201, Some(0), Some(2))
    );
    assert_eq!(
        stored(&app).await,
        before,
        "a replayed batch stores nothing new"
    );

    let mut changed = event(2);
    changed["action"] = json!("delete");
    let (status, p) = app.ingest(&ingest, &json!([event(3), changed])).await;
    assert_eq!(status, 409, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("10000000-0000-4000-8000-000000000002")
    );
    assert_eq!(
        stored(&app).await,
        before,
        "nothing of the conflicting request is stored"
    );

    // An event without id or time gets both on arrival.
    let (status, body) = app
        .ingest(
            &ingest,
            &json!({"user": {"username": "svc"}, "action": "stop", "resource_type": "workspace"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(uuid::Uuid::parse_str(body["ids"][0].as_str().unwrap()).is_ok());
}

async fn secrets_never_reach_the_database(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let secret = "hunter2-very-secret-value";
    let mut e = event(1);
    e["resource_type"] = json!("oauth_configs");
    e["diff"] =
        json!({"client_secret": {"old": secret, "new": format!("{secret}-new"), "secret": true}});
    let (status, _) = app.ingest(&ingest, &e).await;
    assert_eq!(status, 201);
    assert!(
        !app.database_contains(secret),
        "the secret value is nowhere in the database"
    );
    let read = app.token(Scope::Read);
    let (_, _, page) = app.read_api(&read, "resource_type=oauth_configs").await;
    assert_eq!(
        page["events"][0]["diff"]["client_secret"],
        json!({"secret": true})
    );
}

async fn wrong_credentials_get_401_or_403_as_problems(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (ingest, read) = (app.token(Scope::Ingest), app.token(Scope::Read));
    let url = app.url("/api/v1/audit-logs");
    let none = app.client.post(&url).json(&event(1)).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(
        none.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(app.ingest("adk_0000", &event(1)).await.0, 401);
    assert_eq!(app.ingest("not-even-a-token", &event(1)).await.0, 401);
    assert_eq!(
        app.ingest(&read, &event(1)).await.0,
        403,
        "a read token cannot send"
    );
    let (status, _, p) = app.read_api(&ingest, "").await;
    assert_eq!(status, 403, "an ingest token cannot read");
    assert!(p["detail"].as_str().unwrap().contains("scope 'read'"));

    // A browser session is not a token.
    app.add_user("root", Role::SiteManager, "correct horse battery");
    app.login("root", "correct horse battery").await;
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);

    // A revoked token stops working at once.
    assert_eq!(app.ingest(&ingest, &event(1)).await.0, 201);
    let id = tokens::list(&mut app.conn())
        .unwrap()
        .into_iter()
        .find(|t| t.scope == Scope::Ingest)
        .unwrap()
        .id;
    tokens::revoke(&mut app.conn(), id, &ChangedBy::local_operator()).unwrap();
    assert_eq!(app.ingest(&ingest, &event(2)).await.0, 401);
}

async fn oversized_requests_get_413(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"user": {"username": "a"}, "action": "open", "resource_type": "w"}))
        .collect();
    let (status, p) = app.ingest(&ingest, &Value::Array(many)).await;
    assert_eq!(status, 413, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("at most 10000"));
    let huge = format!("[\"{}\"]", "x".repeat(33 * 1024 * 1024));
    let r = app
        .client
        .post(app.url("/api/v1/audit-logs"))
        .bearer_auth(&ingest)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    // The server may answer 413 and close before reading the rest.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
}

async fn bad_read_filters_are_400_naming_the_parameter(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let read = app.token(Scope::Read);
    let (status, ct, p) = app.read_api(&read, "action=read&limit=9999").await;
    assert_eq!((status, ct.as_str()), (400, "application/problem+json"));
    let fields = strings(&p["errors"], Some("field"));
    assert_eq!(fields, ["action", "limit"]);
    let (status, _, p) = app.read_api(&read, "colour=red").await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().unwrap().contains("colour"));
}

/// Requests that arrive together may be written in one transaction (SQLite's
/// event writer groups them): each must still stand or fall alone.
async fn concurrent_requests_stand_or_fall_alone(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    assert_eq!(app.ingest(&ingest, &json!([event(1)])).await.0, 201);
    let before = stored(&app).await;

    let mut changed = event(1);
    changed["action"] = json!("delete");
    let mut twin_a = event(900);
    twin_a["action"] = json!("write");
    let mut twin_b = event(900);
    twin_b["action"] = json!("delete");
    let mut bodies: Vec<(&str, Value)> = (0..20u32)
        .map(|k| {
            (
                "new",
                json!((0..5).map(|j| event(100 + k * 5 + j)).collect::<Vec<_>>()),
            )
        })
        .collect();
    bodies.push(("conflict", json!([event(800), changed])));
    bodies.push(("replay", json!([event(1)])));
    bodies.push(("twin", json!([twin_a])));
    bodies.push(("twin", json!([twin_b])));
    let answers =
        futures_util::future::join_all(bodies.iter().map(|(_, body)| app.ingest(&ingest, body)))
            .await;

    for ((kind, _), (status, body)) in bodies.iter().zip(&answers) {
        match *kind {
            "new" => assert_eq!((*status, body["stored"].as_u64()), (201, Some(5)), "{body}"),
            "conflict" => assert_eq!(*status, 409, "{body}"),
            "replay" => assert_eq!(
                (
                    *status,
                    body["stored"].as_u64(),
                    body["already_present"].as_u64()
                ),
                (201, Some(0), Some(1)),
                "{body}"
            ),
            _ => {}
        }
    }
    // Two requests with one new id and different content: one wins, one is a conflict.
    let mut twins: Vec<u16> = bodies
        .iter()
        .zip(&answers)
        .filter(|((kind, _), _)| *kind == "twin")
        .map(|(_, (status, _))| *status)
        .collect();
    twins.sort();
    assert_eq!(twins, [201, 409]);
    assert_eq!(
        stored(&app).await,
        before + 20 * 5 + 1,
        "the new batches and one twin are stored; nothing of the conflicting request"
    );
    let (_, _, page) = app
        .read_api(&app.token(Scope::Read), "resource_id=ws-800")
        .await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(0), "{page}");
}

/// Services that retry may send the same new events at the same time in a
/// different order: every such request is answered 201, and each event is
/// stored by exactly one of them. (On PostgreSQL this can deadlock; that case
/// is made certain in `storage::a_batch_aborted_by_a_deadlock_is_written_again`.)
async fn the_same_new_events_sent_at_once_in_any_order_are_stored_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let before = stored(&app).await;
    // Several bursts, so that requests meet in the middle of their inserts.
    for burst in 0..6u32 {
        let mut bodies = Vec::new();
        for round in 0..4u32 {
            let first = 10_000 + (burst * 4 + round) * 300;
            let batch: Vec<Value> = (first..first + 300).map(event).collect();
            let mut reversed = batch.clone();
            reversed.reverse();
            let mut rotated = batch.clone();
            rotated.rotate_left(150);
            bodies.extend([json!(batch), json!(reversed), json!(rotated)]);
        }
        let answers =
            futures_util::future::join_all(bodies.iter().map(|body| app.ingest(&ingest, body)))
                .await;
        let mut stored_by_round = [0u64; 4];
        for (k, (status, body)) in answers.iter().enumerate() {
            assert_eq!(*status, 201, "burst {burst}, request {k}: {body}");
            let (new, present) = (
                body["stored"].as_u64().unwrap(),
                body["already_present"].as_u64().unwrap(),
            );
            assert_eq!(new + present, 300, "burst {burst}, request {k}: {body}");
            stored_by_round[k / 3] += new;
        }
        assert_eq!(
            stored_by_round, [300; 4],
            "burst {burst}: each event stored by exactly one request"
        );
    }
    assert_eq!(stored(&app).await, before + 6 * 4 * 300);
}

/// On SQLite the event writer writes waiting requests in one transaction. When
/// one of them fails in the database (here a trigger refuses it), that request
/// alone gets the error; the others are stored.
async fn one_failing_request_in_a_group_fails_alone() {
    use diesel::connection::SimpleConnection;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let mut other = app.conn();
    other
        .batch_execute(
            "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.resource_type = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom refused'); END;",
        )
        .unwrap();
    let before = stored(&app).await;
    let mut boom = event(500);
    boom["resource_type"] = json!("boom");
    let mut bodies: Vec<Value> = (0..10u32).map(|k| json!([event(600 + k)])).collect();
    bodies.insert(5, json!([event(499), boom]));
    // Another connection holds the write lock for a moment, so that the
    // requests queue up and are written as groups once it lets go.
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        other.batch_execute("COMMIT").unwrap();
    };
    let (answers, ()) = futures_util::join!(
        futures_util::future::join_all(bodies.iter().map(|body| app.ingest(&ingest, body))),
        release
    );
    for (k, (status, body)) in answers.iter().enumerate() {
        if k == 5 {
            assert_eq!(*status, 500, "the refused request fails: {body}");
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("nothing was stored"),
                "{body}"
            );
        } else {
            assert_eq!(
                (*status, body["stored"].as_u64()),
                (201, Some(1)),
                "request {k}: {body}"
            );
        }
    }
    assert_eq!(
        stored(&app).await,
        before + 10,
        "every other request is stored, nothing of the refused one"
    );
    let (_, _, page) = app
        .read_api(&app.token(Scope::Read), "resource_id=ws-499")
        .await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(0), "{page}");
}

/// On SQLite a request that cannot get the write lock in 15 s (another process
/// holds it) is a 503 that says nothing was written and to try again: the
/// database is busy, not broken. Once the lock is free the same request is stored.
async fn a_write_lock_held_elsewhere_is_a_503_to_retry() {
    use diesel::connection::SimpleConnection;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ingest = app.token(Scope::Ingest);
    let before = stored(&app).await;
    let mut other = app.conn();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let (status, body) = app.ingest(&ingest, &json!([event(950)])).await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("another writer holds its lock")
            && detail.contains("nothing of this change was written"),
        "{body}"
    );
    other.batch_execute("COMMIT").unwrap();
    assert_eq!(stored(&app).await, before, "nothing was written");
    let (status, body) = app.ingest(&ingest, &json!([event(950)])).await;
    assert_eq!((status, body["stored"].as_u64()), (201, Some(1)), "{body}");
}

/// On SQLite the WAL file is reused, not shrunk, under sustained writes; once
/// ingest has been quiet for a few seconds the event writer copies it back and
/// cuts it to nothing. A reader still holding the WAL makes it give up (and try
/// again after the next write) instead of holding up the next request.
async fn the_wal_is_emptied_when_ingest_goes_quiet() {
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let auditdesk::db::DatabaseUrl::Sqlite(path) = &app.db.url else {
        unreachable!("a SQLite test database")
    };
    let wal = path.with_extension("db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let wait_for_empty_wal = || async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while wal_size() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wal_size()
    };
    let ingest = app.token(Scope::Ingest);
    let batch: Vec<Value> = (700..900).map(event).collect();
    let (status, body) = app.ingest(&ingest, &json!(batch)).await;
    assert_eq!(status, 201, "{body}");
    assert!(wal_size() > 0, "the batch went to the WAL");
    assert_eq!(
        wait_for_empty_wal().await,
        0,
        "the WAL is emptied once quiet"
    );

    // A reader whose snapshot includes WAL frames keeps them from being cut.
    let (status, body) = app.ingest(&ingest, &event(900)).await;
    assert_eq!(status, 201, "{body}");
    let mut reader = app.conn();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM events;")
        .unwrap();
    let (status, body) = app.ingest(&ingest, &event(901)).await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(wal_size() > 0, "the WAL a reader uses is kept");
    let started = Instant::now();
    let (status, body) = app.ingest(&ingest, &event(902)).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a request after the attempt is not held up by it (took {:?})",
        started.elapsed()
    );
    reader.batch_execute("COMMIT").unwrap();
    assert_eq!(
        wait_for_empty_wal().await,
        0,
        "emptied once the reader is done"
    );
    let (_, _, page) = app
        .read_api(&app.token(Scope::Read), "resource_id=ws-902")
        .await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(
        events::count_all(&mut reader).unwrap(),
        events::count_all(&mut app.conn()).unwrap()
    );
}

crate::cases! {
    both_backends() => [
        events_go_in_and_come_back_out_in_the_interchange_format,
        missing_id_and_time_are_assigned_on_arrival,
        a_batch_with_one_bad_event_stores_nothing,
        replays_are_no_ops_and_changed_content_is_a_conflict,
        secrets_never_reach_the_database,
        wrong_credentials_get_401_or_403_as_problems,
        oversized_requests_get_413,
        bad_read_filters_are_400_naming_the_parameter,
        concurrent_requests_stand_or_fall_alone,
        the_same_new_events_sent_at_once_in_any_order_are_stored_once,
    ];
    one() => [
        one_failing_request_in_a_group_fails_alone,
        a_write_lock_held_elsewhere_is_a_503_to_retry,
        the_wal_is_emptied_when_ingest_goes_quiet,
    ];
}
