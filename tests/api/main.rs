//! The one integration-test binary: the real application over real databases.
//!
//! Its own harness (libtest-mimic, `harness = false`), so that a test whose
//! server or program is missing here is counted as ignored, not as passed:
//! each module lists its tests with [`cases!`], and a test whose [`Need`]s are
//! not met is ignored, with the reason printed once. Under `CI=true` nothing is
//! ignored for want of a service: such a test runs, and its loud skip fails it.

use std::io::Write;

use helpers::{Case, Need};

mod audit_page;
mod auth;
mod browser;
mod cli;
mod durability;
mod exactness;
mod export;
mod free_text;
mod health;
mod helpers;
mod http_rules;
mod ingest;
mod instances;
mod integrity;
mod log_check;
mod outage;
mod relay;
mod request_id;
mod search_bar;
mod statuses;
mod storage;
mod streams;
mod throttle;
mod users;
mod webdriver;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let cases = [
        audit_page::cases(),
        auth::cases(),
        browser::cases(),
        cli::cases(),
        durability::cases(),
        exactness::cases(),
        export::cases(),
        free_text::cases(),
        health::cases(),
        http_rules::cases(),
        instances::cases(),
        ingest::cases(),
        integrity::cases(),
        log_check::cases(),
        outage::cases(),
        request_id::cases(),
        search_bar::cases(),
        statuses::cases(),
        storage::cases(),
        streams::cases(),
        throttle::cases(),
        users::cases(),
        vec![Case::blocking(
            "api::harness",
            "every_test_is_listed_for_the_harness",
            &[],
            every_test_is_listed_for_the_harness,
        )],
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let under_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let missing: Vec<(Need, &str)> = if under_ci {
        Vec::new()
    } else {
        Need::ALL
            .into_iter()
            .filter_map(|need| need.missing().map(|why| (need, why)))
            .collect()
    };
    for (need, why) in &missing {
        let n = cases.iter().filter(|c| c.needs.contains(need)).count();
        // Past any capture, so that an ignored test is never silent.
        let _ = writeln!(
            std::io::stderr(),
            "*** IGNORED {n} tests that need {need}: {why} ***"
        );
    }
    let trials = cases
        .into_iter()
        .map(|case| {
            let unmet = case
                .needs
                .iter()
                .any(|n| missing.iter().any(|(m, _)| m == n));
            let run = case.run;
            libtest_mimic::Trial::test(case.name, move || {
                run();
                Ok(())
            })
            .with_ignored_flag(case.on_request || unmet)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // The applications the tests started are still running on their threads (an
    // event writer, pool threads that connect to PostgreSQL through OpenSSL).
    // exit() would run the C libraries' exit handlers under them: twice in
    // about twenty full runs the process then crashed after every test had
    // passed (SIGSEGV, and SIGABRT "free(): invalid pointer"). _exit ends it
    // without them; the summary above is already written.
    let code = if conclusion.has_failed() { 101 } else { 0 };
    // SAFETY: _exit only ends the process; it touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// With this harness, a function marked `#[test]` (or `#[actix_web::test]`)
/// would silently never run: every test is listed with `cases!` instead.
fn every_test_is_listed_for_the_harness() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("#[test]")
                || line.starts_with("#[actix_web::test")
                || line.starts_with("#[tokio::test")
            {
                stray.push(format!("{}:{}", path.display(), i + 1));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "these tests would never run; list them in their module's cases! instead: {stray:?}"
    );
}
