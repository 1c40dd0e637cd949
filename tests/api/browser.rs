//! Real headless Chromium, through chromedriver, against the running server.

use auditdesk::auth::Role;

use crate::helpers::{Backend, TestApp};
use crate::webdriver::Browser;

const PW: &str = "correct horse battery";

async fn a_person_sets_up_logs_out_logs_in_and_back_does_not_reveal_the_log() {
    let Some(browser) = Browser::start("the browser login test").await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();

    browser.goto(&app.url("/")).await;
    browser.wait_for_url("/setup").await;
    browser.type_into("#username", "root").await;
    browser.type_into("#email", "root@example.com").await;
    browser.type_into("#password", PW).await;
    browser.type_into("#password_confirm", PW).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/manage/audit").await;
    let page = browser.source().await;
    assert!(
        page.contains("<h1>Audit</h1>") && page.contains("root@example.com"),
        "{page}"
    );

    browser.click(".logout button").await;
    browser.wait_for_url("/login").await;
    browser.type_into("#username", "root@example.com").await;
    browser.type_into("#password", PW).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/manage/audit").await;
    let page = browser.source().await;
    assert!(page.contains(">login<"), "the login is in the log: {page}");

    browser.click(".logout button").await;
    browser.wait_for_url("/login").await;
    browser.back().await;
    let url = browser.url().await;
    let page = browser.source().await;
    assert!(
        url.contains("/login"),
        "Back lands on the login page, at {url}"
    );
    assert!(
        !page.contains("<h1>Audit</h1>"),
        "Back does not show the audit page again: {page}"
    );
}

async fn a_member_sees_a_readable_forbidden_page() {
    let Some(browser) = Browser::start("the browser forbidden-page test").await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.add_user("root", Role::SiteManager, PW);
    app.add_user("mia", Role::Member, PW);
    browser.goto(&app.url("/manage/audit")).await;
    browser.wait_for_url("/login?next=%2Fmanage%2Faudit").await;
    browser.type_into("#username", "mia").await;
    browser.type_into("#password", PW).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/manage/audit").await;
    let page = browser.source().await;
    assert!(
        page.contains("Forbidden") && page.contains("Site Managers and Auditors only"),
        "{page}"
    );
}

/// Writes screenshots of the pages at a laptop and a phone width into the
/// directory named by AUDITDESK_SCREENSHOTS. A tool for looking, not a check:
/// `AUDITDESK_SCREENSHOTS=/tmp/shots cargo test --test api screenshots -- --ignored`
async fn screenshots() {
    let dir =
        std::env::var("AUDITDESK_SCREENSHOTS").expect("set AUDITDESK_SCREENSHOTS to a directory");
    let Some(browser) = Browser::start("screenshots").await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let shoot = |name: String| {
        let dir = dir.clone();
        let browser = &browser;
        async move {
            for (label, w, h) in [("laptop", 1366, 900), ("phone", 390, 844)] {
                browser.resize(w, h).await;
                let png = browser.screenshot().await;
                std::fs::write(format!("{dir}/{name}-{label}.png"), png).unwrap();
            }
            browser.resize(1366, 900).await;
        }
    };
    browser.goto(&app.url("/setup")).await;
    shoot("setup".into()).await;
    browser.type_into("#username", "root").await;
    browser.type_into("#email", "root@example.com").await;
    browser.type_into("#password", "long enough 1").await;
    browser
        .type_into("#password_confirm", "long enough 2")
        .await;
    browser.click("button[type=submit]").await;
    shoot("setup-errors".into()).await;
    app.add_user("root", Role::SiteManager, PW);
    app.add_user("mia", Role::Member, PW);
    app.add_user("ann", Role::Auditor, PW);
    let sample = auditdesk::audit::demo::sample(chrono::Utc::now());
    auditdesk::audit::store::store_batch(
        &mut app.conn(),
        &sample,
        auditdesk::db::events::OnConflict::RefuseBatch,
    )
    .unwrap();
    // The log signed, as the server's checkpointer would a minute after start.
    let key = sign_and_check(&app);
    browser.goto(&app.url("/login")).await;
    shoot("login".into()).await;
    browser.type_into("#username", "root").await;
    browser.type_into("#password", "wrong password").await;
    browser.click("button[type=submit]").await;
    shoot("login-failed".into()).await;
    browser.goto(&app.url("/no/such/page")).await;
    shoot("404".into()).await;
    browser.goto(&app.url("/login")).await;
    browser.type_into("#username", "root").await;
    browser.type_into("#password", PW).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/manage/audit").await;
    shoot("audit".into()).await;
    check(&app, &key);
    change_a_new_event(&app);
    check(&app, &key);
    browser.refresh().await;
    shoot("audit-integrity-failed".into()).await;
    browser.goto(&app.url("/manage/users")).await;
    shoot("users".into()).await;
    browser.type_into("#token-name", "platform-ingest").await;
    browser.click("section.tokens button.primary").await;
    shoot("users-token".into()).await;
    for (name, query) in [
        (
            "audit-filtered",
            "resource_type=workspace&action=ssh&user=alice",
        ),
        ("audit-400", "action=read&from=2026-13-01&user=alice"),
        ("audit-empty", "user=nobody-at-all"),
        (
            "audit-search",
            "search=action%3Assh+-user%3Aalice+%22dev%22",
        ),
        ("audit-search-400", "search=acton%3Aopen+user%3A%22bob"),
    ] {
        browser
            .goto(&app.url(&format!("/manage/audit?{query}")))
            .await;
        shoot(name.into()).await;
    }
    browser
        .goto(&app.url("/manage/audit?resource_type=oauth_configs&action=write"))
        .await;
    browser.click(".events details summary").await;
    shoot("audit-diff".into()).await;
    browser.click(".logout button").await;
    browser.goto(&app.url("/login")).await;
    browser.type_into("#username", "mia").await;
    browser.type_into("#password", PW).await;
    browser.click("button[type=submit]").await;
    shoot("403".into()).await;
}

