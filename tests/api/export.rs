//! Exports: CSV, NDJSON and Coder's shape, over HTTP and from the CLI.

use auditdesk::audit::store;
use auditdesk::auth::Role;
use auditdesk::db::events::OnConflict;

use crate::audit_page::{Predicate, app_with_known_events, expected};
use crate::helpers::{Backend, TestApp, TestDb, location, new_event};

const PW: &str = "correct horse battery";

async fn download(app: &TestApp, query: &str) -> (u16, String, String, String) {
    let r = app.get(&format!("/manage/audit/export?{query}")).await;
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (status, ct, cd, r.text().await.unwrap())
}

fn csv_rows(body: &str) -> Vec<csv::StringRecord> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.expect("the CSV parses"))
        .collect()
}

async fn exports_hold_exactly_the_filtered_events_in_order(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let cases: Vec<(&str, Predicate)> = vec![
        (
            "resource_type=workspace",
            Box::new(|k| k.resource_type == "workspace"),
        ),
        (
            "user=bob&action=write",
            Box::new(|k| k.user == "bob" && k.action == "write"),
        ),
        (
            "status=failure&resource_type=workspace",
            Box::new(|k| k.status >= 400 && k.resource_type == "workspace"),
        ),
    ];
    for (filters, pred) in cases {
        let want = expected(pred);
        let (status, ct, cd, body) = download(&app, &format!("format=csv&{filters}")).await;
        assert_eq!(status, 200);
        assert_eq!(ct, "text/csv; charset=utf-8");
        assert!(
            cd.starts_with("attachment; filename=\"auditdesk-audit-") && cd.ends_with(".csv\""),
            "{cd}"
        );
        let ids: Vec<String> = csv_rows(&body).iter().map(|r| r[6].to_owned()).collect();
        assert_eq!(ids, want, "csv {filters}");

        let (status, ct, _, body) = download(&app, &format!("format=ndjson&{filters}")).await;
        assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"));
        let ids: Vec<String> = body
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["resource_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, want, "ndjson {filters}");

        let (_, _, _, body) = download(&app, &format!("format=coder-json&{filters}")).await;
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), want.len());
        for line in &lines {
            assert_eq!(line["msg"], "audit_log");
            assert!(line["message"]["fields"]["audit_log"]["action"].is_string());
        }
    }
}

async fn csv_survives_commas_quotes_newlines_unicode_and_formulas(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let target = "Zoë, \"the\" admin ☃";
    let nasty = "Zoë, \"the\" admin\nsecond line ☃";
    let json = serde_json::json!({
        "user": {"username": "=HYPERLINK(\"http://evil.example\")", "email": "+1@example.com"},
        "action": "write", "resource_type": "oauth_configs", "resource_target": target,
        "resource_id": "-1", "user_agent": "@SUM(1)",
        "diff": {"client_secret": {"old": "s1", "new": "s2", "secret": true},
                 "description": {"old": "old, with comma", "new": nasty, "secret": false}}
    });
    let e = new_event(&json.to_string());
    store::store_batch(&mut app.conn(), &[e], OnConflict::RefuseBatch).unwrap();
    app.add_user("ann", Role::Auditor, PW);
    app.login("ann", PW).await;
    let (_, _, _, body) = download(&app, "format=csv&resource_type=oauth_configs").await;
    assert!(
        !body.contains("s1") && !body.contains("s2"),
        "no secret in the export"
    );
    let rows = csv_rows(&body);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(&r[7], target, "the target comes back exactly");
    assert_eq!(
        &r[2], "'=HYPERLINK(\"http://evil.example\")",
        "formula neutralised"
    );
    assert_eq!(&r[3], "'+1@example.com");
    assert_eq!(&r[6], "'-1");
    assert_eq!(&r[10], "'@SUM(1)");
    // One line per field: a line break inside a value is written `\n`, so it
    // cannot pass for another field's line (the JSON exports keep it as it is).
    assert_eq!(
        &r[12],
        format!(
            "client_secret: ******\ndescription: old, with comma → {}",
            nasty.replace('\n', "\\n")
        )
    );
    // JSON exports are exact: no formula escaping there.
    let (_, _, _, nd) = download(&app, "format=ndjson&resource_type=oauth_configs").await;
    let v: serde_json::Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(v["user"]["username"], "=HYPERLINK(\"http://evil.example\")");
    assert_eq!(
        v["diff"]["client_secret"],
        serde_json::json!({"secret": true})
    );
}

