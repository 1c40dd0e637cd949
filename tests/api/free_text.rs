//! Free text (`q`, CONTRACT.md "Free text and the search bar") on both
//! backends: what it finds and what it does not, through the trigram index
//! for a rare term and the walk of the time index for a common one, with the
//! other filters, paging and the capped count; and the search text of events
//! stored before the index existed.

use auditdesk::audit::filter::{AuditQuery, Cursor, QueryParams, encode_query};
use auditdesk::audit::query::{MatchCount, count_matching, fetch_page};
use auditdesk::audit::{NewEvent, store};
use auditdesk::db::DbConn;
use auditdesk::db::events::OnConflict;
use diesel::connection::SimpleConnection;

use crate::helpers::{Backend, TestDb, new_event};

/// An event with these fields (its resource id is `id`), one hour apart by `n`.
fn event(n: u32, id: &str, target: &str, user: &str, diff: &str) -> NewEvent {
    let json = serde_json::json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "time": "2026-03-01T00:00:00Z",
        "user": {"username": user, "email": format!("{user}@Example.com")},
        "action": "write",
        "resource_type": "workspace",
        "resource_id": id,
        "resource_target": target,
        "ip": "192.0.2.1",
        "user_agent": "test",
        "status_code": if n.is_multiple_of(2) { 200 } else { 403 },
        "request_id": format!("Req-{n}"),
    });
    let mut json = json.to_string();
    // The diff as raw text, so that the test writes exactly what it sends.
    json.pop();
    json.push_str(&format!(r#","diff":{diff}}}"#));
    let mut e = new_event(&json);
    // Distinct times, newest last, so that the order is known.
    e.event.time += chrono::Duration::seconds(i64::from(n));
    e
}

fn the_events() -> Vec<NewEvent> {
    vec![
        event(1, "e1", "Straße-Ärger", "alice", "{}"),
        event(2, "e2", "ΟΔΟΣ", "bob", "{}"),
        event(
            3,
            "e3",
            "plain",
            "carol",
            r#"{"GPU_Vendor":{"old":"NVIDIA","new":"AMD"}}"#,
        ),
        event(
            4,
            "e4",
            "plain",
            "carol",
            r#"{"password":{"secret":true},"quota":{"old":12345678901234567890,"new":null}}"#,
        ),
        event(5, "e5", "50%_off\\now", "dave", "{}"),
        event(6, "e6", "abc", "def", "{}"),
        event(
            7,
            "e7",
            "x",
            "y",
            r#"{"note":{"new":"line1\nline2 a\u0000b"}}"#,
        ),
        event(8, "e8", r#"say "hi""#, "eve", "{}"),
    ]
}

/// The page's query for free text `q` and the other parameters in `more`
/// (`&name=value...`), 500 events a page unless `more` says otherwise.
fn query(q: &str, more: &str) -> AuditQuery {
    let limit = if more.contains("limit=") {
        ""
    } else {
        "&limit=500"
    };
    let qs = format!("{}{limit}{more}", encode_query(&[("q", q.to_owned())]));
    let parsed = QueryParams::parse(&qs, &[]);
    assert!(parsed.errors.is_empty(), "{qs}: {:?}", parsed.errors);
    AuditQuery::parse(&parsed.raw).unwrap_or_else(|e| panic!("{qs}: {e:?}"))
}

/// The resource ids a query finds, newest first, and its count.
fn found(conn: &mut DbConn, q: &AuditQuery) -> (Vec<String>, MatchCount) {
    let page = fetch_page(conn, q).unwrap();
    let ids = page.events.iter().map(|e| e.resource_id.clone()).collect();
    (ids, count_matching(conn, &q.filter).unwrap())
}

/// A new database of `backend` with its tables, and a connection to it
/// (`None`, said loudly by `TestDb`, when the backend is not available).
fn migrated(backend: Backend) -> Option<(TestDb, DbConn)> {
    let db = TestDb::new(backend)?;
    let mut conn = db.connect();
    auditdesk::db::run_migrations(&mut conn).unwrap();
    Some((db, conn))
}

/// The target of the `n`th of the tests' 1,500 events: "common" in each,
/// "tenth" in every 10th, "rare" in every 100th.
fn tiered_target(n: u32) -> String {
    let mut target = format!("common-{n}");
    if n.is_multiple_of(10) {
        target.push_str("-tenth");
    }
    if n.is_multiple_of(100) {
        target.push_str("-rare");
    }
    target
}

/// The resource ids of every page of a query, following its "Older" links.
fn every_page(conn: &mut DbConn, q: &AuditQuery) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let mut page_query = q.clone();
        page_query.cursor = cursor;
        let page = fetch_page(conn, &page_query).unwrap();
        seen.extend(page.events.iter().map(|e| e.resource_id.clone()));
        match page.older {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

/// Adds up to `n` more events to SQLite's free-text index (it is written
/// behind the log, by the server's thread; these tests have no server), all
/// of them when `None`.
fn index(conn: &mut DbConn, n: Option<i64>) {
    use auditdesk::db::text_index::index_more;
    match n {
        Some(n) => {
            index_more(conn, n).unwrap();
        }
        None => while index_more(conn, 1000).unwrap() > 0 {},
    }
}

fn ids(conn: &mut DbConn, q: &str) -> Vec<String> {
    found(conn, &query(q, "")).0
}

async fn what_free_text_finds_and_what_it_does_not(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    store::store_batch(&mut conn, &the_events(), OnConflict::RefuseBatch).unwrap();
    let cases: &[(&str, &[&str])] = &[
        // Unicode case folding, the same on both backends.
        ("straße-ärger", &["e1"]),
        ("STRASSE", &[]),
        ("ärg", &["e1"]),
        ("ΆΡΓ", &[]),
        ("οδοσ", &["e2"]),
        ("ΟΔΟς", &["e2"]),
        // Each field the contract names.
        ("alice", &["e1"]),
        (
            "@example.COM",
            &["e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1"],
        ),
        ("e3", &["e3"]),
        ("req-5", &["e5"]),
        ("gpu_vendor", &["e3"]),
        ("nvidia", &["e3"]),
        ("amd", &["e3"]),
        ("12345678901234567890", &["e4"]),
        ("null", &["e4"]),
        ("password", &["e4"]),
        ("quota", &["e4"]),
        // Not the JSON around the values.
        ("\"old\"", &[]),
        ("new", &[]),
        ("secret", &[]),
        ("{", &[]),
        // Wildcards are literal.
        ("50%_off\\", &["e5"]),
        ("%", &["e5"]),
        ("_", &["e5", "e3"]),
        ("\\n", &["e5"]),
        ("*", &[]),
        ("[", &[]),
        // A double quote, which the FTS5 query doubles.
        ("\"hi\"", &["e8"]),
        ("y \"h", &["e8"]),
        // Never across the end of one field and the start of the next.
        ("abcdef", &[]),
        ("cde", &[]),
        ("bcd", &[]),
        // Control characters inside a value; NUL splits it.
        ("line1\nline2", &["e7"]),
        ("ab", &["e6"]),
        // One and two characters.
        ("ä", &["e1"]),
        ("οσ", &["e2"]),
        ("zq", &[]),
    ];
    for (q, want) in cases {
        assert_eq!(ids(&mut conn, q), *want, "q={q:?}");
        let (_, count) = found(&mut conn, &query(q, ""));
        assert_eq!(
            count,
            MatchCount::Exactly(want.len() as i64),
            "count of q={q:?}"
        );
    }
    // With other filters.
    assert_eq!(
        found(&mut conn, &query("carol", "&status=failure")).0,
        ["e3"]
    );
    assert_eq!(found(&mut conn, &query("example", "&user=bob")).0, ["e2"]);
    assert_eq!(
        found(&mut conn, &query("xample", "&status=success")).0,
        ["e8", "e6", "e4", "e2"]
    );
}

/// A term in more events than a page fetches by the index is looked for by
/// walking the time index: the same events either way, paged without gaps or
/// repeats, and counted up to the cap.
async fn a_common_and_a_rare_term_page_and_count_alike(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    // 1,500 events with "common", every 100th with "rare" too.
    let events: Vec<NewEvent> = (1..=1500)
        .map(|n| {
            let target = if n % 100 == 0 {
                format!("common-rare-{n}")
            } else {
                format!("common-{n}")
            };
            event(n, &format!("id{n}"), &target, "u", "{}")
        })
        .collect();
    store::store_batch(&mut conn, &events, OnConflict::RefuseBatch).unwrap();
    for (term, more, expect) in [
        ("COMMON", "", 1500),
        ("common", "&status=failure", 750),
        ("rare", "", 15),
        ("rare", "&status=success", 15),
        ("mmo", "&status=failure", 750),
    ] {
        let q = query(term, &format!("{more}&limit=100"));
        let (_, count) = found(&mut conn, &q);
        assert_eq!(count, MatchCount::Exactly(expect), "count of {term}{more}");
        let seen = every_page(&mut conn, &q);
        let want: Vec<String> = (1..=1500u32)
            .rev()
            .filter(|n| term != "rare" || n % 100 == 0)
            .filter(|n| match more {
                "&status=failure" => n % 2 == 1,
                "&status=success" => n % 2 == 0,
                _ => true,
            })
            .map(|n| format!("id{n}"))
            .collect();
        assert_eq!(seen, want, "pages of {term}{more}");
    }
}

/// On SQLite each way of reading a term's candidates is taken where it is the
/// cheapest, and each finds exactly the events that hold the term, page by
/// page and counted: a rare term's candidates read one by one, a term in one
/// event in ten found by walking the time index through its candidates, a
/// common one by testing every event of the walk, a term of two
/// characters through the trigrams that start with it, and a term whose two
/// rarest trigrams are each common through the events with both.
async fn each_way_of_reading_the_index_finds_the_same_events(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    // 1,500 events (see `tiered_target`); "q7" ends the target of every 7th
    // (a pair at the end of a field).
    let events: Vec<NewEvent> = (1..=1500)
        .map(|n| {
            let mut target = tiered_target(n);
            if n % 7 == 0 {
                target.push_str("-Q7");
            }
            // Each half of "qxzkvw" in hundreds of events, both in 50, the
            // term itself in 10.
            for (every, word) in [(5, "-qxz"), (6, "-kvw"), (150, "-qxzkvw")] {
                if n % every == 0 {
                    target.push_str(word);
                }
            }
            event(n, &format!("id{n}"), &target, "u", "{}")
        })
        .collect();
    store::store_batch(&mut conn, &events, OnConflict::RefuseBatch).unwrap();
    // FTS5 reads U+FFFE and U+FFFF as U+FFFD: the pair's range must too.
    let odd = event(1501, "odd", "odd-\u{ffff}\u{fffe}", "u", "{}");
    store::store_batch(&mut conn, &[odd], OnConflict::RefuseBatch).unwrap();
    assert_eq!(ids(&mut conn, "-\u{ffff}"), ["odd"]);
    assert_eq!(ids(&mut conn, "\u{ffff}\u{fffe}"), ["odd"]);
    assert_eq!(ids(&mut conn, "d-\u{ffff}"), ["odd"]);
    assert!(ids(&mut conn, "\u{fffd}\u{fffe}").is_empty());
    let sqlite = sqlite(backend);
    // The index 1,301 events behind the log (more than a page's search
    // would test one by one), then 500, then caught up: the same events.
    for round in ["far behind", "behind", "caught up"] {
        match round {
            "far behind" => index(&mut conn, Some(200)),
            "behind" => index(&mut conn, Some(801)),
            _ => index(&mut conn, None),
        }
        for (term, more, holds, reading) in [
            (
                "RARE",
                "",
                (|n| n % 100 == 0) as fn(u32) -> bool,
                "candidates",
            ),
            ("tenth", "", |n| n % 10 == 0, "walk of candidates"),
            ("common", "", |_| true, "walk"),
            ("q7", "", |n| n % 7 == 0, "walk of candidates"),
            (
                "q7",
                "&status=failure",
                |n| n % 14 == 7,
                "walk of candidates",
            ),
            ("ra", "", |n| n % 100 == 0, "candidates"),
            ("zz", "", |_| false, "none"),
            ("-tenth-rare", "", |n| n % 100 == 0, "candidates"),
            // Its two trigrams are in 300 and 250 events: the 50 with both are
            // few enough to read one by one.
            ("qxzkvw", "", |n| n % 150 == 0, "candidates"),
        ] {
            let q = query(term, &format!("&limit=20{more}"));
            let criteria = auditdesk::audit::query::criteria(&q.filter);
            let used = auditdesk::db::events::text_reading(&mut conn, &criteria, 21).unwrap();
            if round == "caught up" {
                assert_eq!(used, if sqlite { reading } else { "walk" }, "{term}{more}");
            }
            // Far behind, a rare term is still looked up in the index (the
            // events it lacks are tested for the term once), not tested on
            // every event.
            if round == "far behind" && sqlite && matches!(term, "RARE" | "zz") {
                assert_eq!(used, reading, "{term}, index {round}");
            }
            let want: Vec<String> = (1..=1500u32)
                .rev()
                .filter(|&n| holds(n))
                .map(|n| format!("id{n}"))
                .collect();
            let (_, count) = found(&mut conn, &q);
            assert_eq!(
                count,
                MatchCount::Exactly(want.len() as i64),
                "count of {term}, index {round}"
            );
            assert_eq!(
                every_page(&mut conn, &q),
                want,
                "pages of {term}{more}, index {round}"
            );
        }
    }
}

/// Events stored out of time order (late ones, early ones, several at the same
/// time) are paged by time all the same when a term's candidates are read
/// newest id first: the reading stops early only when no event with a
/// smaller id can be newer, and hands over to the walk when it cannot.
async fn candidates_read_newest_first_keep_the_time_order(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let base = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let time_of = |n: u32| -> chrono::DateTime<chrono::Utc> {
        let n = i64::from(n);
        if n % 97 == 0 {
            base - chrono::Duration::hours(n) // arrived late
        } else if n % 89 == 0 {
            base + chrono::Duration::days(1) + chrono::Duration::seconds(n) // from the future
        } else {
            base + chrono::Duration::seconds(n / 3 * 3) // three at a time
        }
    };
    let events: Vec<NewEvent> = (1..=1500)
        .map(|n| {
            let mut e = event(n, &format!("id{n}"), &tiered_target(n), "u", "{}");
            e.event.time = time_of(n);
            e
        })
        .collect();
    // In several batches, as a log fills.
    for batch in events.chunks(200) {
        store::store_batch(&mut conn, batch, OnConflict::RefuseBatch).unwrap();
    }
    // With the newest 30 not indexed yet (they are read first), then all.
    index(&mut conn, Some(1470));
    for round in ["behind", "caught up"] {
        if round == "caught up" {
            index(&mut conn, None);
        }
        for (term, limit, holds) in [
            ("tenth", 20, (|n| n % 10 == 0) as fn(u32) -> bool),
            ("tenth", 5, |n| n % 10 == 0),
            ("rare", 5, |n| n % 100 == 0),
            ("common", 50, |_| true),
            ("-1", 30, |n| n.to_string().starts_with('1')),
        ] {
            let q = query(term, &format!("&limit={limit}"));
            let mut want: Vec<u32> = (1..=1500u32).filter(|&n| holds(n)).collect();
            // Newest first; among equal times, the later stored (higher id) first.
            want.sort_by_key(|&n| std::cmp::Reverse((time_of(n), n)));
            let want: Vec<String> = want.into_iter().map(|n| format!("id{n}")).collect();
            assert_eq!(
                every_page(&mut conn, &q),
                want,
                "pages of {term} by {limit}, index {round}"
            );
        }
    }
}

/// Events stored before the index existed (their search text NULL) are given
/// one at the next start, and found like any other.
async fn events_stored_before_the_index_are_found_after_a_start(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    store::store_batch(&mut conn, &the_events(), OnConflict::RefuseBatch).unwrap();
    // As they were before the migration: no search text. (The database refuses
    // to empty a search text, so its guard is lifted for the test.)
    let forget = match backend {
        Backend::Sqlite => {
            "DROP TRIGGER events_refuse_search_doc_update; UPDATE events SET search_doc = NULL;"
        }
        Backend::Postgres => {
            "ALTER TABLE events DISABLE TRIGGER events_refuse_update;
             UPDATE events SET search_doc = NULL;
             ALTER TABLE events ENABLE TRIGGER events_refuse_update;"
        }
    };
    conn.batch_execute(forget).unwrap();
    assert_eq!(ids(&mut conn, "nvidia"), Vec::<String>::new());
    // SQLite's index waits for them: it never skips an event.
    index(&mut conn, None);
    let indexed = || auditdesk::db::text_index::indexed_through;
    assert_eq!(indexed()(&mut conn).unwrap(), sqlite(backend).then_some(0));
    assert_eq!(store::fill_search_docs(&mut conn).unwrap(), 8);
    assert_eq!(ids(&mut conn, "nvidia"), ["e3"]);
    index(&mut conn, None);
    assert_eq!(indexed()(&mut conn).unwrap(), sqlite(backend).then_some(8));
    assert_eq!(ids(&mut conn, "ΟΔΟς"), ["e2"]);
    assert_eq!(store::fill_search_docs(&mut conn).unwrap(), 0, "done once");
    // Filled in by another instance meanwhile: left as it is, and no error.
    let id = auditdesk::db::events::find_by_uuid(&mut conn, "00000000-0000-4000-8000-000000000003")
        .unwrap()
        .unwrap()
        .id;
    auditdesk::db::events::set_search_docs(&mut conn, &[(id, "other".into())]).unwrap();
    assert_eq!(ids(&mut conn, "nvidia"), ["e3"]);
    assert_eq!(ids(&mut conn, "other"), Vec::<String>::new());
}

/// An import into an empty table (its indexes dropped while it loads) is
/// found at once, and so is what is stored after it; an import killed before
/// its indexes are built again is repaired by the next start. (SQLite's
/// free-text index is filled by the server afterwards: until then each event
/// is tested.)
async fn an_import_into_an_empty_log_is_searchable(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let lines: String = the_events()
        .iter()
        .map(|e| e.event.to_json() + "\n")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, lines).unwrap();
    let import = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_auditdesk"))
            .args(["import", file.to_str().unwrap()])
            .args(["--database-url", &db.url_string()])
            .output()
            .unwrap()
    };
    let out = import();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = db.connect();
    assert_eq!(ids(&mut conn, "nvidia"), ["e3"]);
    assert_eq!(ids(&mut conn, "ΟΔΟς"), ["e2"]);
    store::store_batch(
        &mut conn,
        &[event(9, "e9", "later-target", "zed", "{}")],
        OnConflict::RefuseBatch,
    )
    .unwrap();
    assert_eq!(ids(&mut conn, "later-tar"), ["e9"]);
    // Killed with its indexes dropped: the next start rebuilds them.
    auditdesk::db::events::drop_secondary_indexes(&mut conn).unwrap();
    store::store_batch(
        &mut conn,
        &[event(10, "e10", "while-down", "zed", "{}")],
        OnConflict::RefuseBatch,
    )
    .unwrap();
    auditdesk::db::run_migrations(&mut conn).unwrap();
    assert_eq!(ids(&mut conn, "while-dow"), ["e10"]);
    assert_eq!(ids(&mut conn, "later-tar"), ["e9"]);
}

fn sqlite(backend: Backend) -> bool {
    matches!(backend, Backend::Sqlite)
}

/// SQLite's free-text index is a file of its own, with its own write lock:
/// its writer holding it never holds up a writer of events, nor the other
/// way round (both are tried without waiting at all).
async fn the_index_is_written_beside_the_writers_of_events() {
    let Some((db, mut conn)) = migrated(Backend::Sqlite) else {
        return;
    };
    let some = |from: u32| -> Vec<NewEvent> {
        (from..from + 50)
            .map(|n| event(n, &format!("id{n}"), &tiered_target(n), "u", "{}"))
            .collect()
    };
    store::store_batch(&mut conn, &some(1), OnConflict::RefuseBatch).unwrap();
    let mut indexer = db.connect();
    conn.batch_execute("PRAGMA busy_timeout = 0").unwrap();
    indexer.batch_execute("PRAGMA busy_timeout = 0").unwrap();
    indexer
        .batch_execute("BEGIN; DELETE FROM search.text_indexed WHERE 0;")
        .unwrap();
    store::store_batch(&mut conn, &some(51), OnConflict::RefuseBatch)
        .expect("events are stored while the index's file is being written");
    indexer.batch_execute("ROLLBACK").unwrap();
    conn.batch_execute("BEGIN; DELETE FROM main.write_turn WHERE 0;")
        .unwrap();
    let added = auditdesk::db::text_index::index_more(&mut indexer, 1000)
        .expect("the index is written while events are being stored");
    conn.batch_execute("ROLLBACK").unwrap();
    assert_eq!(added, 100);
    assert_eq!(ids(&mut indexer, "-rare"), ["id100"]);

    // While the index's thread writes (a batch, or a merge that takes
    // seconds), a command's check that the index is this database's and the
    // planner's statistics after an import wait for nothing: the statistics
    // once took the index's lock too, while holding the database's.
    indexer
        .batch_execute("BEGIN; DELETE FROM search.text_indexed WHERE 0;")
        .unwrap();
    assert!(
        !auditdesk::db::text_index::check_belongs(&mut conn)
            .expect("the index is found to be this database's without its lock"),
    );
    auditdesk::db::events::optimize(&mut conn)
        .expect("the statistics are the database's own tables' only");
    // An index's batch that cannot have the lock fails and is rolled back;
    // the same connection writes the next one.
    store::store_batch(&mut conn, &some(101), OnConflict::RefuseBatch).unwrap();
    let mut thread = db.connect();
    thread.batch_execute("PRAGMA busy_timeout = 0").unwrap();
    assert!(auditdesk::db::text_index::index_more(&mut thread, 1000).is_err());
    indexer.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        auditdesk::db::text_index::index_more(&mut thread, 1000)
            .expect("the index's connection is not left in the failed transaction"),
        50
    );
}