/// The demo's log signed with the SQLite default key and checked, as the
/// server's checkpointer and check do every interval; the key.
fn sign_and_check(app: &TestApp) -> auditdesk::integrity::note::SigningKey {
    let auditdesk::db::DatabaseUrl::Sqlite(db_file) = &app.db.url else {
        unreachable!("an SQLite test app")
    };
    let key = auditdesk::integrity::checkpoint::load_or_create_key(
        &std::path::PathBuf::from(format!("{}.signing-key", db_file.display())),
        "auditdesk",
    )
    .unwrap();
    auditdesk::integrity::checkpoint::make(&mut app.conn(), &key).unwrap();
    check(app, &key);
    key
}

fn check(app: &TestApp, key: &auditdesk::integrity::note::SigningKey) -> Vec<String> {
    auditdesk::integrity::watch::check_new(
        &mut app.conn(),
        Some(&key.verifier()),
        std::time::Duration::from_secs(60),
    )
    .unwrap()
    .problems
}

/// A new event stored, then changed behind Auditdesk's back, as someone
/// with the database's file could (the check reads only what is new).
fn change_a_new_event(app: &TestApp) {
    let event = crate::helpers::new_event(
        r#"{"user":{"username":"bob"},"action":"delete","resource_type":"workspace","resource_target":"prod-db"}"#,
    );
    auditdesk::audit::store::store_batch(
        &mut app.conn(),
        &[event],
        auditdesk::db::events::OnConflict::RefuseBatch,
    )
    .unwrap();
    let sql = "UPDATE events SET actor_username = 'nobody' WHERE id = (SELECT MAX(id) FROM events WHERE action = 'delete');";
    crate::integrity::tamper(app, sql, sql);
}

async fn a_failed_check_is_a_red_banner_above_the_filters() {
    let Some(browser) = Browser::start("the browser integrity banner test").await else {
        return;
    };
    let app = demo_app_as_auditor(&browser).await;
    let key = sign_and_check(&app);
    browser.refresh().await;
    let line = browser.property("#verification", "textContent").await;
    assert!(line.ends_with("match their checkpoints"), "{line}");
    assert!(!browser.source().await.contains("integrity-alert"));

    change_a_new_event(&app);
    let problems = check(&app, &key);
    assert_eq!(problems.len(), 1, "{problems:?}");
    browser.refresh().await;
    let banner = browser.property("#integrity-alert", "innerText").await;
    assert!(
        banner.starts_with("The log failed its integrity check at ")
            && banner.contains(&problems[0])
            && banner.contains("auditdesk verify"),
        "{banner}"
    );
    let border = browser
        .css_value("#integrity-alert", "border-top-color")
        .await;
    let rgb: Vec<u32> = border
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .split([',', ')'])
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert!(
        rgb.len() >= 3 && rgb[0] > 150 && rgb[1] < 100 && rgb[2] < 100,
        "a red banner: {border}"
    );
    let banner_top: f64 = browser
        .property("#integrity-alert", "offsetTop")
        .await
        .parse()
        .unwrap();
    let filters_top: f64 = browser
        .property("#filters", "offsetTop")
        .await
        .parse()
        .unwrap();
    assert!(banner_top < filters_top, "above the filters");
    let line = browser.property("#verification", "textContent").await;
    assert!(line.starts_with("Integrity check failed "), "{line}");
}

