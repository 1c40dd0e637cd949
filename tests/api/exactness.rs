//! Every event is kept exactly as it was sent, hostile ones included
//! (CONTRACT.md, "Exactness"), on both backends and every input path.

use std::collections::HashMap;

use auditdesk::audit::export::{Format, export};
use auditdesk::audit::filter::Filter;
use auditdesk::audit::import::import;
use auditdesk::auth::Role;
use auditdesk::auth::tokens::Scope;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

const PW: &str = "correct horse battery";

/// Characters and runs that hide, move or disguise text.
const HOSTILE: &[&str] = &[
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "\u{202e}",
    "\u{2066}",
    "\u{2069}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{2028}",
    "🚀",
    "👩‍💻",
    "e\u{301}\u{302}\u{303}\u{304}",
    "Ünïcødé 日本",
    "\"",
    "\\",
    "'",
    "<script>alert(1)</script>",
    "&amp;",
    "=HYPERLINK(\"x\")",
    "+1",
    "-2",
    "@SUM(1)",
    " ",
    "  ",
    ",",
    "%00",
    "\u{fffd}",
];

/// Text of up to `max_pieces` pieces, each a hostile run or any character but NUL.
fn hostile_text(max_pieces: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(HOSTILE).prop_map(str::to_owned),
        any::<char>()
            .prop_filter("no NUL", |c| *c != '\0')
            .prop_map(String::from),
        "[a-z]{1,6}".prop_map(|s| s),
    ];
    proptest::collection::vec(piece, 0..=max_pieces).prop_map(|v| v.concat())
}

/// Numbers exactly as a sender may write them.
/// (An exponent is written here as the log writes it back, `e` with its sign:
/// see `numbers_keep_their_digits` in `audit::event`.)
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "8",
    "1.0",
    "1.50",
    "-1.5e-7",
    "1e+400",
    "12345678901234567890123",
    "0.1",
    "-9223372036854775809",
];