/// An index file that belongs to another database (a database restored from
/// a backup beside a newer index, a file copied from elsewhere) is found out
/// at the start and filled again from the first event: its events are never
/// taken for this database's.
async fn another_databases_index_is_started_over() {
    let backend = Backend::Sqlite;
    use auditdesk::db::text_index::{check_belongs, indexed_through, path_of};
    let (Some((first_db, mut first)), Some((second_db, mut second))) =
        (migrated(backend), migrated(backend))
    else {
        return;
    };
    let events = |word: &str| -> Vec<NewEvent> {
        (1..=40)
            .map(|n| event(n, &format!("{word}{n}"), &format!("{word}-{n}"), "u", "{}"))
            .collect()
    };
    store::store_batch(&mut first, &events("apple"), OnConflict::RefuseBatch).unwrap();
    store::store_batch(&mut second, &events("pear"), OnConflict::RefuseBatch).unwrap();
    index(&mut first, None);
    first
        .batch_execute("PRAGMA search.wal_checkpoint(TRUNCATE)")
        .unwrap();
    assert!(!check_belongs(&mut first).unwrap(), "its own index");
    drop(second);
    let (auditdesk::db::DatabaseUrl::Sqlite(from), auditdesk::db::DatabaseUrl::Sqlite(to)) =
        (&first_db.url, &second_db.url)
    else {
        unreachable!("SQLite only")
    };
    std::fs::copy(path_of(from), path_of(to)).unwrap();
    let mut second = second_db.connect();
    assert_eq!(indexed_through(&mut second).unwrap(), Some(40), "the copy");
    assert!(
        check_belongs(&mut second).unwrap(),
        "another database's index"
    );
    assert_eq!(indexed_through(&mut second).unwrap(), Some(0));
    index(&mut second, Some(20));
    assert_eq!(ids(&mut second, "pear-7"), ["pear7"]);
    assert_eq!(ids(&mut second, "pear-37"), ["pear37"]);
    assert_eq!(ids(&mut second, "apple"), Vec::<String>::new());
}

