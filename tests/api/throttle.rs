//! The login throttle slows guessing without locking owners out, and counts
//! by the client's real address (behind a trusted proxy too). Clients bind
//! to different loopback addresses (127.0.0.2, ...) to be different people.

use auditdesk::auth::Role;
use auditdesk::auth::login::policy;

use crate::helpers::{Backend, TestApp, location};

const PW: &str = "correct horse battery";

/// The `Retry-After` of a refusal, in seconds.
fn retry_after(r: &reqwest::Response) -> i64 {
    r.headers()
        .get("retry-after")
        .expect("a 429 says when to come back")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Moves every recorded failure `seconds` into the past, as if that much time went by.
fn time_passes(app: &TestApp, seconds: i64) {
    app.execute(
        &format!(
            "UPDATE login_failures SET time = strftime('%Y-%m-%d %H:%M:%f', time, '-{seconds} seconds')"
        ),
        &format!("UPDATE login_failures SET time = time - interval '{seconds} seconds'"),
    );
}

async fn a_flood_from_one_address_leaves_the_owner_in_elsewhere(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let attacker = app.visitor_from("127.0.0.2", &[]);
    for i in 1..=policy::PAIR_ALLOWANCE {
        assert_eq!(
            attacker.login("alice", "guess").await.status(),
            401,
            "failure {i}"
        );
    }
    let refused = attacker.login("alice", "guess").await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=policy::FIRST_DELAY_SECONDS).contains(&wait), "{wait}");
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Try again after") && page.contains("seconds"),
        "{page}"
    );
    assert_eq!(
        attacker.login("alice", PW).await.status(),
        429,
        "the right password from the failing address waits too"
    );

    // The owner, elsewhere, is not held back at all.
    let owner = app.visitor_from("127.0.0.1", &[]);
    let r = owner.login("alice", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/manage/audit");

    // The wait grows: after it, one more try, then twice as long.
    time_passes(&app, policy::FIRST_DELAY_SECONDS + 1);
    assert_eq!(attacker.login("alice", "guess").await.status(), 401);
    let longer = attacker.login("alice", "guess").await;
    assert_eq!(longer.status(), 429);
    let wait = retry_after(&longer);
    assert!(
        (policy::FIRST_DELAY_SECONDS + 1..=2 * policy::FIRST_DELAY_SECONDS).contains(&wait),
        "{wait}"
    );
    // Refused tries are not failures: hammering does not lengthen the wait.
    for _ in 0..5 {
        assert_eq!(attacker.login("alice", "guess").await.status(), 429);
    }
    assert!(retry_after(&attacker.login("alice", "guess").await) <= wait);
    // And the owner's login did not wipe the attacker's record.
    assert_eq!(attacker.login("alice", PW).await.status(), 429);
    // Every failure is on record; of the refusals, which cost the attacker
    // no password check, the first of the minute for the name.
    let events = auditdesk::audit::store::latest(&mut app.conn(), 100).unwrap();
    let count = |status: u16| {
        events
            .iter()
            .filter(|e| e.action.as_str() == "login" && e.status_code == status)
            .count()
    };
    assert_eq!(count(401), policy::PAIR_ALLOWANCE as usize + 1);
    assert_eq!(count(429), 1);
}

async fn a_spray_across_names_slows_that_address_only(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let sprayer = app.visitor_from("127.0.0.2", &[]);
    for i in 1..=policy::ADDRESS_ALLOWANCE {
        let r = sprayer.login(&format!("user{i}"), "Summer2026!").await;
        assert_eq!(r.status(), 401, "name {i}");
    }
    assert_eq!(sprayer.login("user21", "Summer2026!").await.status(), 429);
    assert_eq!(sprayer.login("alice", PW).await.status(), 429);
    let elsewhere = app.visitor_from("127.0.0.3", &[]);
    assert_eq!(elsewhere.login("alice", PW).await.status(), 303);
}

async fn a_distributed_attack_slows_the_account_but_never_locks_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    // The owner's browser logged in before, and was given the device cookie.
    let owner = app.visitor_from("127.0.0.3", &[]);
    let first = owner.login("alice", PW).await;
    assert_eq!(first.status(), 303);
    assert!(
        first
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("auditdesk_device=")),
        "a login hands out the device cookie"
    );
    // Its session has ended since; the device cookie stays.
    let token = owner.csrf_token("/manage/audit").await;
    assert_eq!(
        owner
            .post_form("/logout", &[("csrf_token", &token)])
            .await
            .status(),
        303
    );
    // The ceiling's worth of failures, one from each of as many addresses.
    let now = chrono::Utc::now().naive_utc();
    let mut conn = app.conn();
    for i in 0..policy::ACCOUNT_CEILING {
        auditdesk::db::login_failures::record(
            &mut conn,
            "alice",
            &format!("198.51.{}.{}", i / 250, i % 250 + 1),
            now,
        )
        .unwrap();
    }
    // A fresh address gets no free guess: the account takes one try every
    // ACCOUNT_PACE_SECONDS from clients it does not know...
    let guesser = app.visitor_from("127.0.0.2", &[]);
    let paced = guesser.login("alice", "guess").await;
    assert_eq!(paced.status(), 429);
    assert!(retry_after(&paced) <= policy::ACCOUNT_PACE_SECONDS);
    // ...and so does a stranger with the right password: slowed, not locked.
    let stranger = app.visitor_from("127.0.0.4", &[]);
    assert_eq!(stranger.login("alice", PW).await.status(), 429);
    // The owner's browser gets in at once, from wherever.
    let travelling = app.visitor_from("127.0.0.5", &[]);
    travelling
        .client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(owner.login("alice", PW).await.status(), 303);
    // Once the pace allows, the next try is let through, and a wrong one
    // makes the account wait again.
    time_passes(&app, policy::ACCOUNT_PACE_SECONDS + 1);
    assert_eq!(guesser.login("alice", "guess").await.status(), 401);
    let next = app.visitor_from("127.0.0.7", &[]);
    assert_eq!(next.login("alice", "guess").await.status(), 429);
    time_passes(&app, policy::ACCOUNT_PACE_SECONDS + 1);
    assert_eq!(
        stranger.login("alice", PW).await.status(),
        303,
        "never locked"
    );
}

