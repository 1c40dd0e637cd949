//! The search bar (`search`, CONTRACT.md "Free text and the search bar"): its
//! terms on the page, the JSON API and the export alike, combined with the
//! other parameters; a malformed term is a 400 naming it; the dropdowns show
//! the bar's single term of their key.

use auditdesk::auth::tokens::Scope;
use chrono::{DateTime, Utc};

use crate::audit_page::{Known, Predicate, app_with_known_events, expected};
use crate::helpers::{Backend, strings};

/// The resource ids of the rows on the page, top to bottom.
async fn page_ids(app: &crate::helpers::TestApp, query: &str) -> Vec<String> {
    let r = app.get(&format!("/manage/audit?limit=500&{query}")).await;
    assert_eq!(r.status(), 200, "{query}");
    let page = r.text().await.unwrap();
    let marker = "title=\"Resource ID\"><bdi>";
    page.match_indices(marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            rest[..rest.find('<').unwrap()].to_owned()
        })
        .filter(|id| known_id(id))
        .collect()
}

/// Whether `id` is a known event's resource id (not one of the events the
/// application records about the test's own user and token).
fn known_id(id: &str) -> bool {
    id.len() == 3 && id.starts_with('r')
}

/// The value of the selected option of a `<select>`'s HTML.
fn selected(select: &str) -> Option<String> {
    select.split("<option").skip(1).find_map(|option| {
        let tag = &option[..option.find('>')?];
        if !tag.contains(" selected") {
            return None;
        }
        let at = tag.find("value=\"")? + 7;
        Some(tag[at..at + tag[at..].find('"')?].to_owned())
    })
}

fn search(text: &str) -> String {
    auditdesk::audit::filter::encode_query(&[("search", text.to_owned())])
}

async fn terms_find_the_same_events_on_the_page_the_api_and_the_export(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let read = app.token(Scope::Read);
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let cases: Vec<(String, Predicate)> = vec![
        (
            search("action:write"),
            Box::new(|k: &Known| k.action == "write"),
        ),
        (
            search("action:write action:ssh"),
            Box::new(|k| k.action == "write" || k.action == "ssh"),
        ),
        (search("-action:write"), Box::new(|k| k.action != "write")),
        (
            search("user:alice -status:failure"),
            Box::new(|k| k.user == "alice" && k.status < 400),
        ),
        (search("status:success status:failure"), Box::new(|_| true)),
        (
            search("target:target-1 user:bob user:carol"),
            Box::new(|k| k.target == "target-1" && (k.user == "bob" || k.user == "carol")),
        ),
        (
            search("resource_target:target-1 -user:bob"),
            Box::new(|k| k.target == "target-1" && k.user != "bob"),
        ),
        (
            search("resource_type:user request_id:req-2"),
            Box::new(|k| k.resource_type == "user" && k.request_id == "req-2"),
        ),
        (
            search("resource_id:r05 resource_id:r06"),
            Box::new(|k| k.resource_id == "r05" || k.resource_id == "r06"),
        ),
        // Free words, each found; a quoted phrase; a word left out.
        (
            search("NEEDLE target-1"),
            Box::new(|k| k.needle.is_some() && k.target == "target-1"),
        ),
        (
            search(r#""needle-1" -needle-11"#),
            Box::new(|k| {
                k.needle
                    .as_deref()
                    .is_some_and(|n| n.contains("needle-1") && !n.contains("needle-11"))
            }),
        ),
        (
            search("from:2026-03-01T05:00:00Z to:2026-03-02"),
            Box::new(move |k| {
                k.time >= t("2026-03-01T05:00:00Z") && k.time < t("2026-03-02T00:00:00Z")
            }),
        ),
        // With the other parameters: both hold.
        (
            format!("action=write&{}", search("user:bob")),
            Box::new(|k| k.action == "write" && k.user == "bob"),
        ),
        (
            format!("action=write&{}", search("action:ssh")),
            Box::new(|_| false),
        ),
        (
            format!("status=failure&{}", search("-status:failure")),
            Box::new(|_| false),
        ),
        (
            format!(
                "from=2026-03-01T10:00:00Z&{}",
                search("to:2026-03-01T12:00:00Z")
            ),
            Box::new(move |k| {
                k.time >= t("2026-03-01T10:00:00Z") && k.time < t("2026-03-01T12:00:00Z")
            }),
        ),
        (
            format!("q=needle&{}", search("-action:write")),
            Box::new(|_| false),
        ),
    ];
    for (query, pred) in cases {
        let want = expected(pred);
        assert_eq!(page_ids(&app, &query).await, want, "page {query}");
        let (status, _, body) = app.read_api(&read, &format!("{query}&limit=500")).await;
        assert_eq!(status, 200, "api {query}: {body}");
        let from_api: Vec<&str> = strings(&body["events"], Some("resource_id"))
            .into_iter()
            .filter(|id| known_id(id))
            .collect();
        assert_eq!(from_api, want, "api {query}");
        let r = app
            .get(&format!("/manage/audit/export?format=ndjson&{query}"))
            .await;
        assert_eq!(r.status(), 200, "export {query}");
        let exported: Vec<String> = r
            .text()
            .await
            .unwrap()
            .lines()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                e["resource_id"].as_str().unwrap().to_owned()
            })
            .filter(|id| known_id(id))
            .collect();
        assert_eq!(exported, want, "export {query}");
    }
}

