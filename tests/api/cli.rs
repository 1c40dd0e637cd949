//! The `auditdesk` binary, run as a user would run it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use auditdesk::db::events;

use crate::helpers::{Backend, TestDb};

/// Runs the binary against `db` with `stdin`, and waits for it.
pub fn auditdesk(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditdesk"))
        .args(args)
        .env("DATABASE_URL", db.url_string())
        .env_remove("AUDITDESK_BIND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // A command that fails before reading its input (a refused name) may exit
    // before this write: its status and output are what the tests check.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failure with exactly one line on stderr that contains `needle`.
fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure, got {:?}", o.status);
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("auditdesk: error: "), "{err}");
    assert!(err.contains(needle), "{err:?} should contain {needle:?}");
}

async fn user_commands_manage_accounts_and_are_audited(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let add = |name: &str, email: &str, role: &str, pw: &str| {
        auditdesk(
            &db,
            &[
                "user",
                "add",
                "--username",
                name,
                "--email",
                email,
                "--role",
                role,
                "--password-stdin",
            ],
            pw,
        )
    };
    let ok = add(
        "alice",
        "Alice@Example.com",
        "site_manager",
        "correct horse\n",
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        add("bob", "bob@example.com", "auditor", "battery staple\n")
            .status
            .success()
    );

    let list = auditdesk(&db, &["user", "list"], "");
    assert_eq!(
        stdout(&list),
        "alice\talice@example.com\tsite_manager\tactive\nbob\tbob@example.com\tauditor\tactive\n"
    );

    assert_one_line_error(
        &add(
            "alice",
            "other@example.com",
            "member",
            "quiet lantern orbit\n",
        ),
        "username 'alice' is already taken",
    );
    assert_one_line_error(
        &add(
            "carol",
            "ALICE@example.com",
            "member",
            "quiet lantern orbit\n",
        ),
        "email 'alice@example.com' is already used",
    );
    assert_one_line_error(
        &add(
            "carol",
            "carol@example.com",
            "admin",
            "quiet lantern orbit\n",
        ),
        "unknown role 'admin'",
    );
    assert_one_line_error(
        &add("carol", "carol@example.com", "member", "\n"),
        "the password is empty",
    );
    // Common passwords, and ones made of the account's own name, are refused with the reason.
    for weak in ["password", "12345678", "123456789012", "          "] {
        assert_one_line_error(
            &add("carol", "carol@example.com", "member", &format!("{weak}\n")),
            "the password is too easy to guess",
        );
    }
    // Strong alone, but made of the account's own email.
    assert_one_line_error(
        &add(
            "carol",
            "wintergreen-1987@example.com",
            "member",
            "wintergreen-1987\n",
        ),
        "the password is too easy to guess",
    );
    assert_one_line_error(
        &add(
            "Carol!",
            "carol@example.com",
            "member",
            "quiet lantern orbit\n",
        ),
        "invalid username",
    );
    assert_one_line_error(
        &add("carol", "not-an-email", "member", "quiet lantern orbit\n"),
        "invalid email",
    );
    assert_one_line_error(
        &auditdesk(
            &db,
            &[
                "user",
                "add",
                "--username",
                "carol",
                "--email",
                "c@example.com",
                "--role",
                "member",
            ],
            "",
        ),
        "no password given",
    );
    assert_one_line_error(
        &auditdesk(&db, &["user", "suspend", "nobody"], ""),
        "no user named 'nobody'",
    );
    assert_one_line_error(
        &auditdesk(&db, &["user", "suspend", "alice"], ""),
        "last active site manager",
    );
    assert_one_line_error(
        &auditdesk(&db, &["user", "set-role", "alice", "member"], ""),
        "last active site manager",
    );

    assert!(
        auditdesk(&db, &["user", "set-role", "bob", "site_manager"], "")
            .status
            .success()
    );
    assert!(
        auditdesk(&db, &["user", "suspend", "alice"], "")
            .status
            .success()
    );
    assert!(
        auditdesk(&db, &["user", "reactivate", "alice"], "")
            .status
            .success()
    );
    assert_one_line_error(
        &auditdesk(
            &db,
            &["user", "reset-password", "alice", "--password-stdin"],
            "alice@example.com\n",
        ),
        "the password is too easy to guess",
    );
    let reset = auditdesk(
        &db,
        &["user", "reset-password", "alice", "--password-stdin"],
        "a new secret pw\n",
    );
    assert!(reset.status.success(), "{}", stderr(&reset));
    let list = auditdesk(&db, &["user", "list"], "");
    assert!(stdout(&list).contains("bob\tbob@example.com\tsite_manager\tactive"));

    // Every change is an event by the local operator, with its field and diff.
    let mut conn = db.connect();
    let all = events::count_all(&mut conn).unwrap();
    assert_eq!(
        all, 6,
        "2 creates, set-role, suspend, reactivate, reset-password"
    );
    let rows: Vec<_> = auditdesk::db::events::top_actors(&mut conn, 5).unwrap();
    assert_eq!(rows[0].0, "local-operator");
    let password_events = stored_diffs(&mut conn);
    assert!(
        password_events
            .iter()
            .any(|d| d == r#"{"role":{"old":"auditor","new":"site_manager","secret":false}}"#)
    );
    assert!(
        password_events
            .iter()
            .any(|d| d == r#"{"suspended":{"old":false,"new":true,"secret":false}}"#)
    );
    assert!(
        password_events
            .iter()
            .any(|d| d == r#"{"password":{"secret":true}}"#)
    );
    assert!(
        !password_events
            .iter()
            .any(|d| d.contains("a new secret pw")),
        "a password never reaches the log"
    );
}

fn stored_diffs(conn: &mut auditdesk::db::DbConn) -> Vec<String> {
    let mut diffs = Vec::new();
    for n in 1..=20i64 {
        // Ids are assigned in order from 1 on a fresh database.
        if let Some(row) = find_by_row_id(conn, n) {
            diffs.push(row);
        }
    }
    diffs
}

fn find_by_row_id(conn: &mut auditdesk::db::DbConn, id: i64) -> Option<String> {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Diff {
        #[diesel(sql_type = Text)]
        diff: String,
    }
    let q = diesel::sql_query("SELECT diff FROM events WHERE id = $1").bind::<BigInt, _>(id);
    let rows: Vec<Diff> = match conn.backend() {
        auditdesk::db::AnyConnection::Sqlite(c) => {
            diesel::sql_query("SELECT diff FROM events WHERE id = ?")
                .bind::<BigInt, _>(id)
                .load(c)
                .unwrap()
        }
        auditdesk::db::AnyConnection::Postgres(c) => q.load(c).unwrap(),
    };
    rows.into_iter().next().map(|r| r.diff)
}

async fn token_commands_show_the_secret_once_and_revoke_at_once(backend: Backend) {
    use auditdesk::auth::tokens;
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let created = auditdesk(
        &db,
        &["token", "create", "--name", "platform", "--scope", "ingest"],
        "",
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let secret = stdout(&created).trim().to_owned();
    assert!(
        secret.starts_with("adk_") && secret.len() > 40,
        "only the secret on stdout: {secret}"
    );
    assert!(stderr(&created).contains("shown only this once"));
    let token = tokens::authenticate(&mut db.connect(), &secret)
        .unwrap()
        .expect("the printed secret works");
    assert_eq!(token.scope.as_str(), "ingest");

    let list = stdout(&auditdesk(&db, &["token", "list"], ""));
    assert!(list.contains("platform\tingest"), "{list}");
    assert!(!list.contains(&secret[4..20]), "list never shows a secret");

    let revoked = auditdesk(&db, &["token", "revoke", &token.id.to_string()], "");
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(
        tokens::authenticate(&mut db.connect(), &secret)
            .unwrap()
            .is_none(),
        "refused at once"
    );
    let list = stdout(&auditdesk(&db, &["token", "list"], ""));
    let line = list.lines().find(|l| l.contains("platform")).unwrap();
    assert!(
        !line.ends_with("\t-"),
        "the list shows when it was revoked: {line}"
    );

    // Both changes are audited with the local operator as the actor.
    let recent = auditdesk::audit::store::latest(&mut db.connect(), 2).unwrap();
    let seen: Vec<(&str, &str)> = recent
        .iter()
        .map(|e| (e.action.as_str(), e.resource_type.as_str()))
        .collect();
    assert_eq!(seen, [("delete", "api_key"), ("create", "api_key")]);
    assert!(recent.iter().all(|e| e.user.username == auditdesk::auth::ChangedBy::local_operator().actor.username));

    assert_one_line_error(
        &auditdesk(
            &db,
            &["token", "create", "--name", "x", "--scope", "admin"],
            "",
        ),
        "admin",
    );
    assert_one_line_error(&auditdesk(&db, &["token", "revoke", "999"], ""), "999");
}

fn bad_database_urls_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_auditdesk"))
            .args(["migrate", "--database-url", url])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert_one_line_error(
        &run("mysql://localhost/x"),
        "unsupported database URL scheme 'mysql://'",
    );
    assert_one_line_error(
        &run("/no/such/dir/a.db"),
        "SQLite database directory '/no/such/dir' does not exist",
    );
    assert_one_line_error(
        &run("postgres://postgres@127.0.0.1:1/nothing"),
        "cannot connect to the database: PostgreSQL at",
    );
    assert_one_line_error(
        &run("postgres://u:hunter2@127.0.0.1:1/x"),
        "postgres://u:***@127.0.0.1:1/x",
    );
    assert!(
        !stderr(&run("postgres://u:hunter2@127.0.0.1:1/x")).contains("hunter2"),
        "no password in errors"
    );
}

/// A running `auditdesk serve`, stopped on drop.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `auditdesk serve --bind 127.0.0.1:0` in `dir` and returns it with its port.
fn serve(dir: &Path, database_url: Option<&str>) -> (Served, u16) {
    serve_with(dir, database_url, &[], Stdio::null())
}

/// Starts `auditdesk serve --bind 127.0.0.1:0 EXTRA...` in `dir`, its stdout going
/// to `stdout`, and returns it with the port it reported.
pub fn serve_with(
    dir: &Path,
    database_url: Option<&str>,
    extra: &[&str],
    stdout: Stdio,
) -> (Served, u16) {
    let (served, port, _log) = serve_logged(dir, database_url, extra, stdout);
    (served, port)
}

/// As [`serve_with`], and the server's log lines (stderr) after the port.
pub fn serve_logged(
    dir: &Path,
    database_url: Option<&str>,
    extra: &[&str],
    stdout: Stdio,
) -> (Served, u16, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditdesk"));
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdout(stdout)
        .stderr(Stdio::piped());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let mut child = Served(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("port=").nth(1) {
            let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
            // Keep draining stderr so the server never blocks on a full pipe.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            return (child, port, rx);
        }
    }
    panic!("auditdesk serve did not report its port");
}

async fn serve_answers_health_checks(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pg;
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let Some(db) = TestDb::new(Backend::Postgres) else {
                return;
            };
            pg = db;
            Some(pg.url_string())
        }
    };
    let (_server, port) = serve(dir.path(), url.as_deref());
    let client = crate::helpers::client();
    for path in ["/healthz", "/readyz"] {
        let r = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    if backend == Backend::Sqlite {
        assert!(
            dir.path().join("auditdesk.db").is_file(),
            "the default database is created in the working directory"
        );
    }
}

async fn import_stores_good_lines_names_bad_ones_and_is_idempotent(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = |n: u32| {
        format!(
            r#"{{"id":"00000000-0000-4000-8000-{n:012}","time":"2026-03-01T12:00:00.5Z","user":{{"username":"u{n}","email":"u{n}@example.com"}},"action":"open","resource_type":"workspace","resource_id":"ws-{n}","resource_target":"w{n}","diff":{{}},"ip":"192.0.2.1","user_agent":"x","status_code":200,"request_id":"r{n}"}}"#
        )
    };
    let lines = [
        good(1),
        "{not json".to_owned(),
        good(2),
        String::new(),
        r#"{"user":{"username":"x"},"action":"read","resource_type":"t"}"#.to_owned(),
        good(3),
    ];
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let path = file.to_str().unwrap();

    let first = auditdesk(&db, &["import", path], "");
    assert!(
        !first.status.success(),
        "refused lines make the exit status non-zero"
    );
    let err = stderr(&first);
    assert!(err.contains("line 2: event:"), "{err}");
    assert!(
        err.contains("line 5: action: unknown action 'read'"),
        "{err}"
    );
    assert!(
        err.contains("read 5 events: 3 stored, 0 already present, 2 refused"),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("auditdesk: error: 2 line(s) refused"),
        "{err}"
    );
    assert_eq!(events::count_all(&mut db.connect()).unwrap(), 3);

    let good_only = dir.path().join("good.ndjson");
    std::fs::write(
        &good_only,
        format!("{}\n{}\n{}\n", good(1), good(2), good(4)),
    )
    .unwrap();
    let again = auditdesk(&db, &["import", good_only.to_str().unwrap()], "");
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("read 3 events: 1 stored, 2 already present, 0 refused"),
        "{}",
        stderr(&again)
    );

    let from_stdin = auditdesk(&db, &["import", "-"], &format!("{}\n", good(5)));
    assert!(from_stdin.status.success());
    assert!(stderr(&from_stdin).contains("1 stored"));
    assert_eq!(events::count_all(&mut db.connect()).unwrap(), 5);

    assert_one_line_error(
        &auditdesk(&db, &["import", "/no/such/file"], ""),
        "cannot open /no/such/file",
    );

    // The first import went into an empty table, so it dropped the secondary
    // indexes and built them afterwards: they are all there again.
    let all_indexes = events::index_names(&mut db.connect()).unwrap();
    let listed = events::secondary_index_names(&mut db.connect()).len();
    assert_eq!(all_indexes.len(), listed + 1, "{all_indexes:?}");
    // An import killed with its indexes dropped is repaired on the next start.
    events::drop_secondary_indexes(&mut db.connect()).unwrap();
    assert_eq!(
        events::index_names(&mut db.connect()).unwrap(),
        ["events_event_uuid"]
    );
    assert!(auditdesk(&db, &["migrate"], "").status.success());
    assert_eq!(events::index_names(&mut db.connect()).unwrap(), all_indexes);
}

async fn demo_fills_an_instance_once(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let first = auditdesk(&db, &["demo"], "");
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("demo: 3000 sample events stored"),
        "{}",
        stderr(&first)
    );
    let second = auditdesk(&db, &["demo"], "");
    let err = stderr(&second);
    // Within the same hour the sample is the same; across an hour it is a new one.
    assert!(
        err.contains("0 sample events stored, 3000 already present")
            || err.contains("3000 sample events stored"),
        "{err}"
    );
    let mut conn = db.connect();
    assert!(events::count_all(&mut conn).unwrap() >= 3000);
    let types = events::resource_types(&mut conn).unwrap();
    assert!(types.len() >= 8, "a varied sample: {types:?}");
}

crate::cases! {
    both_backends() => [
        user_commands_manage_accounts_and_are_audited,
        token_commands_show_the_secret_once_and_revoke_at_once,
        serve_answers_health_checks,
        import_stores_good_lines_names_bad_ones_and_is_idempotent,
        demo_fills_an_instance_once,
    ];
    blocking() => [
        bad_database_urls_give_one_clear_line,
    ];
}