/// An index file SQLite cannot read (overwritten) does not keep the database
/// from opening: it is moved aside, kept for a look, and a new index is made
/// and filled; searches find the events before and after.
async fn a_damaged_index_is_moved_aside_and_made_again() {
    use auditdesk::db::text_index::{indexed_through, path_of};
    let Some((db, mut conn)) = migrated(Backend::Sqlite) else {
        return;
    };
    let events: Vec<NewEvent> = (1..=40)
        .map(|n| event(n, &format!("plum{n}"), &format!("plum-{n}"), "u", "{}"))
        .collect();
    store::store_batch(&mut conn, &events, OnConflict::RefuseBatch).unwrap();
    index(&mut conn, None);
    drop(conn);
    let auditdesk::db::DatabaseUrl::Sqlite(path) = &db.url else {
        unreachable!("SQLite only")
    };
    let file = path_of(path);
    assert!(file.exists(), "the index's file");
    let garbage = "not an index, overwritten by mistake\n".repeat(200);
    std::fs::write(&file, &garbage).unwrap();

    // The damaged files beside the database (not their WALs).
    let set_aside = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.to_string_lossy();
                name.contains(".search.damaged-") && !name.ends_with("-wal")
            })
            .collect()
    };

    let mut conn = db.connect();
    let aside = set_aside();
    assert_eq!(aside.len(), 1, "moved aside once: {aside:?}");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), garbage);
    assert_eq!(indexed_through(&mut conn).unwrap(), Some(0), "a new index");
    assert_eq!(ids(&mut conn, "plum-17"), ["plum17"], "before it is filled");
    // A second connection finds the new index, not a damaged one.
    let mut other = db.connect();
    index(&mut other, None);
    assert_eq!(indexed_through(&mut conn).unwrap(), Some(40));
    assert_eq!(ids(&mut conn, "plum-17"), ["plum17"], "from the new index");
    assert_eq!(set_aside(), aside, "the new index is not moved aside");
}