async fn an_ndjson_export_imported_elsewhere_exports_the_same_bytes(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let (_, _, _, first) = download(&app, "format=ndjson&resource_type=workspace").await;
    assert!(first.lines().count() > 10);
    let other = TestDb::new(backend).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &first).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditdesk"))
        .args([
            "import",
            file.to_str().unwrap(),
            "--database-url",
            &other.url_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_auditdesk"))
        .args([
            "export",
            "--format",
            "ndjson",
            "--resource-type",
            "workspace",
            "--database-url",
            &other.url_string(),
        ])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        first,
        "byte for byte"
    );
}

async fn exports_are_audited_and_closed_to_members_and_strangers(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let (status, _, _, _) = download(&app, "format=csv&user=bob&action=write").await;
    assert_eq!(status, 200);
    let newest = store::latest(&mut app.conn(), 1).unwrap().remove(0);
    assert_eq!(
        (newest.action.as_str(), newest.user.username.as_str()),
        ("export", "ann")
    );
    assert_eq!(newest.diff["format"].new, Some(serde_json::json!("csv")));
    assert_eq!(
        newest.diff["filters"].new,
        Some(serde_json::json!("action=write&user=bob"))
    );

    let stranger = crate::helpers::client();
    let r = stranger
        .get(app.url("/manage/audit/export?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/login?next="));
    app.add_user("mia", Role::Member, PW);
    let member = app.another_visitor();
    member.login("mia", PW).await;
    assert_eq!(
        member.get("/manage/audit/export?format=csv").await.status(),
        403
    );
}

async fn bad_export_requests_are_400_naming_the_problem(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    for (query, needle) in [
        ("format=xml", "unknown export format &#39;xml&#39;"),
        ("format=csv&action=read", "action: unknown action"),
        ("format=csv&from=2026-99-01", "from:"),
        (
            "format=csv&limit=10",
            "limit: an export holds every matching event",
        ),
        ("format=csv&colour=red", "colour"),
    ] {
        let (status, _, _, body) = download(&app, query).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body.contains(needle) || body.contains(&needle.replace("&#39;", "'")),
            "{query}: {body}"
        );
    }
}

async fn the_cli_exports_with_the_page_filters(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_auditdesk"))
            .args(["export"])
            .args(args)
            .args(["--database-url", &app.db.url_string()])
            .output()
            .unwrap()
    };
    // The resource ids of a CSV export with these flags.
    let exported = |args: &[&str]| -> Vec<String> {
        let out = run(&[&["--format", "csv"], args].concat());
        assert!(out.status.success(), "{args:?}");
        csv_rows(&String::from_utf8(out.stdout).unwrap())
            .iter()
            .map(|r| r[6].to_owned())
            .collect()
    };
    assert_eq!(
        exported(&["--user", "carol", "--resource-type", "workspace"]),
        expected(|k| k.user == "carol" && k.resource_type == "workspace")
    );
    // Not empty: a search that found nothing would not pass.
    let want = expected(|k| k.user == "carol" && k.action != "open" && k.target == "target-1");
    assert_eq!(want.len(), 2);
    assert_eq!(
        exported(&["--search", "user:carol -action:open target-1"]),
        want
    );
    let bad = run(&["--search", "acton:write"]);
    assert!(!bad.status.success());
    let err = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--search: 'acton:write': 'acton' is not a key"),
        "{err}"
    );
    let bad = run(&["--from", "last tuesday"]);
    assert!(!bad.status.success());
    let err = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--from: 'last tuesday' is not a date"),
        "{err}"
    );
}

/// An export started over a raw connection whose receive buffer is tiny and
/// which reads nothing past the status line: it stays running, holding its
/// turn, until [`read_to_end`] takes the rest.
async fn stalled_export(app: &TestApp, cookie: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /manage/audit/export?format=csv HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200", "the export started");
    stream
}

