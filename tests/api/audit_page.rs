//! Manage > Audit: filters, paging, the form's state, bad input, escaping;
//! and the importer and demo that fill it.

use auditdesk::audit::{NewEvent, store};
use auditdesk::auth::Role;
use auditdesk::db::events::OnConflict;
use chrono::{DateTime, Duration, Utc};

use crate::helpers::{Backend, TestApp, new_event, strings};

const PW: &str = "correct horse battery";

/// One known event: the fields a filter can look at.
#[derive(Clone, Debug)]
pub struct Known {
    pub i: usize,
    pub time: DateTime<Utc>,
    pub user: &'static str,
    pub action: &'static str,
    pub resource_type: &'static str,
    pub target: String,
    pub resource_id: String,
    pub request_id: String,
    pub status: u16,
    pub needle: Option<String>,
}

pub fn known() -> Vec<Known> {
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    (0..30)
        .map(|i| {
            let action = ["open", "write", "login", "ssh", "create"][i % 5];
            Known {
                i,
                time: start + Duration::hours(i as i64),
                user: ["alice", "bob", "carol"][i % 3],
                action,
                resource_type: if action == "login" {
                    "user"
                } else {
                    "workspace"
                },
                target: format!("target-{}", i % 4),
                resource_id: format!("r{i:02}"),
                request_id: format!("req-{}", i % 6),
                status: if i % 7 == 0 { 401 } else { 200 },
                needle: (action == "write").then(|| format!("needle-{i}")),
            }
        })
        .collect()
}

fn to_event(k: &Known) -> NewEvent {
    let diff = match &k.needle {
        Some(n) => format!(r#"{{"description":{{"old":"before","new":"{n}","secret":false}}}}"#),
        None => "{}".to_owned(),
    };
    let json = format!(
        r#"{{"id":"00000000-0000-4000-8000-{:012}","time":"{}","user":{{"username":"{}","email":"{}@example.com"}},
        "action":"{}","resource_type":"{}","resource_id":"{}","resource_target":"{}","diff":{diff},
        "ip":"192.0.2.1","user_agent":"test","status_code":{},"request_id":"{}"}}"#,
        k.i,
        k.time.to_rfc3339(),
        k.user,
        k.user,
        k.action,
        k.resource_type,
        k.resource_id,
        k.target,
        k.status,
        k.request_id
    );
    new_event(&json)
}

/// An app with the known events and a logged-in auditor.
pub async fn app_with_known_events(backend: Backend) -> Option<TestApp> {
    let app = TestApp::spawn(backend).await?;
    let events: Vec<NewEvent> = known().iter().map(to_event).collect();
    store::store_batch(&mut app.conn(), &events, OnConflict::RefuseBatch).unwrap();
    app.add_user("ann", Role::Auditor, PW);
    assert_eq!(app.login("ann", PW).await.status(), 303);
    Some(app)
}

/// The resource ids of the rows on a page, top to bottom.
fn row_ids(page: &str) -> Vec<String> {
    let marker = "title=\"Resource ID\"><bdi>";
    page.match_indices(marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            rest[..rest.find('<').unwrap()].to_owned()
        })
        .filter(|id| id.starts_with('r'))
        .collect()
}

/// Which known events a filter should return.
pub type Predicate = Box<dyn Fn(&Known) -> bool>;

pub fn expected(pred: impl Fn(&Known) -> bool) -> Vec<String> {
    let mut ks: Vec<Known> = known().into_iter().filter(|k| pred(k)).collect();
    ks.sort_by_key(|k| std::cmp::Reverse(k.time));
    ks.into_iter().map(|k| k.resource_id).collect()
}

async fn ids_at(app: &TestApp, query: &str) -> Vec<String> {
    let r = app.get(&format!("/manage/audit?limit=500&{query}")).await;
    assert_eq!(r.status(), 200, "{query}");
    row_ids(&r.text().await.unwrap())
}