/// The server keeps SQLite's index: what it stores is soon indexed.
async fn the_server_indexes_what_it_stores(backend: Backend) {
    let Some(app) = crate::helpers::TestApp::spawn(backend).await else {
        return;
    };
    let mut conn = app.db.connect();
    let events: Vec<NewEvent> = (1..=300)
        .map(|n| event(n, &format!("id{n}"), &tiered_target(n), "u", "{}"))
        .collect();
    store::store_batch(&mut conn, &events, OnConflict::RefuseBatch).unwrap();
    let stored = auditdesk::db::events::count_all(&mut conn).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut through = auditdesk::db::text_index::indexed_through(&mut conn).unwrap();
    while through.is_some_and(|t| t < stored) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        through = auditdesk::db::text_index::indexed_through(&mut conn).unwrap();
    }
    // Every event (the ids start at 1): the stored ones, and the server's own.
    assert_eq!(through, sqlite(backend).then_some(stored));
    assert_eq!(ids(&mut conn, "-rare"), ["id300", "id200", "id100"]);
}

/// What the index has counted of a term is kept between searches while the
/// index holds the same events, and never hides an event indexed since: a
/// term found nowhere, then stored and indexed, is found; a term's count
/// grows with it.
async fn counts_kept_between_searches_follow_the_index(backend: Backend) {
    let Some((_db, mut conn)) = migrated(backend) else {
        return;
    };
    let store_three = |conn: &mut DbConn, from: u32, target: &str| {
        let batch: Vec<NewEvent> = (from..from + 3)
            .map(|n| event(n, &format!("id{n}"), target, "u", "{}"))
            .collect();
        store::store_batch(conn, &batch, OnConflict::RefuseBatch).unwrap();
        index(conn, None);
    };
    store_three(&mut conn, 1, "plain");
    // Twice: the second time from what the first counted.
    for _ in 0..2 {
        assert_eq!(
            found(&mut conn, &query("quokka", "")),
            (vec![], MatchCount::Exactly(0))
        );
        assert_eq!(
            found(&mut conn, &query("plain", "")).1,
            MatchCount::Exactly(3)
        );
    }
    // A rare term's candidates, kept while the index holds the same events,
    // take in those indexed since, and those not indexed yet.
    let batch: Vec<NewEvent> = (100..400)
        .map(|n| event(n, &format!("id{n}"), "filler", "u", "{}"))
        .collect();
    store::store_batch(&mut conn, &batch, OnConflict::RefuseBatch).unwrap();
    index(&mut conn, None);
    let walrus = |conn: &mut DbConn, from: u32, indexed: bool| {
        let two: Vec<NewEvent> = (from..from + 2)
            .map(|n| event(n, &format!("id{n}"), "walrus", "u", "{}"))
            .collect();
        store::store_batch(conn, &two, OnConflict::RefuseBatch).unwrap();
        if indexed {
            index(conn, None);
        }
    };
    walrus(&mut conn, 500, true);
    for _ in 0..2 {
        assert_eq!(ids(&mut conn, "walrus"), ["id501", "id500"]);
    }
    walrus(&mut conn, 600, true);
    assert_eq!(
        ids(&mut conn, "walrus"),
        ["id601", "id600", "id501", "id500"]
    );
    walrus(&mut conn, 700, false);
    assert_eq!(
        ids(&mut conn, "walrus"),
        ["id701", "id700", "id601", "id600", "id501", "id500"]
    );
    index(&mut conn, None);
    store_three(&mut conn, 4, "quokka-plain");
    assert_eq!(
        found(&mut conn, &query("quokka", "")),
        (
            vec!["id6".into(), "id5".into(), "id4".into()],
            MatchCount::Exactly(3)
        )
    );
    assert_eq!(
        found(&mut conn, &query("plain", "")).1,
        MatchCount::Exactly(6)
    );
}

crate::cases! {
    one() => [
        the_index_is_written_beside_the_writers_of_events,
        another_databases_index_is_started_over,
        a_damaged_index_is_moved_aside_and_made_again,
    ];
    both_backends() => [
        the_server_indexes_what_it_stores,
        what_free_text_finds_and_what_it_does_not,
        a_common_and_a_rare_term_page_and_count_alike,
        each_way_of_reading_the_index_finds_the_same_events,
        candidates_read_newest_first_keep_the_time_order,
        events_stored_before_the_index_are_found_after_a_start,
        an_import_into_an_empty_log_is_searchable,
        counts_kept_between_searches_follow_the_index,
    ];
}