async fn a_trusted_proxy_names_the_client_and_others_are_ignored(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = "127.0.0.2/32".parse().unwrap();
    })
    .await
    else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let via_proxy = |client: &str| app.visitor_from("127.0.0.2", &[("x-forwarded-for", client)]);
    // The rightmost address that is not a trusted proxy is the client.
    let spoofed = via_proxy("203.0.113.50, 198.51.100.7");
    assert_eq!(spoofed.login("alice", "guess").await.status(), 401);
    // A Forwarded header the client wrote itself is passed through by a proxy
    // that appends to X-Forwarded-For: it is not read.
    let forged = app.visitor_from(
        "127.0.0.2",
        &[
            ("forwarded", "for=192.0.2.200"),
            ("x-forwarded-for", "203.0.113.77"),
        ],
    );
    assert_eq!(forged.login("alice", "guess").await.status(), 401);
    // A peer that is not a trusted proxy is taken as it is.
    let direct = app.visitor_from("127.0.0.3", &[("x-forwarded-for", "198.51.100.9")]);
    assert_eq!(direct.login("alice", "guess").await.status(), 401);
    let newest = auditdesk::audit::store::latest(&mut app.conn(), 3).unwrap();
    let ips: Vec<&str> = newest.iter().rev().map(|e| e.ip.as_str()).collect();
    assert_eq!(ips, ["198.51.100.7", "203.0.113.77", "127.0.0.3"]);

    // The throttle counts by that client: one behind the proxy is slowed,
    // another behind the same proxy is not.
    for _ in 1..policy::PAIR_ALLOWANCE {
        assert_eq!(spoofed.login("alice", "guess").await.status(), 401);
    }
    assert_eq!(spoofed.login("alice", PW).await.status(), 429);
    assert_eq!(
        via_proxy("198.51.100.8").login("alice", PW).await.status(),
        303
    );
    let newest = auditdesk::audit::store::latest(&mut app.conn(), 1).unwrap();
    assert_eq!(
        (newest[0].status_code, newest[0].ip.as_str()),
        (200, "198.51.100.8")
    );
}

async fn a_proxy_that_writes_forwarded_is_read_by_forwarded_alone(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = "127.0.0.2".parse().unwrap();
        c.forwarded_header = auditdesk::net::ForwardedHeader::Forwarded;
    })
    .await
    else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let client = app.visitor_from(
        "127.0.0.2",
        &[
            ("forwarded", r#"for="[2001:db8::7]:5555";proto=https"#),
            ("x-forwarded-for", "203.0.113.77"),
        ],
    );
    assert_eq!(client.login("alice", "guess").await.status(), 401);
    let newest = auditdesk::audit::store::latest(&mut app.conn(), 1).unwrap();
    assert_eq!(newest[0].ip, "2001:db8::7");
}

async fn ipv6_clients_of_one_64_network_are_counted_together(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = "127.0.0.2".parse().unwrap();
    })
    .await
    else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    // One host with a /64 takes a new address for every try.
    for i in 1..=policy::PAIR_ALLOWANCE {
        let hopper = app.visitor_from(
            "127.0.0.2",
            &[("x-forwarded-for", &format!("2001:db8:1:2::{i:x}"))],
        );
        assert_eq!(
            hopper.login("alice", "guess").await.status(),
            401,
            "try {i}"
        );
    }
    let next = app.visitor_from("127.0.0.2", &[("x-forwarded-for", "2001:db8:1:2::ffff")]);
    assert_eq!(next.login("alice", "guess").await.status(), 429);
    // Another network is another client.
    let other = app.visitor_from("127.0.0.2", &[("x-forwarded-for", "2001:db8:1:3::1")]);
    assert_eq!(other.login("alice", PW).await.status(), 303);
}

crate::cases! {
    both_backends() => [
        a_flood_from_one_address_leaves_the_owner_in_elsewhere,
        a_spray_across_names_slows_that_address_only,
        a_distributed_attack_slows_the_account_but_never_locks_it,
        a_trusted_proxy_names_the_client_and_others_are_ignored,
        a_proxy_that_writes_forwarded_is_read_by_forwarded_alone,
        ipv6_clients_of_one_64_network_are_counted_together,
    ];
}
