//! Setup, login, sessions, the role gate, CSRF, the throttle, headers, and the
//! events that logins leave behind.

use std::time::Duration;

use auditdesk::auth::Role;
use auditdesk::auth::users::{self, ChangedBy};
use auditdesk::db::events;

use crate::helpers::{Backend, TestApp, client, csrf_in, location, session_cookie};

const PW: &str = "correct horse battery";

/// A request with only this cookie, from a client that keeps none of its own.
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn first_run_creates_the_site_manager_then_setup_is_gone(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let start = app.get("/").await;
    assert_eq!(
        (start.status().as_u16(), location(&start)),
        (303, "/setup".to_owned())
    );

    let token = app.csrf_token("/setup").await;
    let mismatch = app
        .post_form(
            "/setup",
            &[
                ("username", "root"),
                ("email", "root@example.com"),
                ("password", PW),
                ("password_confirm", "other words"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), 400);
    assert!(
        mismatch
            .text()
            .await
            .unwrap()
            .contains("The two passwords differ.")
    );
    let bad = app
        .post_form(
            "/setup",
            &[
                ("username", "Root!"),
                ("email", "nope"),
                ("password", "short"),
                ("password_confirm", "short"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.unwrap();
    assert!(
        body.contains("invalid username")
            && body.contains("invalid email")
            && body.contains("at least 8 characters"),
        "{body}"
    );
    assert!(
        !users::any_exist(&mut app.conn()).unwrap(),
        "nothing was created"
    );
    let common = app
        .post_form(
            "/setup",
            &[
                ("username", "root"),
                ("email", "root@example.com"),
                ("password", "password1234"),
                ("password_confirm", "password1234"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(common.status(), 400);
    let body = common.text().await.unwrap();
    assert!(body.contains("The password is too easy to guess"), "{body}");
    assert!(!users::any_exist(&mut app.conn()).unwrap());

    let ok = app
        .post_form(
            "/setup",
            &[
                ("username", "root"),
                ("email", "Root@Example.com"),
                ("password", PW),
                ("password_confirm", PW),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(
        (ok.status().as_u16(), location(&ok)),
        (303, "/manage/audit".to_owned())
    );
    let audit = app.get("/manage/audit").await;
    assert_eq!(audit.status(), 200, "setup logs the new Site Manager in");
    let page = audit.text().await.unwrap();
    assert!(
        page.contains("<strong>root</strong> <span class=\"role\">Site Manager</span>"),
        "{page}"
    );

    assert_eq!(app.get("/setup").await.status(), 404);
    let again = app
        .post_form(
            "/setup",
            &[
                ("username", "evil"),
                ("email", "evil@example.com"),
                ("password", PW),
                ("password_confirm", PW),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(again.status(), 404);
    assert_eq!(users::list(&mut app.conn()).unwrap().len(), 1);
    assert_eq!(
        location(&client().get(app.url("/")).send().await.unwrap()),
        "/manage/audit"
    );
}

async fn anonymous_visitors_are_sent_to_login_and_back(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let r = app.get("/manage/audit?action=login&user=bob").await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        "/login?next=%2Fmanage%2Faudit%3Faction%3Dlogin%26user%3Dbob"
    );
    let login = app
        .login_next("alice", PW, "/manage/audit?action=login&user=bob")
        .await;
    assert_eq!(location(&login), "/manage/audit?action=login&user=bob");
}

async fn open_redirects_land_on_the_default_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    for evil in [
        "//evil.example",
        "https://evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let r = app.another_visitor().login_next("alice", PW, evil).await;
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/manage/audit".to_owned()),
            "{evil}"
        );
    }
}

async fn members_get_403_and_roles_are_read_fresh(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("root", Role::SiteManager, PW);
    app.add_user("mia", Role::Member, PW);
    assert_eq!(app.login("mia", PW).await.status(), 303);
    let r = app.get("/manage/audit").await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Site Managers and Auditors only"), "{page}");
    assert!(page.contains("Log out"), "the 403 page keeps the header");

    // Promotion ends the session (a role change does), so log in again and see the page.
    users::set_role(
        &mut app.conn(),
        "mia",
        Role::Auditor,
        &ChangedBy::local_operator(),
    )
    .unwrap();
    assert_eq!(
        app.get("/manage/audit").await.status(),
        303,
        "a role change ends the session"
    );
    app.login("mia", PW).await;
    assert_eq!(app.get("/manage/audit").await.status(), 200);
}

async fn the_session_id_rotates_at_login(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let form = app.get("/login").await;
    assert_eq!(
        session_cookie(&form),
        None,
        "the login form needs no session"
    );
    let token = csrf_in(&form.text().await.unwrap()).unwrap();
    let first = session_cookie(&app.login("alice", PW).await).expect("login sets a cookie");
    // Logging in again over a live session (the client sends it) gives a new
    // id, and the old one stops working.
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("username", "alice"),
            ("password", PW),
            ("csrf_token", token.as_str()),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap();
    let after = session_cookie(&r).expect("login sets a new cookie");
    assert_ne!(first, after);
    assert_eq!(
        get_with_cookie(&app, "/manage/audit", &after)
            .await
            .status(),
        200
    );
    assert_eq!(
        get_with_cookie(&app, "/manage/audit", &first)
            .await
            .status(),
        303,
        "the earlier session id does not carry the new login"
    );
}

async fn anonymous_visitors_write_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let before = app.table_counts();
    // Setup is open (no user yet): its form and the login form, many times,
    // by visitors without cookies and by one that keeps them.
    for path in ["/setup", "/login", "/login?next=/manage/users", "/"] {
        for _ in 0..10 {
            let r = client().get(app.url(path)).send().await.unwrap();
            assert!(
                r.status().is_success() || r.status().is_redirection(),
                "{path}"
            );
            assert_eq!(session_cookie(&r), None, "{path} starts no session");
        }
        app.get(path).await;
    }
    assert_eq!(app.table_counts(), before, "every table is unchanged");
    // The forms still work: their token lives in the visitor's own cookie.
    let token = app.csrf_token("/setup").await;
    let r = app
        .post_form(
            "/setup",
            &[
                ("username", "root"),
                ("email", "root@example.com"),
                ("password", PW),
                ("password_confirm", PW),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    // A token from another visitor's cookie is refused.
    let other = app.another_visitor();
    let foreign = client()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let foreign = csrf_in(&foreign).unwrap();
    other.get("/login").await;
    let r = other
        .post_form(
            "/login",
            &[
                ("username", "root"),
                ("password", PW),
                ("csrf_token", &foreign),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(other.login("root", PW).await.status(), 303);
}

async fn expired_sessions_are_purged(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        // Long enough that a slow machine still sees the sessions live first.
        c.idle_timeout = Duration::from_secs(3);
        c.purge_sessions_every = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    for _ in 0..3 {
        assert_eq!(app.another_visitor().login("alice", PW).await.status(), 303);
    }
    let sessions = |app: &TestApp| {
        app.table_counts()
            .into_iter()
            .find(|(t, _)| t == "sessions")
            .unwrap()
            .1
    };
    assert!(sessions(&app) > 0, "the last login is live");
    // Nobody comes back; the server clears them out on its own.
    let mut left = -1;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = sessions(&app);
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "ended sessions are deleted");
}

async fn logout_ends_the_session_on_the_server(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let login = app.login("alice", PW).await;
    let copied = session_cookie(&login).unwrap();
    assert_eq!(
        get_with_cookie(&app, "/manage/audit", &copied)
            .await
            .status(),
        200
    );

    let page = app.get("/manage/audit").await.text().await.unwrap();
    let token = csrf_in(&page).unwrap();
    let out = app.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(
        (out.status().as_u16(), location(&out)),
        (303, "/login".to_owned())
    );
    let r = get_with_cookie(&app, "/manage/audit", &copied).await;
    assert_eq!(
        r.status(),
        303,
        "a copied cookie stops working after logout"
    );
    assert!(location(&r).starts_with("/login"));
}

async fn suspension_ends_sessions_and_blocks_login(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("root", Role::SiteManager, PW);
    app.add_user("alice", Role::Auditor, PW);
    app.login("alice", PW).await;
    assert_eq!(app.get("/manage/audit").await.status(), 200);
    users::set_suspended(&mut app.conn(), "alice", true, &ChangedBy::local_operator()).unwrap();
    assert_eq!(app.get("/manage/audit").await.status(), 303);
    let r = app.login("alice", PW).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("This account is suspended")
    );
    assert_eq!(app.get("/manage/audit").await.status(), 303);
}

async fn forms_without_this_sessions_csrf_token_change_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    app.csrf_token("/login").await; // a session exists, but the token is not sent
    let none = app
        .post_form(
            "/login",
            &[("username", "alice"), ("password", PW), ("csrf_token", "")],
        )
        .await;
    assert_eq!(none.status(), 403);
    assert_eq!(
        app.get("/manage/audit").await.status(),
        303,
        "not logged in"
    );

    // Another session's token is refused too.
    let foreign = app.another_visitor().csrf_token("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", PW),
                ("csrf_token", &foreign),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);

    app.login("alice", PW).await;
    let out = app.post_form("/logout", &[("csrf_token", "forged")]).await;
    assert_eq!(out.status(), 403);
    assert!(out.text().await.unwrap().contains("nothing was changed"));
    assert_eq!(
        app.get("/manage/audit").await.status(),
        200,
        "still logged in"
    );
    let no_field = app.post_form("/logout", &[]).await;
    assert_eq!(
        no_field.status(),
        403,
        "a form without its token is refused as forged, whatever else it lacks"
    );

    // A setup POST without a token creates nobody.
    let fresh = TestApp::spawn(backend).await.unwrap();
    fresh.csrf_token("/setup").await;
    let r = fresh
        .post_form(
            "/setup",
            &[
                ("username", "x"),
                ("email", "x@example.com"),
                ("password", PW),
                ("password_confirm", PW),
                ("csrf_token", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!users::any_exist(&mut fresh.conn()).unwrap());
}

async fn the_throttle_engages_after_five_failures(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    for i in 1..=5 {
        let r = app.login("alice", "wrong password").await;
        assert_eq!(r.status(), 401, "failure {i}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Incorrect username or password.")
        );
    }
    let sixth = app.login("Alice", PW).await;
    assert_eq!(
        sixth.status(),
        429,
        "the right password is refused while throttled"
    );
    assert!(sixth.headers().contains_key("retry-after"));
    let body = sixth.text().await.unwrap();
    assert!(
        body.contains("Too many failed logins from this address. Try again after"),
        "{body}"
    );
    assert_eq!(app.get("/manage/audit").await.status(), 303);

    // An account name that does not exist is throttled the same way.
    for _ in 0..5 {
        assert_eq!(app.login("ghost", "whatever1").await.status(), 401);
    }
    assert_eq!(app.login("ghost", "whatever1").await.status(), 429);
}

async fn unknown_user_and_wrong_password_look_the_same(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let wrong = app.login("alice", "not the password").await;
    let unknown = app.login("nobody", "not the password").await;
    assert_eq!(wrong.status(), unknown.status());
    let (a, b) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    let msg = |s: &str| {
        s.lines()
            .find(|l| l.contains("role=\"alert\""))
            .map(str::to_owned)
    };
    assert_eq!(msg(&a), msg(&b));
}

async fn security_headers_are_on_every_response(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    app.login("alice", PW).await;
    for path in ["/login", "/manage/audit", "/nope", "/static/style.css"] {
        let r = app.get(path).await;
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .expect(path)
            .to_str()
            .unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(
            h.get("x-content-type-options").unwrap(),
            "nosniff",
            "{path}"
        );
        assert_eq!(h.get("referrer-policy").unwrap(), "same-origin", "{path}");
    }
    let audit = app.get("/manage/audit").await;
    assert_eq!(audit.headers().get("cache-control").unwrap(), "no-store");
    let login = client().get(app.url("/login")).send().await.unwrap();
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");

    let https = TestApp::spawn_with(backend, |c| {
        c.public_url = Some("https://audit.example.com".into())
    })
    .await
    .unwrap();
    let r = client().get(https.url("/login")).send().await.unwrap();
    assert!(
        r.headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

async fn logins_and_logouts_are_audited_with_status_codes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let before = events::count_all(&mut app.conn()).unwrap();
    app.login("alice", "wrong password").await;
    app.login("mallory", "guess12345").await;
    app.login("alice", PW).await;
    let token = csrf_in(&app.get("/manage/audit").await.text().await.unwrap()).unwrap();
    app.post_form("/logout", &[("csrf_token", &token)]).await;

    let mut conn = app.conn();
    assert_eq!(events::count_all(&mut conn).unwrap(), before + 4);
    let newest = auditdesk::audit::store::latest(&mut conn, 4).unwrap();
    let seen: Vec<(&str, &str, u16, &str)> = newest
        .iter()
        .rev()
        .map(|e| {
            (
                e.user.username.as_str(),
                e.action.as_str(),
                e.status_code,
                e.ip.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("alice", "login", 401, "127.0.0.1"),
            ("mallory", "login", 401, "127.0.0.1"),
            ("alice", "login", 200, "127.0.0.1"),
            ("alice", "logout", 200, "127.0.0.1"),
        ]
    );
    // The log page shows them to an auditor.
    app.login("alice", PW).await;
    let page = app.get("/manage/audit").await.text().await.unwrap();
    assert!(page.contains("mallory") && page.contains(">401<"), "{page}");
}

async fn idle_and_absolute_timeouts_end_sessions(backend: Backend) {
    let Some(idle) =
        TestApp::spawn_with(backend, |c| c.idle_timeout = Duration::from_secs(1)).await
    else {
        return;
    };
    idle.add_user("alice", Role::Auditor, PW);
    idle.login("alice", PW).await;
    assert_eq!(idle.get("/manage/audit").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        idle.get("/manage/audit").await.status(),
        303,
        "idle too long"
    );

    let absolute = TestApp::spawn_with(backend, |c| c.absolute_timeout = Duration::from_secs(2))
        .await
        .unwrap();
    absolute.add_user("alice", Role::Auditor, PW);
    absolute.login("alice", PW).await;
    for _ in 0..3 {
        assert_eq!(absolute.get("/manage/audit").await.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        absolute.get("/manage/audit").await.status(),
        303,
        "too long since login, however busy"
    );
}

async fn error_pages_are_readable_and_bad_forms_are_400(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("alice", Role::Auditor, PW);
    let r = app.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Page not found") && body.contains("<link rel=\"stylesheet\""),
        "in the layout"
    );
    let token = app.csrf_token("/login").await;
    let r = app
        .post_form("/login", &[("username", "alice"), ("csrf_token", &token)])
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text().await.unwrap().contains("password"),
        "names the missing field"
    );
    let r = app
        .post_form(
            "/login",
            &[("username", ""), ("password", ""), ("csrf_token", &token)],
        )
        .await;
    assert_eq!(r.status(), 400);
    let long = "x".repeat(400);
    let r = app
        .post_form(
            "/login",
            &[
                ("username", &long),
                ("password", "x"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn only_site_managers_see_the_users_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("root", Role::SiteManager, PW);
    app.add_user("ann", Role::Auditor, PW);
    assert_eq!(app.get("/manage/users").await.status(), 303);
    app.login("ann", PW).await;
    let audit = app.get("/manage/audit").await.text().await.unwrap();
    assert!(
        !audit.contains("href=\"/manage/users\""),
        "an auditor's menu has no Users link"
    );
    assert_eq!(app.get("/manage/users").await.status(), 403);
    let root = app.another_visitor();
    root.login("root", PW).await;
    let r = root.get("/manage/users").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("ann@example.com")
            && page.contains("Auditor")
            && page.contains("href=\"/manage/users\"")
    );
}

crate::cases! {
    both_backends() => [
        first_run_creates_the_site_manager_then_setup_is_gone,
        anonymous_visitors_are_sent_to_login_and_back,
        open_redirects_land_on_the_default_page,
        members_get_403_and_roles_are_read_fresh,
        the_session_id_rotates_at_login,
        logout_ends_the_session_on_the_server,
        suspension_ends_sessions_and_blocks_login,
        forms_without_this_sessions_csrf_token_change_nothing,
        the_throttle_engages_after_five_failures,
        anonymous_visitors_write_nothing,
        expired_sessions_are_purged,
        unknown_user_and_wrong_password_look_the_same,
        security_headers_are_on_every_response,
        logins_and_logouts_are_audited_with_status_codes,
        idle_and_absolute_timeouts_end_sessions,
        error_pages_are_readable_and_bad_forms_are_400,
        only_site_managers_see_the_users_page,
    ];
}
