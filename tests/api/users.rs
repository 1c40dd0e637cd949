//! Manage > Users in the browser's terms: forms with CSRF tokens, redirects with a
//! note, refusals as 400 pages, and every change recorded as an audit event with the
//! acting Site Manager as its user.

use auditdesk::audit::event::Event;
use auditdesk::audit::store;
use auditdesk::auth::Role;
use auditdesk::auth::users;
use serde_json::json;

use crate::helpers::{Backend, TestApp, location};

const PW: &str = "correct horse battery staple";

/// An app with a logged-in Site Manager `root` and an auditor `ann`.
async fn app_with_root(backend: Backend) -> Option<TestApp> {
    let app = TestApp::spawn(backend).await?;
    app.add_user("root", Role::SiteManager, PW);
    app.add_user("ann", Role::Auditor, PW);
    assert_eq!(app.login("root", PW).await.status(), 303);
    Some(app)
}

impl TestApp {
    /// Posts a Manage > Users form with this session's CSRF token.
    async fn users_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf_token("/manage/users").await;
        let mut form = vec![("csrf_token", token.as_str())];
        form.extend_from_slice(fields);
        self.post_form(path, &form).await
    }

    /// A user as stored now.
    fn user(&self, username: &str) -> users::User {
        users::list(&mut self.conn())
            .unwrap()
            .into_iter()
            .find(|u| u.username == username)
            .expect("the user exists")
    }

    /// The newest stored event.
    fn newest_event(&self) -> Event {
        store::latest(&mut self.conn(), 1).unwrap().remove(0)
    }
}

/// Follows a change's redirect and returns the page it lands on.
async fn after_redirect(app: &TestApp, r: reqwest::Response) -> String {
    assert_eq!(r.status(), 303, "a change redirects back to the page");
    assert_eq!(location(&r), "/manage/users");
    app.get("/manage/users").await.text().await.unwrap()
}

async fn a_site_manager_adds_a_user_and_the_creation_is_audited(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    let r = app
        .users_form(
            "/manage/users",
            &[
                ("username", "bob"),
                ("email", "Bob@Example.com"),
                ("role", "member"),
                ("password", PW),
            ],
        )
        .await;
    let page = after_redirect(&app, r).await;
    assert!(
        page.contains("Created bob (bob@example.com) as Member."),
        "{page}"
    );
    // The note is shown once, not on every later visit.
    let again = app.get("/manage/users").await.text().await.unwrap();
    assert!(!again.contains("Created bob"));
    assert!(again.contains("bob@example.com"));

    let e = app.newest_event();
    assert_eq!(e.action.as_str(), "create");
    assert_eq!(e.resource_type, "user");
    assert_eq!(e.resource_target, "bob@example.com");
    assert_eq!(
        e.user.username, "root",
        "the acting site manager is the event's user"
    );
    assert_eq!(e.status_code, 200);
    assert_eq!(
        serde_json::to_value(&e.diff["role"]).unwrap(),
        json!({"new": "member", "secret": false})
    );

    // The new user can log in with the password that was set.
    let bob = app.another_visitor();
    assert_eq!(bob.login("bob", PW).await.status(), 303);
}

