//! HTTP as clients expect it (HEAD, 405 with Allow, problem+json under
//! /api/, a favicon), state-changing requests from other sites refused
//! whatever their token, and https done fully (HSTS, `__Host-` cookies).

use auditdesk::auth::Role;
use auditdesk::auth::users;

use crate::helpers::{Backend, TestApp, csrf_in, location};

const PW: &str = "correct horse battery";

/// What follows the headers of a HEAD response, read off the socket (an
/// HTTP client never reads a HEAD response's body, so it cannot tell).
async fn raw_head(app: &TestApp, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    rest.to_owned()
}

async fn head_answers_every_get_and_wrong_methods_are_405_with_allow(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        "/login",
        "/healthz",
        "/static/app.js",
        "/favicon.ico",
        "/readyz",
    ] {
        let get = app.get(path).await;
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "HEAD {path} says what GET would send"
        );
        assert_eq!(raw_head(&app, path).await, "", "HEAD {path} sends no body");
    }
    let favicon = app.get("/favicon.ico").await;
    assert_eq!(favicon.headers()["content-type"], "image/x-icon");
    assert!(
        favicon.bytes().await.unwrap().starts_with(&[0, 0, 1, 0]),
        "an ICO file"
    );
    // HEAD of a protected page redirects like GET.
    let head = app
        .client
        .head(app.url("/manage/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 303);

    for (method, path, allow) in [
        (reqwest::Method::POST, "/healthz", "GET, HEAD"),
        (reqwest::Method::GET, "/logout", "POST"),
        (reqwest::Method::DELETE, "/login", "GET, POST, HEAD"),
        (reqwest::Method::PUT, "/manage/users/ann/role", "POST"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = r.text().await.unwrap();
        assert!(
            page.contains(&format!(
                "does not take {method} requests; it takes {allow}"
            )),
            "{page}"
        );
    }
    assert_eq!(app.get("/no/such/page").await.status(), 404);
}

async fn api_errors_are_problem_json_404_and_405_included(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let cases = [
        (reqwest::Method::GET, "/api/v1/nothing-here", 404, None),
        (reqwest::Method::GET, "/api/v2/audit-logs", 404, None),
        (
            reqwest::Method::PUT,
            "/api/v1/audit-logs",
            405,
            Some("POST, GET, HEAD"),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/audit-logs",
            405,
            Some("POST, GET, HEAD"),
        ),
    ];
    for (method, path, status, allow) in cases {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(
            r.headers().get("allow").map(|v| v.to_str().unwrap()),
            allow,
            "{method} {path}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
}

async fn cross_site_writes_are_refused_whatever_the_token(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("root", Role::SiteManager, PW);
    assert_eq!(app.login("root", PW).await.status(), 303);
    let token = app.csrf_token("/manage/users").await;
    let new_manager = |name: &'static str| {
        [
            ("csrf_token", token.clone()),
            ("username", name.to_owned()),
            ("email", format!("{name}@example.com")),
            ("role", "site_manager".to_owned()),
            ("password", "another good passphrase".to_owned()),
        ]
    };
    let forged = [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "null"),
    ];
    for (header, value) in forged {
        let r = app
            .client
            .post(app.url("/manage/users"))
            .header(header, value)
            .form(&new_manager("mallory"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
        let page = r.text().await.unwrap();
        assert!(page.contains("nothing was changed"), "{page}");
        let r = app
            .client
            .post(app.url("/logout"))
            .header(header, value)
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "logout with {header}: {value}");
    }
    let names: Vec<String> = users::list(&mut app.conn())
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["root"], "no account was created");
    assert_eq!(
        app.get("/manage/audit").await.status(),
        200,
        "still logged in"
    );

    // A login form posted from elsewhere is refused too.
    let visitor = app.another_visitor();
    let login_token = visitor.csrf_token("/login").await;
    let r = visitor
        .client
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf_token", login_token.as_str()),
            ("username", "root"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // So is the API, as a problem.
    let r = app
        .client
        .post(app.url("/api/v1/audit-logs"))
        .header("sec-fetch-site", "cross-site")
        .header("authorization", "Bearer whatever")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // This site's own pages, and clients that send neither header, go on to
    // the token check; so does a browser behind a proxy that rewrites Host
    // (nginx's default `Host $proxy_host`), whose Origin names the public
    // host: Sec-Fetch-Site decides. Without Sec-Fetch-Site, a foreign Origin
    // is still refused.
    let ours = app.address.as_str();
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, &str, u16, &str); 6] = [
        (
            &[("origin", ours), ("sec-fetch-site", "same-origin")],
            "carol",
            303,
            "our own page",
        ),
        (&[], "dave", 303, "a client that sends neither"),
        (
            &[("sec-fetch-site", "none")],
            "erin",
            303,
            "typed or bookmarked by the user",
        ),
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://audit.example.com"),
                ("sec-fetch-site", "same-origin"),
            ],
            "frank",
            303,
            "same-origin behind a proxy",
        ),
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://audit.example.com"),
            ],
            "grace",
            403,
            "an older browser's Origin is compared",
        ),
        (&[("origin", ours)], "heidi", 303, "an older browser here"),
    ];
    for (headers, name, status, why) in cases {
        let mut request = app.client.post(app.url("/manage/users"));
        for (header, value) in headers {
            request = request.header(*header, *value);
        }
        let r = request.form(&new_manager(name)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{why}");
        if status == 303 {
            assert_eq!(location(&r), "/manage/users", "{why}");
        }
    }
}