async fn each_filter_alone_and_combined_gives_exactly_the_right_events(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let cases: Vec<(&str, Predicate)> = vec![
        ("", Box::new(|_| true)),
        (
            "resource_type=user",
            Box::new(|k| k.resource_type == "user"),
        ),
        ("action=write", Box::new(|k| k.action == "write")),
        (
            "resource_target=target-1",
            Box::new(|k| k.target == "target-1"),
        ),
        ("user=bob", Box::new(|k| k.user == "bob")),
        ("resource_id=r05", Box::new(|k| k.resource_id == "r05")),
        ("request_id=req-2", Box::new(|k| k.request_id == "req-2")),
        ("status=failure", Box::new(|k| k.status >= 400)),
        ("status=success", Box::new(|k| k.status < 400)),
        (
            "from=2026-03-01T05:00:00Z&to=2026-03-02",
            Box::new(move |k| {
                k.time >= t("2026-03-01T05:00:00Z") && k.time < t("2026-03-02T00:00:00Z")
            }),
        ),
        (
            "from=2026-03-02",
            Box::new(move |k| k.time >= t("2026-03-02T00:00:00Z")),
        ),
        (
            "q=NEEDLE-1",
            Box::new(|k| k.needle.as_deref().is_some_and(|n| n.contains("needle-1"))),
        ),
        ("q=target-3", Box::new(|k| k.target == "target-3")),
        (
            "user=bob&action=write",
            Box::new(|k| k.user == "bob" && k.action == "write"),
        ),
        (
            "user=alice&status=failure&to=2026-03-01T22:00:00Z",
            Box::new(move |k| {
                k.user == "alice" && k.status >= 400 && k.time < t("2026-03-01T22:00:00Z")
            }),
        ),
        (
            "resource_type=workspace&resource_target=target-2&action=ssh",
            Box::new(|k| {
                k.resource_type == "workspace" && k.target == "target-2" && k.action == "ssh"
            }),
        ),
        ("user=nobody", Box::new(|_| false)),
    ];
    for (query, pred) in cases {
        let want = expected(pred);
        assert_eq!(ids_at(&app, query).await, want, "filter {query:?}");
    }
    let empty = app
        .get("/manage/audit?user=nobody")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        empty.contains("No events match these filters.") && empty.contains("Clear the filters")
    );
}

async fn paging_by_cursor_visits_every_matching_event_once(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    for query in ["limit=4", "limit=4&user=alice", "limit=7&status=success"] {
        let mut url = format!("/manage/audit?{query}");
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        loop {
            let page = app.get(&url).await.text().await.unwrap();
            let ids = row_ids(&page);
            assert!(
                !ids.is_empty() && ids.len() <= query[6..7].parse::<usize>().unwrap(),
                "{url}"
            );
            seen.extend(ids);
            pages.push(url.clone());
            match link(&page, "next") {
                Some(next) => url = next,
                None => break,
            }
        }
        let pred: Predicate = match query {
            "limit=4&user=alice" => Box::new(|k| k.user == "alice"),
            "limit=7&status=success" => Box::new(|k| k.status < 400),
            _ => Box::new(|_| true),
        };
        assert_eq!(
            seen,
            expected(pred),
            "every event once, newest first: {query}"
        );

        // Back towards the newest with "Newer": the same pages in reverse.
        let last = app.get(pages.last().unwrap()).await.text().await.unwrap();
        let mut back = Vec::new();
        let mut url = link(&last, "prev");
        while let Some(u) = url {
            let page = app.get(&u).await.text().await.unwrap();
            back.push(row_ids(&page));
            url = link(&page, "prev");
        }
        assert_eq!(back.len(), pages.len() - 1, "{query}");
        let first = row_ids(&app.get(&pages[0]).await.text().await.unwrap());
        assert_eq!(
            back.last().cloned(),
            if pages.len() > 1 { Some(first) } else { None },
            "Newer leads back to the first page"
        );
    }
}