async fn a_malformed_term_is_a_400_naming_it_everywhere(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let read = app.token(Scope::Read);
    for (text, named) in [
        (
            "user:bob acton:delete",
            "'acton:delete': 'acton' is not a key",
        ),
        ("action:destroy", "'action:destroy'"),
        (
            r#"target:"my ws"#,
            r#"'target:"my ws': the double quote is not closed"#,
        ),
        ("user:", "'user:': user: has no value"),
        ("from:tomorrow", "'from:tomorrow': 'tomorrow' is not a date"),
    ] {
        let query = search(text);
        let r = app.get(&format!("/manage/audit?{query}")).await;
        assert_eq!(r.status(), 400, "{text}");
        let page = r.text().await.unwrap();
        let shown = named.replace('\'', "&#39;").replace('"', "&#34;");
        assert!(page.contains(&shown), "page for {text}: {shown}: {page}");
        assert!(page.contains("id=\"f-search\""), "the bar keeps the text");
        let (status, ct, p) = app.read_api(&read, &query).await;
        assert_eq!(
            (status, ct.as_str()),
            (400, "application/problem+json"),
            "{text}"
        );
        assert_eq!(strings(&p["errors"], Some("field")), ["search"]);
        assert!(p["detail"].as_str().unwrap().contains(named), "{p}");
        let r = app
            .get(&format!("/manage/audit/export?format=csv&{query}"))
            .await;
        assert_eq!(r.status(), 400, "export {text}");
    }
}

async fn the_dropdowns_show_the_bars_single_term_of_their_key(backend: Backend) {
    let Some(app) = app_with_known_events(backend).await else {
        return;
    };
    let page = app
        .get(&format!(
            "/manage/audit?{}",
            search("action:ssh status:failure user:alice user:bob -target:target-1")
        ))
        .await
        .text()
        .await
        .unwrap();
    let select = |name: &str| -> String {
        let at = page.find(&format!("name=\"{name}\"")).unwrap();
        page[at..at + page[at..].find("</select>").unwrap()].to_owned()
    };
    let action = select("action");
    assert!(
        action.starts_with("name=\"action\" data-autosubmit data-from-search"),
        "{action}"
    );
    assert_eq!(selected(&action).as_deref(), Some("ssh"), "{action}");
    let status = select("status");
    assert!(
        status.contains("<option value=\"failure\" selected>"),
        "{status}"
    );
    // Two users, or an excluded target: the field stays empty.
    let user_field = &page[page.find("id=\"f-user\"").unwrap()..];
    let user_field = &user_field[..user_field.find('>').unwrap()];
    assert!(user_field.contains("value=\"\""), "{user_field}");
    assert!(!user_field.contains("data-from-search"), "{user_field}");
    let target_field = &page[page.find("id=\"f-resource_target\"").unwrap()..];
    let target_field = &target_field[..target_field.find('>').unwrap()];
    assert!(target_field.contains("value=\"\""), "{target_field}");
    // The URL's own parameter wins over the bar's term in its field.
    let page = app
        .get(&format!(
            "/manage/audit?action=write&{}",
            search("action:ssh")
        ))
        .await
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"action\"").unwrap();
    let action = &page[at..at + page[at..].find("</select>").unwrap()];
    assert!(!action.contains("data-from-search"), "{action}");
    assert_eq!(selected(action).as_deref(), Some("write"), "{action}");
}

crate::cases! {
    both_backends() => [
        terms_find_the_same_events_on_the_page_the_api_and_the_export,
        a_malformed_term_is_a_400_naming_it_everywhere,
        the_dropdowns_show_the_bars_single_term_of_their_key,
    ];
}
