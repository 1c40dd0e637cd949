//! A small W3C WebDriver client over HTTP, enough to drive headless Chromium
//! through chromedriver: open pages, type, click, go back, read the page.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::skip;

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver, stopped on drop.
pub struct Driver {
    process: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// chromedriver and Chromium, or why the browser tests cannot run here.
fn programs() -> Result<(String, String), &'static str> {
    let chromedriver = find("AUDITDESK_TEST_CHROMEDRIVER", &["chromedriver"])
        .ok_or("chromedriver is not installed (apt-get install chromium chromium-driver)")?;
    let chromium = find(
        "AUDITDESK_TEST_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )
    .ok_or("chromium is not installed (apt-get install chromium chromium-driver)")?;
    Ok((chromedriver, chromium))
}

/// Why the browser tests cannot run on this machine, or `None` when they can.
pub fn missing() -> Option<&'static str> {
    programs().err()
}

/// A program named by `env`, or found on `PATH` under one of `names`. A
/// variable that is set but empty counts as not set.
fn find(env: &str, names: &[&str]) -> Option<String> {
    if let Ok(p) = std::env::var(env)
        && !p.is_empty()
    {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// A browser session.
pub struct Browser {
    driver: Driver,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or skips loudly when missing.
    pub async fn start(what: &str) -> Option<Browser> {
        let (chromedriver, chromium) = match programs() {
            Ok(found) => found,
            Err(why) => {
                skip(what, why);
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let profile = tempfile::tempdir().unwrap();
        let driver = Driver {
            process,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", driver._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let created: Value = driver
            .http
            .post(format!("{}/session", driver.base))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Some(Browser { driver, session })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.driver.base, self.session, path);
        let mut req = self.driver.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = v["value"].get("error") {
            panic!("webdriver {path}: {err} {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The current page's HTML.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The element matching `css`, waiting up to 10 s for it (a script may
    /// still be loading the next page).
    async fn element(&self, css: &str) -> String {
        let url = format!("{}/session/{}/element", self.driver.base, self.session);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Value = self
                .driver
                .http
                .post(&url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = v["value"][ELEMENT_KEY].as_str() {
                return id.to_owned();
            }
            if Instant::now() > deadline {
                panic!("no element {css}: {}", v["value"]);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.act_on(css, "value", json!({ "text": text })).await;
    }

    /// Empties the field matching `css`.
    pub async fn clear(&self, css: &str) {
        self.act_on(css, "clear", json!({})).await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.act_on(css, "click", json!({})).await;
    }

    /// Sends the element matching `css` one of WebDriver's element commands.
    async fn act_on(&self, css: &str, command: &str, body: Value) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/{command}"),
            Some(body),
        )
        .await;
    }

    /// Presses the browser's Forward button.
    pub async fn forward(&self) {
        self.call(reqwest::Method::POST, "/forward", Some(json!({})))
            .await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await;
    }

    /// A DOM property of the element matching `css` (e.g. a field's `value`).
    pub async fn property(&self, css: &str, name: &str) -> String {
        let id = self.element(css).await;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{id}/property/{name}"),
                None,
            )
            .await;
        match v {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The computed value of a CSS property of the element matching `css`
    /// (e.g. `background-color`, as `rgba(r, g, b, a)`).
    pub async fn css_value(&self, css: &str, name: &str) -> String {
        let id = self.element(css).await;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{id}/css/{name}"),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Presses the browser's Back button.
    pub async fn back(&self) {
        self.call(reqwest::Method::POST, "/back", Some(json!({})))
            .await;
    }

    /// Waits until the URL contains `part`, or panics with what was shown instead.
    pub async fn wait_for_url(&self, part: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited for a URL with {part:?}, still at {url}: {}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resizes the window (for screenshots at a phone or laptop width).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// A PNG of the visible page.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .expect("a base64 screenshot")
    }
}

impl Drop for Browser {
    /// Ends the browser session (closing Chromium) before the driver is killed,
    /// even when a test panics; a plain blocking request, as Drop cannot await.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let host = self.driver.base.trim_start_matches("http://").to_owned();
        if let Ok(mut stream) = std::net::TcpStream::connect(&host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
    }
}