/// The action and user of every row on the page, top to bottom.
fn rows(page: &str) -> Vec<(String, String)> {
    let grab = |from: &str, marker: &str| -> Option<String> {
        let at = from.find(marker)? + marker.len();
        let rest = &from[at..];
        let start = rest.find('>')? + 1;
        Some(rest[start..start + rest[start..].find('<')?].to_owned())
    };
    page.split("<tr>")
        .skip(1)
        .filter_map(|row| Some((grab(row, "class=\"action\"")?, grab(row, "<strong><bdi")?)))
        .collect()
}

/// Adds the auditor ann and logs the browser in as her.
async fn log_in_as_auditor(browser: &Browser, app: &TestApp) {
    app.add_user("ann", Role::Auditor, PW);
    browser.goto(&app.url("/login")).await;
    browser.type_into("#username", "ann").await;
    browser.type_into("#password", PW).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/manage/audit").await;
}

/// An app holding the demo's events, the browser logged in to it as an auditor.
async fn demo_app_as_auditor(browser: &Browser) -> TestApp {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let sample = auditdesk::audit::demo::sample(chrono::Utc::now());
    auditdesk::audit::store::store_batch(
        &mut app.conn(),
        &sample,
        auditdesk::db::events::OnConflict::RefuseBatch,
    )
    .unwrap();
    log_in_as_auditor(browser, &app).await;
    app
}

async fn filters_change_the_url_and_rows_and_survive_reload_back_and_forward() {
    let Some(browser) = Browser::start("the browser filter test").await else {
        return;
    };
    let app = demo_app_as_auditor(&browser).await;
    let unfiltered = rows(&browser.source().await);
    assert_eq!(unfiltered.len(), 50);

    browser
        .click("#f-resource_type option[value=workspace]")
        .await;
    browser.wait_for_url("resource_type=workspace").await;
    browser.click("#f-action option[value=ssh]").await;
    browser.wait_for_url("action=ssh").await;
    let by_action = rows(&browser.source().await);
    assert!(
        !by_action.is_empty() && by_action.iter().all(|(a, _)| a == "ssh"),
        "{by_action:?}"
    );

    browser.type_into("#f-user", "alice\u{E007}").await;
    browser.wait_for_url("user=alice").await;
    browser.click("#f-status option[value=success]").await;
    let url = browser.wait_for_url("status=success").await;
    let filtered = rows(&browser.source().await);
    assert!(!filtered.is_empty());
    assert!(
        filtered.iter().all(|(a, u)| a == "ssh" && u == "alice"),
        "{filtered:?}"
    );
    let form_state = async || {
        (
            browser.property("#f-resource_type", "value").await,
            browser.property("#f-action", "value").await,
            browser.property("#f-user", "value").await,
            browser.property("#f-status", "value").await,
        )
    };
    let expected_form = (
        "workspace".to_owned(),
        "ssh".to_owned(),
        "alice".to_owned(),
        "success".to_owned(),
    );
    assert_eq!(form_state().await, expected_form);

    browser.refresh().await;
    assert_eq!(browser.url().await, url, "reload keeps the view");
    assert_eq!(rows(&browser.source().await), filtered);
    assert_eq!(form_state().await, expected_form);

    browser.back().await;
    let before_status = browser.wait_for_url("user=alice").await;
    assert!(!before_status.contains("status="), "{before_status}");
    assert_eq!(browser.property("#f-status", "value").await, "");
    browser.forward().await;
    assert_eq!(browser.wait_for_url("status=success").await, url);
    assert_eq!(rows(&browser.source().await), filtered);
    assert_eq!(form_state().await, expected_form);

    browser.click(".clear").await;
    browser.wait_for_url("/manage/audit").await;
    assert!(!browser.url().await.contains('?'));
    assert_eq!(rows(&browser.source().await), unfiltered);

    // A target too rarely used to be listed inline is suggested once typed.
    let all_targets = auditdesk::db::events::matching_values(
        &mut app.conn(),
        auditdesk::db::events::Dimension::ResourceTarget,
        "",
        10_000,
    )
    .unwrap();
    assert!(all_targets.len() > 20, "the demo has many targets");
    let rare = all_targets.last().unwrap().clone();
    let inline = browser.source().await;
    let option = format!("<option value=\"{rare}\">");
    assert!(
        !inline.contains(&option),
        "{rare} is not among the inline suggestions"
    );
    browser.type_into("#f-resource_target", &rare).await;
    wait_for_suggestion(&browser, "targets", &rare).await;
    assert!(
        !browser.url().await.contains('?'),
        "typing alone does not apply the filter"
    );
}