/// The rest of a stalled export's response: its body, de-chunked.
async fn read_to_end(mut stream: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, mut rest) = raw.split_once("\r\n\r\n").expect("headers, then the body");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

async fn a_bounded_number_of_exports_run_at_once_and_each_started_one_completes(backend: Backend) {
    // As many as the larger pool holds (PostgreSQL's 16), so that pages
    // answering beside them shows that exports do not take the pool's.
    const HELD: usize = 16;
    let Some(app) = TestApp::spawn_with(backend, |c| c.max_exports = HELD).await else {
        return;
    };
    let events: Vec<_> = (0..30_000)
        .map(|n| {
            new_event(&format!(
                r#"{{"time":"2026-03-01T12:00:00.000Z","user":{{"username":"svc{}"}},"action":"create","resource_type":"workspace","resource_target":"load-{n}","diff":{{"cpu_cores":{{"old":2,"new":4}}}}}}"#,
                n % 7
            ))
        })
        .collect();
    for chunk in events.chunks(5_000) {
        store::store_batch(&mut app.conn(), chunk, OnConflict::RefuseBatch).unwrap();
    }
    app.add_user("ann", Role::Auditor, PW);
    let cookie = crate::helpers::session_cookie(&app.login("ann", PW).await).unwrap();
    let before = auditdesk::db::events::count_all(&mut app.conn()).unwrap();
    let exports_recorded = || {
        store::latest(&mut app.conn(), 100)
            .unwrap()
            .iter()
            .filter(|e| e.action.as_str() == "export")
            .count()
    };

    // HEAD says what a download would be, and exports nothing.
    let head = app
        .client
        .head(app.url("/manage/audit/export?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(exports_recorded(), 0, "a HEAD is not an export");

    let mut held = Vec::new();
    for _ in 0..HELD {
        held.push(stalled_export(&app, &cookie).await);
    }
    // Pages answer while they all run: exports hold connections of their own.
    for _ in 0..3 {
        assert_eq!(app.get("/manage/audit").await.status(), 200);
    }
    // One more export is refused before any byte, with when to come back.
    let refused = app.get("/manage/audit/export?format=csv").await;
    assert_eq!(refused.status(), 503, "{:?}", refused.headers());
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = refused.text().await.unwrap();
    assert!(
        page.contains(&format!(
            "runs at most {HELD} exports at once, and {HELD} are running now"
        )),
        "{page}"
    );
    assert_eq!(
        exports_recorded(),
        HELD,
        "a refused export is not on record"
    );

    // A client that hangs up gives its turn back.
    drop(held.pop());
    let mut status = 0;
    for _ in 0..20 {
        let r = app.get("/manage/audit/export?format=csv").await;
        status = r.status().as_u16();
        if status == 200 {
            assert!(!r.text().await.unwrap().is_empty());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "the hung-up export's turn came back");

    // Every started export completes, whole.
    for stalled in held {
        let body = read_to_end(stalled).await;
        assert!(body.ends_with('\n'));
        let rows = csv_rows(&body).len() as i64;
        // Everything stored before, plus its own export event and perhaps
        // others', recorded before this one read its first page.
        assert!(
            (before + 1..=before + HELD as i64 + 1).contains(&rows),
            "{rows} rows, {before} stored before"
        );
    }
    // Their turns are back.
    let (status, _, _, body) = download(&app, "format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(
        csv_rows(&body).len() as i64,
        before + exports_recorded() as i64
    );
}

crate::cases! {
    both_backends() => [
        a_bounded_number_of_exports_run_at_once_and_each_started_one_completes,
        exports_hold_exactly_the_filtered_events_in_order,
        csv_survives_commas_quotes_newlines_unicode_and_formulas,
        an_ndjson_export_imported_elsewhere_exports_the_same_bytes,
        exports_are_audited_and_closed_to_members_and_strangers,
        bad_export_requests_are_400_naming_the_problem,
        the_cli_exports_with_the_page_filters,
    ];
}