/// The `name=value` of a cookie that a response sets, and its attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

async fn https_sends_hsts_and_host_prefixed_cookies(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.public_url = Some("https://audit.example.com".into());
    })
    .await
    else {
        return;
    };
    app.add_user("root", Role::SiteManager, PW);
    // The client cannot keep Secure cookies over this test's plain http: carry them by hand.
    let client = crate::helpers::client();
    let form = client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(
        form.headers()["strict-transport-security"],
        "max-age=63072000"
    );
    let form_cookie = set_cookie(&form, "__Host-auditdesk_form").expect("a __Host- form cookie");
    for attribute in ["Secure", "Path=/", "HttpOnly"] {
        assert!(form_cookie.contains(attribute), "{form_cookie}");
    }
    assert!(
        !form_cookie.to_lowercase().contains("domain="),
        "{form_cookie}"
    );
    let token = csrf_in(&form.text().await.unwrap()).unwrap();
    let r = client
        .post(app.url("/login"))
        .header("cookie", form_cookie.split(';').next().unwrap())
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", "root"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers().contains_key("strict-transport-security"));
    let session = set_cookie(&r, "__Host-auditdesk_session").expect("a __Host- session cookie");
    for attribute in ["Secure", "Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.to_lowercase().contains("domain="), "{session}");
    let page = client
        .get(app.url("/manage/audit"))
        .header("cookie", session.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // With the public URL as the origin, a page of this site may post; another origin may not.
    let token = csrf_in(&page.text().await.unwrap()).unwrap();
    let r = client
        .post(app.url("/logout"))
        .header("cookie", session.split(';').next().unwrap())
        .header("origin", app.address.as_str())
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the public URL's origin is the only one");
    let r = client
        .post(app.url("/logout"))
        .header("cookie", session.split(';').next().unwrap())
        .header("origin", "https://audit.example.com")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Without an https public URL there is no HSTS (it would pin plain-http users out).
    let Some(plain) = TestApp::spawn(backend).await else {
        return;
    };
    assert!(
        !plain
            .get("/login")
            .await
            .headers()
            .contains_key("strict-transport-security")
    );
}

crate::cases! {
    both_backends() => [
        head_answers_every_get_and_wrong_methods_are_405_with_allow,
        api_errors_are_problem_json_404_and_405_included,
        cross_site_writes_are_refused_whatever_the_token,
        https_sends_hsts_and_host_prefixed_cookies,
    ];
}