async fn bad_new_users_are_refused_with_the_reason_and_nothing_is_stored(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    let before = users::list(&mut app.conn()).unwrap().len();
    let cases: [(&str, &str, &str, &str, &str); 8] = [
        ("ann", "other@example.com", "auditor", PW, "already taken"),
        (
            "carl",
            "ann@example.com",
            "auditor",
            PW,
            "already used by another user",
        ),
        (
            "Carl Space",
            "carl@example.com",
            "auditor",
            PW,
            "invalid username",
        ),
        (
            "carl",
            "carl@example.com",
            "auditor",
            "short",
            "must be at least",
        ),
        (
            "carl",
            "carl@example.com",
            "auditor",
            "123456789012",
            "too easy to guess",
        ),
        (
            "carl",
            "carl@example.com",
            "auditor",
            "password",
            "too easy to guess",
        ),
        (
            // Strong alone; made of the account's own email, it is not.
            "carl",
            "wintergreen-1987@example.com",
            "auditor",
            "wintergreen-1987",
            "too easy to guess",
        ),
        ("carl", "carl@example.com", "overlord", PW, "overlord"),
    ];
    for (username, email, role, password, reason) in cases {
        let r = app
            .users_form(
                "/manage/users",
                &[
                    ("username", username),
                    ("email", email),
                    ("role", role),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(r.status(), 400, "{username} / {email} / {role}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("role=\"alert\"") && page.to_lowercase().contains(reason),
            "the page names the problem ({reason}): {page}"
        );
        assert!(
            page.contains(&format!("value=\"{}\"", email)),
            "the form keeps what was typed"
        );
    }
    // A form with a missing field is a 400 too, not a 500.
    let r = app
        .users_form("/manage/users", &[("username", "carl")])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(users::list(&mut app.conn()).unwrap().len(), before);
}

async fn role_changes_are_audited_and_the_last_site_manager_stays(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    let r = app
        .users_form("/manage/users/ann/role", &[("role", "site_manager")])
        .await;
    let page = after_redirect(&app, r).await;
    assert!(page.contains("ann: Auditor → Site Manager"), "{page}");
    let e = app.newest_event();
    assert_eq!(
        (e.action.as_str(), e.resource_target.as_str()),
        ("write", "ann@example.com")
    );
    assert_eq!(e.user.username, "root");
    assert_eq!(
        serde_json::to_value(&e.diff["role"]).unwrap(),
        json!({"old": "auditor", "new": "site_manager", "secret": false})
    );

    // Two site managers: root may step down; then ann is the last one and may not.
    let r = app
        .users_form("/manage/users/ann/role", &[("role", "member")])
        .await;
    assert_eq!(r.status(), 303);
    // root demoted ann back... so root is the last site manager again.
    let events_before = store::latest(&mut app.conn(), 1000).unwrap().len();
    let r = app
        .users_form("/manage/users/root/role", &[("role", "auditor")])
        .await;
    assert_eq!(r.status(), 400, "demoting the last site manager is refused");
    assert!(r.text().await.unwrap().contains("last active site manager"));
    let r = app.users_form("/manage/users/root/suspend", &[]).await;
    assert_eq!(
        r.status(),
        400,
        "suspending the last site manager is refused"
    );
    assert!(r.text().await.unwrap().contains("last active site manager"));
    let root = app.user("root");
    assert_eq!(root.role, Role::SiteManager);
    assert!(!root.suspended);
    assert_eq!(
        store::latest(&mut app.conn(), 1000).unwrap().len(),
        events_before,
        "a refused change records no event"
    );

    let r = app
        .users_form("/manage/users/nobody/role", &[("role", "auditor")])
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .users_form("/manage/users/ann/role", &[("role", "boss")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("boss"));
}

async fn suspension_and_password_resets_are_audited_and_take_effect(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    let ann = app.another_visitor();
    assert_eq!(ann.login("ann", PW).await.status(), 303);
    assert_eq!(ann.get("/manage/audit").await.status(), 200);

    let page = after_redirect(&app, app.users_form("/manage/users/ann/suspend", &[]).await).await;
    assert!(page.contains("ann is suspended"));
    let e = app.newest_event();
    assert_eq!(e.user.username, "root");
    assert_eq!(
        serde_json::to_value(&e.diff["suspended"]).unwrap(),
        json!({"old": false, "new": true, "secret": false})
    );
    assert_eq!(
        ann.get("/manage/audit").await.status(),
        303,
        "her session has ended"
    );
    assert_eq!(
        ann.login("ann", PW).await.status(),
        403,
        "and she cannot log in"
    );

    after_redirect(
        &app,
        app.users_form("/manage/users/ann/reactivate", &[]).await,
    )
    .await;
    let new_password = "a brand new passphrase 42";
    let page = after_redirect(
        &app,
        app.users_form("/manage/users/ann/password", &[("password", new_password)])
            .await,
    )
    .await;
    assert!(page.contains("ann has a new password"));
    let e = app.newest_event();
    assert_eq!(e.resource_target, "ann@example.com");
    assert_eq!(
        serde_json::to_value(&e.diff["password"]).unwrap(),
        json!({"secret": true}),
        "the password is recorded as a changed secret, without its value"
    );
    assert!(!app.database_contains(new_password));
    let ann = app.another_visitor();
    assert_eq!(
        ann.login("ann", PW).await.status(),
        401,
        "the old password is gone"
    );
    assert_eq!(ann.login("ann", new_password).await.status(), 303);

    let r = app
        .users_form("/manage/users/ann/password", &[("password", "short")])
        .await;
    assert_eq!(r.status(), 400);
    // A common password, or the account's own email, is refused with the reason.
    for weak in ["12345678", "ann@example.com"] {
        let r = app
            .users_form("/manage/users/ann/password", &[("password", weak)])
            .await;
        assert_eq!(r.status(), 400);
        let page = r.text().await.unwrap();
        assert!(page.contains("too easy to guess"), "{weak}: {page}");
    }
    assert_eq!(
        app.another_visitor()
            .login("ann", new_password)
            .await
            .status(),
        303,
        "the password is unchanged"
    );
}

async fn a_manager_who_resets_their_own_password_is_logged_out_too(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    app.add_user("root2", Role::SiteManager, PW);
    let new_password = "another long passphrase 7";
    let r = app
        .users_form("/manage/users/root/password", &[("password", new_password)])
        .await;
    assert_eq!(r.status(), 303);
    // The note written after the change must not bring the ended session back.
    assert_eq!(app.get("/manage/users").await.status(), 303, "logged out");
    assert_eq!(app.login("root", new_password).await.status(), 303);
    assert_eq!(app.get("/manage/users").await.status(), 200);
}

async fn api_tokens_are_shown_once_work_and_stop_when_revoked(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    let r = app
        .users_form(
            "/manage/users/tokens",
            &[("name", "platform"), ("scope", "ingest")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let marker = "<code id=\"new-token\">";
    let start = page.find(marker).expect("the secret is shown") + marker.len();
    let secret = page[start..start + page[start..].find('<').unwrap()].to_owned();
    assert!(secret.starts_with("adk_") && secret.len() > 40, "{secret}");
    let listed = app.get("/manage/users").await.text().await.unwrap();
    assert!(
        listed.contains("platform") && !listed.contains(&secret),
        "never shown again"
    );
    let e = app.newest_event();
    assert_eq!(
        (e.action.as_str(), e.resource_type.as_str()),
        ("create", "api_key")
    );
    assert_eq!(e.user.username, "root");

    let event = json!({"user": {"username": "svc"}, "action": "open", "resource_type": "workspace",
        "resource_id": "ws-1", "resource_target": "svc-dev"});
    assert_eq!(app.ingest(&secret, &event).await.0, 201);

    let token = auditdesk::auth::tokens::list(&mut app.conn())
        .unwrap()
        .remove(0);
    assert!(
        token.last_used_at.is_some(),
        "the token's last use is recorded"
    );
    let id = token.id;
    let page = after_redirect(
        &app,
        app.users_form(&format!("/manage/users/tokens/{id}/revoke"), &[])
            .await,
    )
    .await;
    assert!(page.contains("it no longer works"));
    assert_eq!(app.ingest(&secret, &event).await.0, 401, "refused at once");
    let e = app.newest_event();
    assert_eq!(
        (e.action.as_str(), e.resource_type.as_str()),
        ("delete", "api_key")
    );

    let r = app.users_form("/manage/users/tokens/999/revoke", &[]).await;
    assert_eq!(r.status(), 404);
    let r = app
        .users_form("/manage/users/tokens", &[("name", "x"), ("scope", "admin")])
        .await;
    assert_eq!(r.status(), 400);
    let r = app
        .users_form("/manage/users/tokens", &[("name", ""), ("scope", "read")])
        .await;
    assert_eq!(r.status(), 400, "a token needs a name");
}

async fn only_site_managers_change_users_and_only_with_the_csrf_token(backend: Backend) {
    let Some(app) = app_with_root(backend).await else {
        return;
    };
    app.add_user("mo", Role::Member, PW);
    let user_changes = |app: &TestApp| {
        store::latest(&mut app.conn(), 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action.as_str() != "login" && e.action.as_str() != "create")
            .count()
    };
    // A Site Manager's form without this session's token changes nothing.
    let r = app
        .post_form(
            "/manage/users/ann/role",
            &[("csrf_token", "forged"), ("role", "site_manager")],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Auditors and members, with their own valid CSRF token, are refused.
    for (who, role) in [("ann", Role::Auditor), ("mo", Role::Member)] {
        let visitor = app.another_visitor();
        assert_eq!(visitor.login(who, PW).await.status(), 303);
        let r = visitor.get("/manage/users").await;
        assert_eq!(r.status(), 403, "{who}");
        let token = crate::helpers::csrf_in(&r.text().await.unwrap())
            .expect("the 403 page keeps the logout form and its token");
        for path in [
            "/manage/users/ann/role",
            "/manage/users/mo/suspend",
            "/manage/users/tokens",
            "/manage/users",
        ] {
            let r = visitor
                .post_form(
                    path,
                    &[
                        ("csrf_token", &token),
                        ("role", "site_manager"),
                        ("name", "x"),
                        ("scope", "read"),
                        ("username", "eve"),
                        ("email", "eve@example.com"),
                        ("password", PW),
                    ],
                )
                .await;
            assert_eq!(r.status(), 403, "{who} on {path}");
        }
        assert_eq!(app.user(who).role, role);
    }
    // Nor can a stranger without a session.
    let stranger = app.another_visitor();
    let r = stranger.post_form("/manage/users/ann/suspend", &[]).await;
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with("/login"),
        "a stranger is sent to log in"
    );
    assert!(!app.user("ann").suspended && !app.user("mo").suspended);
    assert!(
        users::list(&mut app.conn())
            .unwrap()
            .iter()
            .all(|u| u.username != "eve")
    );
    assert!(
        auditdesk::auth::tokens::list(&mut app.conn())
            .unwrap()
            .is_empty()
    );
    assert_eq!(user_changes(&app), 0, "no change was recorded");
}

crate::cases! {
    both_backends() => [
        a_site_manager_adds_a_user_and_the_creation_is_audited,
        bad_new_users_are_refused_with_the_reason_and_nothing_is_stored,
        role_changes_are_audited_and_the_last_site_manager_stays,
        suspension_and_password_resets_are_audited_and_take_effect,
        api_tokens_are_shown_once_work_and_stop_when_revoked,
        a_manager_who_resets_their_own_password_is_logged_out_too,
        only_site_managers_change_users_and_only_with_the_csrf_token,
    ];
}