/// The href of the pager link with this `rel`, unescaped.
fn link(page: &str, rel: &str) -> Option<String> {
    let marker = format!("\" rel=\"{rel}\"");
    let end = page.find(&marker)?;
    let start = page[..end].rfind("href=\"")? + 6;
    Some(page[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

async fn the_form_shows_the_choices_from_the_url(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let page = app
        .get("/manage/audit?resource_type=workspace&action=write&resource_target=target-1&user=bob&status=success&from=2026-03-01&to=2026-03-03&q=needle&limit=100")
        .await
        .text()
        .await
        .unwrap();
    for needle in [
        r#"<option value="workspace" selected>"#,
        r#"<option value="write" title="The user made a change to an entity (e.g. workspace, user, resource pool)" selected>"#,
        r#"value="target-1""#,
        r#"value="bob""#,
        r#"<option value="success" selected>"#,
        r#"type="date" value="2026-03-01""#,
        r#"type="date" value="2026-03-03""#,
        r#"value="needle""#,
        r#"<option value="100" selected>"#,
        r#"<details class="more-filters" open>"#,
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
    // The dropdowns and suggestions come from the data.
    let bare = app.get("/manage/audit").await.text().await.unwrap();
    assert!(bare.contains(r#"<option value="user">user</option>"#));
    assert!(bare.contains(r#"<option value="target-3"></option>"#));
    assert!(bare.contains(r#"<option value="carol"></option>"#));
    // 30 known events, plus the auditor's creation and login.
    assert!(
        bare.contains("1–32 of 32 events"),
        "a count on the first page"
    );
    // A click on a row's user filters by it, keeping the other filters.
    let filtered = app
        .get("/manage/audit?action=write")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        filtered.contains(r#"href="/manage/audit?action=write&#38;user=bob""#)
            || filtered.contains(r#"href="/manage/audit?action=write&amp;user=bob""#)
    );
}

async fn bad_parameters_get_400_naming_the_field_and_keep_the_rest(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let cases = [
        ("action=read&user=bob", "unknown action &#39;read&#39;"),
        ("from=yesterday&user=bob", "is not a date"),
        (
            "from=2026-03-05&to=2026-03-01&user=bob",
            "must be after from",
        ),
        ("cursor=garbage&user=bob", "is not a cursor"),
        ("limit=0&user=bob", "is not a page size from 1 to 500"),
        ("limit=501&user=bob", "is not a page size from 1 to 500"),
        ("status=maybe&user=bob", "is not a status"),
    ];
    for (query, message) in cases {
        let r = app.get(&format!("/manage/audit?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("class=\"field-error\""),
            "{query}: the problem is shown next to its field"
        );
        assert!(
            page.contains(message) || page.contains(&message.replace("&#39;", "'")),
            "{query}: {page}"
        );
        assert!(
            page.contains(r#"value="bob""#),
            "{query}: the other filters are kept"
        );
        assert!(
            row_ids(&page).is_empty(),
            "{query}: no rows from a half-applied filter"
        );
    }
    let r = app.get("/manage/audit?colour=red").await;
    assert_eq!(
        r.status(),
        400,
        "an unknown parameter is refused, not ignored"
    );
    assert!(r.text().await.unwrap().contains("colour"));
}

async fn hostile_values_render_as_text(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let evil = "<script>alert(1)</script>";
    let json = format!(
        r#"{{"user":{{"username":"{evil}","email":"{evil}"}},"action":"write","resource_type":"{evil}",
        "resource_id":"{evil}","resource_target":"{evil}","diff":{{"{evil}":{{"old":"{evil}","new":"{evil}","secret":false}}}},
        "user_agent":"{evil}","request_id":"{evil}"}}"#
    );
    let e = new_event(&json);
    store::store_batch(&mut app.conn(), &[e], OnConflict::RefuseBatch).unwrap();
    app.add_user("ann", Role::Auditor, PW);
    app.login("ann", PW).await;
    for url in [
        "/manage/audit",
        "/manage/audit?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ] {
        let page = app.get(url).await.text().await.unwrap();
        assert!(!page.contains(evil), "{url}: raw markup leaked");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{url}: {page}"
        );
    }
}

async fn secrets_show_as_stars_and_long_values_are_shortened_with_the_full_value_kept(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let json = r#"{"user":{"username":"root"},"action":"write","resource_type":"oauth_configs","resource_target":"GitHub",
        "diff":{"client_secret":{"old":"hunter2-old","new":"hunter2-new","secret":true},
                "client_id":{"old":"0fb2c4e1a9d35b7f8e6c2a1d9b3e7a4a","new":"5e1d9c0b7a6f4e3d2c1b0a9f8e7d6c5b","secret":false}}}"#;
    let e = new_event(json);
    store::store_batch(&mut app.conn(), &[e], OnConflict::RefuseBatch).unwrap();
    app.add_user("ann", Role::Auditor, PW);
    app.login("ann", PW).await;
    let page = app.get("/manage/audit").await.text().await.unwrap();
    assert!(page.contains("******") && !page.contains("hunter2"));
    assert!(page.contains(">0fb2...7a4a<"), "shortened like the seed");
    assert!(
        page.contains("<code><bdi>0fb2c4e1a9d35b7f8e6c2a1d9b3e7a4a</bdi></code>"),
        "the full value is on the page"
    );
}

async fn suggestions(app: &TestApp, query: &str) -> (u16, serde_json::Value) {
    let r = app.get(&format!("/manage/audit/suggestions?{query}")).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The User and Resource Target inputs list a few values inline and ask for
/// more as the viewer types: any stored value can be found, most used first.
async fn suggestions_find_any_value_by_a_fragment_most_used_first(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    // 40 more users, beyond what the page lists inline; "Zed_7%" has the most events.
    let mut extra: Vec<NewEvent> = Vec::new();
    for n in 0..40u32 {
        let name = if n == 7 {
            "Zed_7%".to_owned()
        } else {
            format!("zed{n:02}")
        };
        for k in 0..(if n == 7 { 3 } else { 1 }) {
            let json = format!(
                r#"{{"id":"00000000-0000-4000-9000-{:012}","time":"2026-03-02T00:00:00Z","user":{{"username":"{name}"}},
                "action":"open","resource_type":"workspace","resource_target":"ws-of-{name}"}}"#,
                n * 10 + k
            );
            extra.push(new_event(&json));
        }
    }
    store::store_batch(&mut app.conn(), &extra, OnConflict::RefuseBatch).unwrap();

    let (status, body) = suggestions(&app, "field=user&q=ZED").await;
    assert_eq!(status, 200, "{body}");
    let values = strings(&body["values"], None);
    assert_eq!(values.len(), 20, "at most 20: {values:?}");
    assert_eq!(
        values[0], "Zed_7%",
        "most used first, case ignored: {values:?}"
    );
    assert!(
        values.iter().all(|v| v.to_lowercase().contains("zed")),
        "{values:?}"
    );

    // % and _ are themselves, not wildcards.
    let (_, body) = suggestions(&app, "field=user&q=d_").await;
    assert_eq!(
        body["values"],
        serde_json::json!(["Zed_7%"]),
        "'_' is literal"
    );
    let (_, body) = suggestions(&app, "field=user&q=7%25").await;
    assert_eq!(
        body["values"],
        serde_json::json!(["Zed_7%"]),
        "'%' is literal"
    );

    let (_, body) = suggestions(&app, "field=resource_target&q=of-zed39").await;
    assert_eq!(body["values"], serde_json::json!(["ws-of-zed39"]));
    let (_, body) = suggestions(&app, "field=resource_target&q=no-such-thing").await;
    assert_eq!(body["values"], serde_json::json!([]));

    // The page lists only the most used few inline.
    let page = app.get("/manage/audit").await.text().await.unwrap();
    let users_list = &page[page.find("<datalist id=\"users\">").unwrap()..];
    let users_list = &users_list[..users_list.find("</datalist>").unwrap()];
    assert_eq!(users_list.matches("<option").count(), 20);
    assert!(
        users_list.contains("value=\"alice\""),
        "the busiest users are inline"
    );

    // Bad requests name the problem.
    for (query, names) in [
        ("field=action&q=a", "field"),
        ("q=a", "field"),
        ("field=user&colour=red", "colour"),
    ] {
        let r = app.get(&format!("/manage/audit/suggestions?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        assert!(
            r.text().await.unwrap().contains(names),
            "{query} names {names}"
        );
    }
    let long = "x".repeat(1025);
    for (q, problem) in [
        (long.as_str(), "q: is 1025 bytes long; at most 1024"),
        ("a%00b", "q: contains NUL (U+0000), which no event can hold"),
    ] {
        let r = app
            .get(&format!("/manage/audit/suggestions?field=user&q={q}"))
            .await;
        assert_eq!(r.status(), 400, "q={q}");
        let page = r.text().await.unwrap();
        assert!(page.contains(problem), "q={q}: {page}");
    }
    let anonymous = app.another_visitor();
    let r = anonymous
        .get("/manage/audit/suggestions?field=user&q=a")
        .await;
    assert_eq!(r.status(), 303, "anonymous visitors are sent to log in");

    // Only auditors and site managers may look.
    app.add_user("mo", Role::Member, PW);
    let member = app.another_visitor();
    assert_eq!(member.login("mo", PW).await.status(), 303);
    assert_eq!(
        member
            .get("/manage/audit/suggestions?field=user&q=a")
            .await
            .status(),
        403
    );
}

/// The count next to the page's title ("1–50 of 10,000+ events").
async fn summary_at(app: &TestApp, path: &str) -> String {
    let page = app.get(path).await.text().await.unwrap();
    let at = page
        .find("class=\"count\"")
        .expect("the page shows a count");
    let rest = &page[at..];
    rest[rest.find('>').unwrap() + 1..rest.find('<').unwrap()]
        .trim()
        .to_owned()
}

/// The count stops at 10,000 ("10,000+"): never a full count of a large table.
/// It stays so on later views and pages (the app remembers filters past the
/// cap), while a small filter is counted exactly.
async fn the_count_stops_at_ten_thousand(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let many: Vec<NewEvent> = (0..10_000u32)
        .map(|n| {
            let json = format!(
                r#"{{"id":"00000000-0000-4000-a000-{n:012}","time":"2026-04-01T00:00:00Z","user":{{"username":"bulk"}},
                "action":"open","resource_type":"workspace","resource_target":"bulk-{}"}}"#,
                n % 7
            );
            new_event(&json)
        })
        .collect();
    store::store_batch(&mut app.conn(), &many, OnConflict::RefuseBatch).unwrap();
    for (path, count) in [
        ("/manage/audit?user=bulk", "1–50 of 10,000 events"),
        ("/manage/audit?user=alice", "1–10 of 10 events"),
        (
            "/manage/audit?user=bulk&resource_target=bulk-3",
            "1–50 of 1,429 events",
        ),
    ] {
        assert_eq!(summary_at(&app, path).await, count, "{path}");
    }
    let one_more = new_event(
        r#"{"id":"00000000-0000-4000-a000-999999999999","time":"2026-04-02T00:00:00Z","user":{"username":"bulk"},"action":"open","resource_type":"workspace"}"#,
    );
    store::store_batch(&mut app.conn(), &[one_more], OnConflict::RefuseBatch).unwrap();
    for _ in 0..2 {
        for path in ["/manage/audit", "/manage/audit?user=bulk"] {
            assert_eq!(
                summary_at(&app, path).await,
                "1–50 of 10,000+ events",
                "{path}"
            );
        }
    }
    // A count below the cap is not reused once an event has been added.
    assert_eq!(
        summary_at(&app, "/manage/audit?user=alice").await,
        "1–10 of 10 events"
    );
    let alice = new_event(
        r#"{"id":"00000000-0000-4000-a000-999999999998","time":"2026-04-02T00:00:00Z","user":{"username":"alice"},"action":"open","resource_type":"workspace"}"#,
    );
    let page = app.get("/manage/audit").await.text().await.unwrap();
    assert!(!page.contains("value=\"brand-new-type\""));
    let new_type = new_event(
        r#"{"id":"00000000-0000-4000-a000-999999999997","time":"2026-04-02T00:00:00Z","user":{"username":"zed"},"action":"open","resource_type":"brand-new-type"}"#,
    );
    store::store_batch(&mut app.conn(), &[alice, new_type], OnConflict::RefuseBatch).unwrap();
    assert_eq!(
        summary_at(&app, "/manage/audit?user=alice").await,
        "1–11 of 11 events"
    );
    // The form's choices are read again too.
    let page = app.get("/manage/audit").await.text().await.unwrap();
    assert!(
        page.contains("<option value=\"brand-new-type\""),
        "a new resource type is offered at once"
    );
}

crate::cases! {
    both_backends() => [
        each_filter_alone_and_combined_gives_exactly_the_right_events,
        paging_by_cursor_visits_every_matching_event_once,
        the_form_shows_the_choices_from_the_url,
        bad_parameters_get_400_naming_the_field_and_keep_the_rest,
        hostile_values_render_as_text,
        secrets_show_as_stars_and_long_values_are_shortened_with_the_full_value_kept,
        suggestions_find_any_value_by_a_fragment_most_used_first,
        the_count_stops_at_ten_thousand,
    ];
}