/// Any JSON value, as text, nested a little.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        proptest::sample::select(NUMBERS).prop_map(str::to_owned),
        hostile_text(6).prop_map(|s| Value::String(s).to_string()),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((hostile_text(3), inner), 0..4).prop_map(|v| {
                // Keys as generated, order kept (duplicates dropped: JSON keeps one).
                let mut seen = Vec::new();
                let members: Vec<String> = v
                    .into_iter()
                    .filter(|(k, _)| {
                        let fresh = !seen.contains(k);
                        seen.push(k.clone());
                        fresh
                    })
                    .map(|(k, val)| format!("{}:{val}", Value::String(k)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// One diff entry: `old` and `new` each absent or any value, `secret` absent or false.
fn field_change() -> impl Strategy<Value = String> {
    (
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(Just(false)),
    )
        .prop_map(|(old, new, secret)| {
            let mut parts = Vec::new();
            if let Some(o) = old {
                parts.push(format!("\"old\":{o}"));
            }
            if let Some(n) = new {
                parts.push(format!("\"new\":{n}"));
            }
            if let Some(s) = secret {
                parts.push(format!("\"secret\":{s}"));
            }
            format!("{{{}}}", parts.join(","))
        })
}

/// An event's fields, hostile everywhere a sender chooses text.
#[derive(Debug, Clone)]
struct Generated {
    username: String,
    email: String,
    action: &'static str,
    resource_type: String,
    resource_id: String,
    resource_target: String,
    /// Field name and its change, as JSON text.
    diff: Vec<(String, String)>,
    user_agent: String,
    status_code: u16,
    request_id: String,
    micros: i64,
}

fn generated() -> impl Strategy<Value = Generated> {
    let non_empty = |n| hostile_text(n).prop_filter("required", |s: &String| !s.is_empty());
    (
        (non_empty(8), hostile_text(8), non_empty(3), hostile_text(8)),
        (
            hostile_text(12),
            // Field names unique, in the generated (random) order.
            proptest::collection::vec((hostile_text(4), field_change()), 0..4).prop_map(|v| {
                let mut seen: Vec<String> = Vec::new();
                v.into_iter()
                    .filter(|(k, _)| {
                        let fresh = !seen.contains(k);
                        seen.push(k.clone());
                        fresh
                    })
                    .collect::<Vec<_>>()
            }),
            hostile_text(8),
            100u16..600,
            hostile_text(6),
            0i64..1_700_000_000_000_000,
        ),
        proptest::sample::select(&["create", "write", "delete", "login", "ssh"][..]),
    )
        .prop_map(
            |(
                (username, email, resource_type, resource_id),
                (resource_target, diff, user_agent, status_code, request_id, micros),
                action,
            )| Generated {
                username,
                email,
                action,
                resource_type,
                resource_id,
                resource_target,
                diff,
                user_agent,
                status_code,
                request_id,
                micros,
            },
        )
}

impl Generated {
    /// The event as a sender writes it, with the given id.
    fn line(&self, id: uuid::Uuid) -> String {
        let time = chrono::DateTime::from_timestamp_micros(self.micros)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let s = |v: &str| Value::String(v.to_owned()).to_string();
        let diff: Vec<String> = self
            .diff
            .iter()
            .map(|(k, v)| format!("{}:{v}", s(k)))
            .collect();
        format!(
            "{{\"id\":\"{id}\",\"time\":\"{time}\",\"user\":{{\"username\":{},\"email\":{}}},\"action\":\"{}\",\"resource_type\":{},\"resource_id\":{},\"resource_target\":{},\"diff\":{{{}}},\"ip\":\"\",\"user_agent\":{},\"status_code\":{},\"request_id\":{}}}",
            s(&self.username),
            s(&self.email),
            self.action,
            s(&self.resource_type),
            s(&self.resource_id),
            s(&self.resource_target),
            diff.join(","),
            s(&self.user_agent),
            self.status_code,
            s(&self.request_id),
        )
    }
}

/// Whether `got` (an event read back) is exactly `sent`: every field equal,
/// and each diff entry's JSON text equal to the text sent (numbers as
/// written, keys in order).
fn same_event(sent: &str, diff: &[(String, String)], got: &Value) -> Result<(), String> {
    let want: Value = serde_json::from_str(sent).unwrap();
    let mut want_time = want.clone();
    // The time is the same instant; the sender wrote six fraction digits, the
    // log writes as many as needed.
    let parse = |v: &Value| {
        v["time"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
    };
    if parse(&want) != parse(got) {
        return Err(format!("time: sent {}, got {}", want["time"], got["time"]));
    }
    want_time["time"] = got["time"].clone();
    if &want_time != got {
        return Err(format!("sent {sent}\n got {got}"));
    }
    let (Some(sent_diff), Some(got_diff)) = (want["diff"].as_object(), got["diff"].as_object())
    else {
        return Err("no diff object".into());
    };
    let names: Vec<&String> = diff.iter().map(|(k, _)| k).collect();
    if sent_diff.len() != got_diff.len() || got_diff.keys().collect::<Vec<_>>() != names {
        return Err(format!(
            "diff fields or their order: sent {sent}\n got {got}"
        ));
    }
    for (name, change) in diff {
        let got_text = got_diff[name].to_string();
        if got_text != change.as_str() {
            return Err(format!(
                "diff {name:?}: sent {change}, got {}",
                got_diff[name]
            ));
        }
    }
    Ok(())
}

/// Every event of the log through the read API, by id.
async fn all_through_api(app: &TestApp, token: &str) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let mut query = "limit=500".to_owned();
    loop {
        let (status, _, page) = app.read_api(token, &query).await;
        assert_eq!(status, 200, "{page}");
        for e in page["events"].as_array().unwrap() {
            out.insert(e["id"].as_str().unwrap().to_owned(), e.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=500&cursor={c}"),
            None => return out,
        }
    }
}

/// Every event of the log through the NDJSON export, by id.
fn all_through_export(app: &TestApp) -> HashMap<String, Value> {
    let mut text = String::new();
    export(
        &mut app.conn(),
        &Filter::default(),
        Format::Ndjson,
        true,
        |chunk| {
            text.push_str(&chunk);
            true
        },
    )
    .unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

/// Generated events per run: each one a case, sent through the API and imported.
const CASES: usize = 1_000;

async fn random_hostile_events_come_back_exactly_through_api_and_import(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut runner = TestRunner::new(Config::default());
    let strategy = generated();
    let cases: Vec<Generated> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let with_ids = || -> Vec<(uuid::Uuid, String, &Generated)> {
        cases
            .iter()
            .map(|g| {
                let id = uuid::Uuid::new_v4();
                (id, g.line(id), g)
            })
            .collect()
    };
    let (sent, imported) = (with_ids(), with_ids());

    // The API: half as JSON arrays, half as NDJSON, in requests of 50.
    let ingest = app.token(Scope::Ingest);
    for (n, chunk) in sent.chunks(50).enumerate() {
        let lines: Vec<&str> = chunk.iter().map(|(_, l, _)| l.as_str()).collect();
        let (body, content_type) = if n % 2 == 0 {
            (format!("[{}]", lines.join(",")), "application/json")
        } else {
            (lines.join("\n"), "application/x-ndjson")
        };
        let (status, answer) = app.ingest_raw(&ingest, content_type, body).await;
        assert_eq!(status, 201, "{answer}");
    }
    // The importer: one NDJSON file.
    let file: String = imported.iter().map(|(_, l, _)| format!("{l}\n")).collect();
    let summary = import(&mut app.conn(), file.as_bytes(), &mut ()).unwrap();
    assert_eq!(summary.stored, CASES as u64, "{:?}", summary.refused);

    let read = app.token(Scope::Read);
    let by_api = all_through_api(&app, &read).await;
    let by_export = all_through_export(&app);
    let mut failures = Vec::new();
    for (id, line, generated) in sent.iter().chain(&imported) {
        for (path, got) in [
            ("API", by_api.get(&id.to_string())),
            ("NDJSON export", by_export.get(&id.to_string())),
        ] {
            match got {
                None => failures.push(format!("{path}: {id} missing; sent {line}")),
                Some(got) => {
                    if let Err(e) = same_event(line, &generated.diff, got) {
                        failures.push(format!("{path}: {e}"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} events differ, e.g.:\n{}",
        failures.len(),
        4 * CASES,
        failures[..failures.len().min(3)].join("\n")
    );
}

/// The NDJSON export line of the one event of this resource type, over HTTP.
async fn exported_line(app: &TestApp, resource_type: &str) -> String {
    let r = app
        .get(&format!(
            "/manage/audit/export?format=ndjson&resource_type={resource_type}"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 1, "{body}");
    lines[0].to_owned()
}

async fn logged_in(backend: Backend) -> Option<TestApp> {
    let app = TestApp::spawn(backend).await?;
    app.add_user("ann", Role::Auditor, PW);
    app.login("ann", PW).await;
    Some(app)
}

async fn null_and_absent_and_every_kind_of_value_stay_as_sent(backend: Backend) {
    let Some(app) = logged_in(backend).await else {
        return;
    };
    let diff = r#"{"a_null_old":{"old":null,"new":5},"b_absent_old":{"new":5},"c_null_new":{"old":"x","new":null},"d_neither":{},"e_string":{"old":"","new":"text"},"f_more":{"old":-0,"new":1e+400},"f_numbers":{"old":12345678901234567890123,"new":-1.50e-7,"secret":false},"g_bool":{"old":true,"new":false},"h_array":{"old":[],"new":[1,"two",null,[3]]},"i_object":{"old":{},"new":{"z":1,"a":{"y":null,"b":[true]}}},"j_secret_false":{"old":1,"new":2,"secret":false}}"#;
    let event = format!(
        r#"{{"user":{{"username":"alice"}},"action":"write","resource_type":"template","diff":{diff}}}"#
    );
    let token = app.token(Scope::Ingest);
    let (status, answer) = app.ingest_raw(&token, "application/json", event).await;
    assert_eq!(status, 201, "{answer}");
    let line = exported_line(&app, "template").await;
    assert!(line.contains(&format!("\"diff\":{diff}")), "{line}");
    let (_, _, page) = app.read_api(&app.token(Scope::Read), "action=write").await;
    assert_eq!(page["events"][0]["diff"].to_string(), diff);
}

async fn a_hostile_target_is_stored_shown_and_exported_exactly(backend: Backend) {
    let Some(app) = logged_in(backend).await else {
        return;
    };
    let marks_450 = "\u{301}".repeat(450);
    let marks_5000 = "\u{301}".repeat(5000);
    let target = format!(
        "ws\nline2\rcr\ttab\u{1b}[31mred\u{202e}evil\u{2066}iso\u{200d}zwj 🚀 Z{marks_450}"
    );
    let event = json!({
        "user": {"username": "mallory\u{202e}nimda"}, "action": "create",
        "resource_type": "workspace", "resource_target": target,
        "diff": {"name": {"new": format!("Z{marks_5000}")}},
    });
    let (status, body) = app.ingest(&app.token(Scope::Ingest), &event).await;
    assert_eq!(status, 201, "{body}");

    // The API and the NDJSON export give it back byte for byte.
    let (_, _, page) = app
        .read_api(&app.token(Scope::Read), "resource_type=workspace")
        .await;
    assert_eq!(page["events"][0]["resource_target"], target.as_str());
    let line: Value = serde_json::from_str(&exported_line(&app, "workspace").await).unwrap();
    assert_eq!(line["resource_target"], target.as_str());
    assert_eq!(line["user"]["username"], "mallory\u{202e}nimda");
    assert_eq!(
        line["diff"]["name"]["new"],
        format!("Z{marks_5000}").as_str()
    );

    // The exact filter finds it.
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let (_, _, found) = app
        .read_api(
            &app.token(Scope::Read),
            &format!("resource_target={encoded}"),
        )
        .await;
    assert_eq!(found["events"].as_array().unwrap().len(), 1);

    // The CSV holds it exactly too (a cell starting with a letter is not touched).
    let csv_body = app
        .get("/manage/audit/export?format=csv&resource_type=workspace")
        .await
        .text()
        .await
        .unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_body.as_bytes());
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[7], target.as_str());

    // The page: one row, markers for what is hidden, each value isolated, the
    // 5,000 marks cut to a count, the exact value offered to copy.
    let page = app
        .get("/manage/audit?resource_type=workspace")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("class=\"filter-link target\"").count(), 1);
    for marker in [
        "\\n",
        "\\r",
        "\\t",
        "\\u{1b}",
        "\\u{202e}",
        "\\u{2066}",
        "\\u{200d}",
    ] {
        assert!(
            page.contains(&format!("<span class=\"ctl\">{marker}</span>")),
            "marker {marker}"
        );
    }
    assert!(page.contains("[+4994 combining marks]"));
    assert!(page.contains("[+444 combining marks]"));
    // No hidden character reaches a drawn value as it is.
    let drawn: Vec<&str> = page
        .split("<bdi>")
        .skip(1)
        .map(|rest| &rest[..rest.find("</bdi>").unwrap()])
        .collect();
    assert!(drawn.len() > 5);
    for raw in [
        '\n', '\r', '\t', '\u{1b}', '\u{202e}', '\u{2066}', '\u{200d}',
    ] {
        assert!(
            drawn.iter().all(|d| !d.contains(raw)),
            "{raw:?} is drawn as it is"
        );
    }
    assert!(page.contains("<bdi>mallory"));
    let copy = Value::String(target.clone()).to_string();
    let escaped = copy.replace('&', "&#38;").replace('"', "&#34;");
    assert!(
        page.contains(&format!("data-copy-json=\"{escaped}\"")),
        "the exact target is on the page to copy"
    );
}

async fn nul_is_refused_the_same_on_every_path_and_backend(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    for (field, event) in [
        (
            "resource_target",
            json!({"user":{"username":"a"},"action":"create","resource_type":"workspace","resource_target":"a\u{0}b"}),
        ),
        (
            "user.username",
            json!({"user":{"username":"a\u{0}"},"action":"create","resource_type":"workspace"}),
        ),
    ] {
        let (status, problem) = app.ingest(&token, &json!([event])).await;
        assert_eq!(status, 400);
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("events[0].{field}: contains NUL (U+0000)")),
            "{detail}"
        );
        let line = format!("{event}\n");
        let summary = import(&mut app.conn(), line.as_bytes(), &mut ()).unwrap();
        assert_eq!(summary.stored, 0);
        assert!(
            summary.refused[0]
                .reason
                .starts_with(&format!("{field}: contains NUL (U+0000)")),
            "{:?}",
            summary.refused
        );
    }
    // A diff is stored as JSON text, where NUL is `\u0000`: kept there.
    let with_nul = json!({"user":{"username":"a"},"action":"write","resource_type":"template",
        "diff":{"na\u{0}me":{"old":"x\u{0}y","new":null}}});
    let (status, body) = app.ingest(&token, &with_nul).await;
    assert_eq!(status, 201, "{body}");
    let (_, _, page) = app.read_api(&app.token(Scope::Read), "action=write").await;
    assert_eq!(page["events"][0]["diff"], with_nul["diff"]);
}

async fn type_errors_name_the_field_path(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(Scope::Ingest);
    let good = json!({"user":{"username":"a"},"action":"create","resource_type":"workspace"});
    let with = |key: &str, value: Value| {
        let mut e = good.clone();
        e[key] = value;
        e
    };
    for (event, want) in [
        (
            with("status_code", json!("two hundred")),
            "events[0].status_code: invalid type: string \"two hundred\", expected an integer",
        ),
        (
            with("status_code", json!(70000)),
            "events[0].status_code: 70000 is not an HTTP status code",
        ),
        (
            with("time", json!(5)),
            "events[0].time: invalid type: integer `5`, expected a string",
        ),
        (
            with("user", json!("alice")),
            "events[0].user: invalid type: string \"alice\"",
        ),
        (
            with("user", json!({"username": 7})),
            "events[0].user.username: invalid type: integer `7`",
        ),
        (
            with("diff", json!([])),
            "events[0].diff: invalid type: sequence",
        ),
        (
            with("diff", json!({"colour": {"old": 1, "secret": "yes"}})),
            "events[0].diff.colour.secret: invalid type: string \"yes\", expected a boolean",
        ),
    ] {
        let (status, problem) = app.ingest(&token, &json!([event])).await;
        assert_eq!(status, 400, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with(want), "{detail}\n  wanted {want}");
    }
    // The index of the bad event in a large array, and in NDJSON.
    let mut many: Vec<Value> = vec![good.clone(); 60];
    many[56] = with("status_code", json!("two hundred"));
    let ndjson: String = many.iter().map(|e| format!("{e}\n")).collect();
    for (content_type, body) in [
        ("application/json", Value::Array(many.clone()).to_string()),
        ("application/x-ndjson", ndjson.clone()),
    ] {
        let (status, problem) = app.ingest_raw(&token, content_type, body).await;
        assert_eq!(status, 400);
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("events[56].status_code: invalid type: string"),
            "{content_type}: {detail}"
        );
        assert_eq!(problem["errors"][0]["path"], "events[56].status_code");
    }
    // The importer names the line and the field.
    let summary = import(&mut app.conn(), ndjson.as_bytes(), &mut ()).unwrap();
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].line, 57);
    assert!(
        summary.refused[0]
            .reason
            .starts_with("status_code: invalid type: string"),
        "{:?}",
        summary.refused
    );
}

async fn the_importer_refuses_a_line_that_is_not_utf8_alone(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let good = r#"{"user":{"username":"a"},"action":"create","resource_type":"workspace"}"#;
    let mut input = format!("{good}\n").into_bytes();
    input.extend_from_slice(b"{\"user\":{\"username\":\"\xff\xfe\"}}\n");
    input.extend_from_slice(format!("{good}\n").as_bytes());
    let summary = import(&mut app.conn(), input.as_slice(), &mut ()).unwrap();
    assert_eq!(summary.stored, 2);
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].line, 2);
    assert_eq!(summary.refused[0].reason, "the line is not UTF-8 text");
}

async fn a_retry_of_an_event_stored_before_exact_diffs_is_no_conflict(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // As the release before stored it: the same event under the fingerprint
    // it computed then (null dropped, numbers through f64, keys sorted; see
    // `events_stored_before_keep_their_fingerprint` in audit::event).
    let line = r#"{"id":"6a1f0e52-3c5e-4a8e-9d7b-2f1c0a9b8e77","time":"2026-06-01T12:00:00.5Z","user":{"username":"alice","email":"a@example.com"},"action":"write","resource_type":"template","resource_id":"t-1","resource_target":"Main","diff":{"b":{"old":null,"new":1.50},"a":{"new":{"z":1,"a":12345678901234567890123,"m":[1.0,-0,1E5]}},"c":{"old":"x","new":"y"}},"ip":"203.0.113.9","user_agent":"UA","status_code":200,"request_id":"r-1"}"#;
    let mut stored = crate::helpers::new_event(line);
    stored.content_hash = stored.earlier_hash.take().expect("an earlier fingerprint");
    auditdesk::audit::store::store_batch(
        &mut app.conn(),
        &[stored],
        auditdesk::db::events::OnConflict::RefuseBatch,
    )
    .unwrap();
    let token = app.token(Scope::Ingest);
    let (status, body) = app
        .ingest_raw(&token, "application/json", line.to_owned())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["already_present"], 1, "{body}");
    // Different content under that id is still a conflict.
    let changed = line.replace("\"new\":\"y\"", "\"new\":\"z\"");
    let (status, _) = app.ingest_raw(&token, "application/json", changed).await;
    assert_eq!(status, 409);
}

crate::cases! {
    both_backends() => [
        a_retry_of_an_event_stored_before_exact_diffs_is_no_conflict,
        random_hostile_events_come_back_exactly_through_api_and_import,
        null_and_absent_and_every_kind_of_value_stay_as_sent,
        a_hostile_target_is_stored_shown_and_exported_exactly,
        nul_is_refused_the_same_on_every_path_and_backend,
        type_errors_name_the_field_path,
        the_importer_refuses_a_line_that_is_not_utf8_alone,
    ];
}