/// Waits until the datalist `id` offers `value`, or panics with what it offers.
async fn wait_for_suggestion(browser: &Browser, id: &str, value: &str) {
    let option = format!("<option value=\"{value}\"");
    let mut offered = String::new();
    for _ in 0..50 {
        let page = browser.source().await;
        let list = &page[page.find(&format!("<datalist id=\"{id}\">")).unwrap()..];
        offered = list[..list.find("</datalist>").unwrap()].to_owned();
        if offered.contains(&option) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{id} does not offer {value}: {offered}");
}

/// The search bar: keys and values are suggested as it is typed; Enter
/// applies it, and the Action dropdown shows its action term; choosing
/// another action in the dropdown takes that term's place in the bar.
async fn the_search_bar_suggests_applies_and_keeps_in_step_with_the_dropdowns() {
    let Some(browser) = Browser::start("the browser search bar test").await else {
        return;
    };
    let _app = demo_app_as_auditor(&browser).await;

    browser.type_into("#f-search", "-us").await;
    wait_for_suggestion(&browser, "search-suggestions", "-user:").await;
    browser.type_into("#f-search", "er:al").await;
    wait_for_suggestion(&browser, "search-suggestions", "-user:alice").await;
    browser.clear("#f-search").await;
    browser.type_into("#f-search", "action:s").await;
    wait_for_suggestion(&browser, "search-suggestions", "action:ssh").await;
    assert!(
        !browser.url().await.contains('?'),
        "typing alone does not apply"
    );

    // The suggestion, as its text (WebDriver cannot pick from the popup of a
    // datalist), then one more term by hand, and Enter.
    browser.clear("#f-search").await;
    browser.type_into("#f-search", "action:ssh").await;
    browser.type_into("#f-search", " -user:alice\u{E007}").await;
    let url = browser.wait_for_url("search=").await;
    assert!(url.contains("search=action%3Assh+-user%3Aalice"), "{url}");
    assert!(
        !url.contains("action=ssh"),
        "the dropdown's copy of the bar's term stays out: {url}"
    );
    let found = rows(&browser.source().await);
    assert!(
        !found.is_empty() && found.iter().all(|(a, u)| a == "ssh" && u != "alice"),
        "{found:?}"
    );
    assert_eq!(browser.property("#f-action", "value").await, "ssh");

    browser.click("#f-action option[value=open]").await;
    let url = browser.wait_for_url("action=open").await;
    assert!(url.contains("search=-user%3Aalice"), "{url}");
    assert_eq!(browser.property("#f-search", "value").await, "-user:alice");
    let found = rows(&browser.source().await);
    assert!(
        !found.is_empty() && found.iter().all(|(a, u)| a == "open" && u != "alice"),
        "{found:?}"
    );

    // Back: the bar and the dropdown show the earlier view again.
    browser.back().await;
    let back = browser.wait_for_url("search=action").await;
    assert!(!back.contains("action=open"), "{back}");
    assert_eq!(
        browser.property("#f-search", "value").await,
        "action:ssh -user:alice"
    );
    assert_eq!(browser.property("#f-action", "value").await, "ssh");
    assert!(
        rows(&browser.source().await)
            .iter()
            .all(|(a, _)| a == "ssh")
    );

    // A malformed term: the page says which, and keeps the text to fix.
    browser.clear("#f-search").await;
    browser.type_into("#f-search", "acton:open\u{E007}").await;
    browser.wait_for_url("search=acton").await;
    let page = browser.source().await;
    assert!(
        page.contains("&#39;acton&#39; is not a key") || page.contains("'acton' is not a key"),
        "the error is shown"
    );
    assert_eq!(browser.property("#f-search", "value").await, "acton:open");
}

/// A row whose target holds a line break and a right-to-left override is one
/// row, its cells in their order, the hidden characters drawn as markers, and
/// the exact value offered to copy. Writes the screenshot to
/// AUDITDESK_SCREENSHOTS (or the system's temporary directory) for a look.
async fn a_hostile_target_is_one_row_with_its_cells_in_order_and_visible_markers() {
    let Some(browser) = Browser::start("the hostile-row browser test").await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let target = format!(
        "prod\ncluster \u{202e}evil.exe\u{202c} Z{}",
        "\u{301}".repeat(400)
    );
    let event = serde_json::json!({
        "user": {"username": "mallory"}, "action": "delete", "resource_type": "workspace",
        "resource_target": target, "resource_id": "ws-1", "status_code": 200,
        "diff": {"name": {"old": "a\tb", "new": "x\u{202e}y"}},
    });
    auditdesk::audit::store::store_batch(
        &mut app.conn(),
        &[crate::helpers::new_event(&event.to_string())],
        auditdesk::db::events::OnConflict::RefuseBatch,
    )
    .unwrap();
    log_in_as_auditor(&browser, &app).await;
    browser
        .goto(&app.url("/manage/audit?resource_type=workspace"))
        .await;
    browser.resize(1366, 900).await;

    assert_eq!(
        browser
            .property("table.events > tbody", "childElementCount")
            .await,
        "1",
        "one row"
    );
    // The cells stand left to right on one line, in the header's order.
    let mut lefts = Vec::new();
    for n in 1..=6 {
        let css = format!("table.events > tbody > tr > td:nth-child({n})");
        let left: f64 = browser.property(&css, "offsetLeft").await.parse().unwrap();
        let top: f64 = browser.property(&css, "offsetTop").await.parse().unwrap();
        lefts.push((left, top));
    }
    assert!(
        lefts
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 == w[1].1),
        "cells out of order: {lefts:?}"
    );
    let shown = browser
        .property("td[data-label=Target] a.target bdi", "innerText")
        .await;
    assert!(
        shown.starts_with("prod\\ncluster \\u{202e}evil.exe\\u{202c} Z\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}[+394 combining marks]"),
        "{shown:?}"
    );
    assert!(!shown.contains(['\n', '\u{202e}']), "{shown:?}");
    // The target's cell is no taller than a few lines: the marks do not spill.
    let height: f64 = browser
        .property("td[data-label=Target] a.target bdi", "offsetHeight")
        .await
        .parse()
        .unwrap();
    assert!(height < 80.0, "the value's box is {height}px tall");
    let copy = browser
        .property("td[data-label=Target] button.copy", "dataset")
        .await;
    let copy: serde_json::Value = serde_json::from_str(&copy).unwrap();
    let exact: String = serde_json::from_str(copy["copyJson"].as_str().unwrap()).unwrap();
    assert_eq!(exact, target, "the exact value is there to copy");

    let dir = std::env::var("AUDITDESK_SCREENSHOTS")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let path = format!("{dir}/hostile-row.png");
    std::fs::write(&path, browser.screenshot().await).unwrap();
    eprintln!("screenshot of the hostile row: {path}");
}

crate::cases! {
    one(Browser) => [
        a_failed_check_is_a_red_banner_above_the_filters,
        a_person_sets_up_logs_out_logs_in_and_back_does_not_reveal_the_log,
        a_member_sees_a_readable_forbidden_page,
        filters_change_the_url_and_rows_and_survive_reload_back_and_forward,
        a_hostile_target_is_one_row_with_its_cells_in_order_and_visible_markers,
        the_search_bar_suggests_applies_and_keeps_in_step_with_the_dropdowns,
    ];
    on_request(Browser) => [
        screenshots,
    ];
}
