//! Spawns the real application on port 0 against a fresh database, on SQLite or
//! PostgreSQL, and gives tests an HTTP client that keeps cookies and does not
//! follow redirects.

use std::io::Write;

use auditdesk::app::Application;
use auditdesk::audit::{EventInput, NewEvent};
use auditdesk::config::Config;
use auditdesk::db::{self, AnyConnection, DatabaseUrl, DbConn};
use diesel::Connection;
use diesel::connection::SimpleConnection;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test needs besides this process and an SQLite file. A test whose
/// needs are missing is reported as ignored, with the reason printed once;
/// under `CI=true` it runs anyway, and its loud skip fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A PostgreSQL server, named by `AUDITDESK_TEST_POSTGRES_URL`.
    Postgres,
    /// chromedriver and Chromium (`AUDITDESK_TEST_CHROMEDRIVER`, `AUDITDESK_TEST_CHROMIUM` or `PATH`).
    Browser,
    /// LibreOffice's `soffice`, for the spreadsheet test.
    LibreOffice,
    /// rsyslog's `rsyslogd`, the syslog server a stream's test delivers to.
    Rsyslog,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Need::Postgres => "PostgreSQL",
            Need::Browser => "a browser",
            Need::LibreOffice => "LibreOffice",
            Need::Rsyslog => "rsyslog",
        })
    }
}

impl Need {
    pub const ALL: [Need; 4] = [
        Need::Postgres,
        Need::Browser,
        Need::LibreOffice,
        Need::Rsyslog,
    ];

    /// Why this need is missing on this machine, or `None` when it is met.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            Need::Postgres => std::env::var_os("AUDITDESK_TEST_POSTGRES_URL")
                .is_none()
                .then_some(POSTGRES_MISSING),
            Need::Browser => crate::webdriver::missing(),
            Need::LibreOffice => crate::statuses::soffice()
                .is_none()
                .then_some(LIBREOFFICE_MISSING),
            Need::Rsyslog => crate::streams::rsyslogd()
                .is_none()
                .then_some(RSYSLOG_MISSING),
        }
    }
}

const POSTGRES_MISSING: &str =
    "AUDITDESK_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)";
pub const RSYSLOG_MISSING: &str =
    "rsyslog is not installed (apt-get install rsyslog; or set AUDITDESK_TEST_RSYSLOGD)";
pub const LIBREOFFICE_MISSING: &str =
    "LibreOffice is not installed (apt-get install libreoffice-calc-nogui)";

/// One test of this binary, run by the harness in `main.rs`.
pub struct Case {
    /// `module::test` (and `::sqlite` or `::postgres`), as the standard harness named it.
    pub name: String,
    pub needs: Vec<Need>,
    /// Run only when asked (`-- --ignored`), like `#[ignore]`.
    pub on_request: bool,
    pub run: Box<dyn FnOnce() + Send>,
}

impl Case {
    /// An async test, run on an actix system of its own as `#[actix_web::test]` did.
    pub fn asynchronous<F>(
        module: &str,
        name: &str,
        needs: &[Need],
        test: impl FnOnce() -> F + Send + 'static,
    ) -> Self
    where
        F: std::future::Future<Output = ()> + 'static,
    {
        Self::blocking(module, name, needs, move || {
            actix_web::rt::System::new().block_on(test())
        })
    }

    /// A test that blocks its thread.
    pub fn blocking(
        module: &str,
        name: &str,
        needs: &[Need],
        test: impl FnOnce() + Send + 'static,
    ) -> Self {
        // `api::audit_page` → `audit_page`: the names the standard harness gave.
        let module = module.split_once("::").map_or(module, |(_, m)| m);
        Self {
            name: format!("{module}::{name}"),
            needs: needs.to_vec(),
            on_request: false,
            run: Box::new(test),
        }
    }
}

/// Lists a test module's tests for the harness, as `pub fn cases()`. A test
/// function left out of the list is dead code, which the build refuses.
///
/// ```ignore
/// crate::cases! {
///     both_backends() => [a, b];         // async fn a(backend: Backend), as `a::sqlite`, `a::postgres`
///     both_backends(LibreOffice) => [c];
///     one(Postgres) => [d];              // async fn d()
///     blocking() => [e];                 // fn e()
///     on_request(Browser) => [f];        // async fn f(), only with `-- --ignored`
/// }
/// ```
#[macro_export]
macro_rules! cases {
    ($($kind:ident $needs:tt => [$($name:ident),* $(,)?]);* $(;)?) => {
        /// This module's tests, for the harness in `main.rs`.
        #[allow(clippy::vec_init_then_push)]
        pub fn cases() -> Vec<$crate::helpers::Case> {
            let mut cases = Vec::new();
            $($($crate::cases!(@$kind cases $needs $name);)*)*
            cases
        }
    };
    (@both_backends $cases:ident ($($need:ident),*) $name:ident) => {
        $cases.push($crate::helpers::Case::asynchronous(
            module_path!(),
            concat!(stringify!($name), "::sqlite"),
            &[$($crate::helpers::Need::$need),*],
            || $name($crate::helpers::Backend::Sqlite),
        ));
        $cases.push($crate::helpers::Case::asynchronous(
            module_path!(),
            concat!(stringify!($name), "::postgres"),
            &[$crate::helpers::Need::Postgres, $($crate::helpers::Need::$need),*],
            || $name($crate::helpers::Backend::Postgres),
        ));
    };
    (@one $cases:ident ($($need:ident),*) $name:ident) => {
        $cases.push($crate::helpers::Case::asynchronous(
            module_path!(),
            stringify!($name),
            &[$($crate::helpers::Need::$need),*],
            $name,
        ));
    };
    (@blocking $cases:ident ($($need:ident),*) $name:ident) => {
        $cases.push($crate::helpers::Case::blocking(
            module_path!(),
            stringify!($name),
            &[$($crate::helpers::Need::$need),*],
            $name,
        ));
    };
    (@on_request $cases:ident ($($need:ident),*) $name:ident) => {
        let mut case = $crate::helpers::Case::asynchronous(
            module_path!(),
            stringify!($name),
            &[$($crate::helpers::Need::$need),*],
            $name,
        );
        case.on_request = true;
        $cases.push(case);
    };
}

/// Says loudly that a test did not run; under `CI=true` a missing service fails.
pub fn skip(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} cannot run under CI=true: {why}");
    }
    // Written past the test harness's capture, so that a skip is never silent.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {what}: {why} ***");
}

/// A fresh database, removed when dropped.
pub struct TestDb {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new empty database, or `None` (after a loud skip) when the backend is not available.
    pub fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = DatabaseUrl::Sqlite(dir.path().join("auditdesk.db"));
                Some(Self {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("AUDITDESK_TEST_POSTGRES_URL") else {
                    skip("a PostgreSQL test", POSTGRES_MISSING);
                    return None;
                };
                let name = format!("auditdesk_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = diesel::PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot reach AUDITDESK_TEST_POSTGRES_URL: {e}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("CREATE DATABASE");
                let mut url =
                    url::Url::parse(&admin_url).expect("AUDITDESK_TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                Some(Self {
                    url: DatabaseUrl::Postgres(url.to_string()),
                    _dir: None,
                    postgres: Some((admin_url, name)),
                })
            }
        }
    }

    /// The URL as a string for `--database-url`.
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(p) => p.display().to_string(),
            DatabaseUrl::Postgres(u) => u.clone(),
        }
    }

    /// A direct connection (no migrations run).
    pub fn connect(&self) -> DbConn {
        db::connect_one(&self.url).expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = diesel::PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A running application and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// Kept alive for the app's lifetime (dropping it removes the database).
    pub db: std::sync::Arc<TestDb>,
}

/// How long the tests' clients keep an idle connection for the next
/// request: well under the server's keep-alive (actix's 5 s), so that a
/// client never sends on a connection the server is closing at that moment
/// (seen in CI under load as hyper's IncompleteMessage).
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A client that keeps cookies and does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .pool_idle_timeout(POOL_IDLE)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

impl TestApp {
    /// Starts the app on a fresh database of `backend`; `None` if that backend is unavailable.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with a chance to change the configuration.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::new(backend)?;
        let mut config = Config::new(db.url.clone());
        config.bind = "127.0.0.1:0".into();
        config.workers = Some(2);
        tweak(&mut config);
        let app = Application::build(config).expect("the application starts");
        let port = app.port();
        actix_web::rt::spawn(app.run_until_stopped());
        Some(Self {
            address: format!("http://127.0.0.1:{port}"),
            client: client(),
            db: std::sync::Arc::new(db),
        })
    }

    /// Another visitor of the same running app: same server, own cookies.
    pub fn another_visitor(&self) -> TestApp {
        TestApp {
            address: self.address.clone(),
            client: client(),
            db: self.db.clone(),
        }
    }

    /// Another visitor connecting from `ip` (loopback answers on all of
    /// 127/8), sending `headers` with every request.
    pub fn visitor_from(&self, ip: &str, headers: &[(&'static str, &str)]) -> TestApp {
        let mut defaults = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            defaults.insert(*name, value.parse().expect("a header value"));
        }
        TestApp {
            address: self.address.clone(),
            client: reqwest::Client::builder()
                .cookie_store(true)
                .pool_idle_timeout(POOL_IDLE)
                .redirect(reqwest::redirect::Policy::none())
                .local_address(ip.parse::<std::net::IpAddr>().expect("an address"))
                .default_headers(defaults)
                .build()
                .expect("an HTTP client"),
            db: self.db.clone(),
        }
    }

    /// How many rows each table holds, by table name (every table of the schema).
    pub fn table_counts(&self) -> Vec<(String, i64)> {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn();
        let list = match &self.db.url {
            DatabaseUrl::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            }
            DatabaseUrl::Postgres(_) => {
                "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
            }
        };
        let names: Vec<Name> = match conn.backend() {
            AnyConnection::Sqlite(c) => diesel::sql_query(list).load(c),
            AnyConnection::Postgres(c) => diesel::sql_query(list).load(c),
        }
        .unwrap();
        names
            .into_iter()
            .map(|t| {
                let q = format!("SELECT count(*) AS n FROM \"{}\"", t.name);
                let n: N = match conn.backend() {
                    AnyConnection::Sqlite(c) => diesel::sql_query(&q).get_result(c),
                    AnyConnection::Postgres(c) => diesel::sql_query(&q).get_result(c),
                }
                .unwrap();
                (t.name, n.n)
            })
            .collect()
    }

    /// Runs one SQL statement on the app's database, per backend.
    pub fn execute(&self, sqlite: &str, postgres: &str) {
        use diesel::prelude::*;
        let mut conn = self.conn();
        match conn.backend() {
            AnyConnection::Sqlite(c) => diesel::sql_query(sqlite).execute(c),
            AnyConnection::Postgres(c) => diesel::sql_query(postgres).execute(c),
        }
        .unwrap();
    }

    /// A direct connection to the app's database.
    pub fn conn(&self) -> DbConn {
        self.db.connect()
    }

    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POST a form with the app's client.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("the request is answered")
    }

    /// The CSRF token in a page's forms (the app's client gets its session cookie too).
    pub async fn csrf_token(&self, path: &str) -> String {
        let page = self.get(path).await.text().await.unwrap();
        csrf_in(&page).unwrap_or_else(|| panic!("no csrf_token on {path}: {page}"))
    }

    /// Creates a user directly in the database.
    pub fn add_user(&self, username: &str, role: auditdesk::auth::Role, password: &str) {
        let mut conn = self.conn();
        auditdesk::auth::users::create(
            &mut conn,
            &auditdesk::auth::users::NewUser {
                username,
                email: &format!("{username}@example.com"),
                role,
                password_hash: &auditdesk::auth::password::hash_password(password),
            },
            &auditdesk::auth::ChangedBy::local_operator(),
        )
        .expect("user created");
    }

    /// Logs in through the form; returns the response to the POST.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.login_next(username, password, "").await
    }

    /// Logs in through the form with a `next` field.
    pub async fn login_next(
        &self,
        username: &str,
        password: &str,
        next: &str,
    ) -> reqwest::Response {
        let token = self.csrf_token("/login").await;
        self.post_form(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", &token),
                ("next", next),
            ],
        )
        .await
    }

    /// Whether a string is stored anywhere in the database: in the SQLite file
    /// and its write-ahead log byte for byte, or in any PostgreSQL table's rows.
    pub fn database_contains(&self, needle: &str) -> bool {
        match &self.db.url {
            DatabaseUrl::Sqlite(path) => {
                let mut bytes = std::fs::read(path).unwrap();
                if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
                    bytes.extend(wal);
                }
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            }
            DatabaseUrl::Postgres(_) => {
                use diesel::prelude::*;
                #[derive(QueryableByName)]
                struct N {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let mut conn = self.conn();
                let AnyConnection::Postgres(c) = conn.backend() else {
                    unreachable!()
                };
                let tables = [
                    "events",
                    "users",
                    "sessions",
                    "api_tokens",
                    "settings",
                    "actors",
                    "resource_targets",
                ];
                tables.iter().any(|table| {
                    let n: N = diesel::sql_query(format!(
                        "SELECT count(*) AS n FROM {table} t WHERE strpos(t::text, $1) > 0"
                    ))
                    .bind::<diesel::sql_types::Text, _>(needle)
                    .get_result(c)
                    .unwrap();
                    n.n > 0
                })
            }
        }
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("the request is answered")
    }
}

/// The value of the first `csrf_token` field in an HTML page.
pub fn csrf_in(page: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker)? + marker.len();
    let len = page[start..].find('"')?;
    Some(page[start..start + len].to_owned())
}

/// The `Location` header of a redirect.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The session cookie a response sets, as `name=value`.
pub fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("auditdesk_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// A validated event from interchange-format JSON written by the test itself.
pub fn new_event(json: &str) -> NewEvent {
    EventInput::from_json(json)
        .expect("the test's event is JSON")
        .validate(chrono::Utc::now())
        .expect("the test's event is valid")
}

/// The strings of a JSON array (each element, or its `field` when given).
pub fn strings<'a>(array: &'a serde_json::Value, field: Option<&str>) -> Vec<&'a str> {
    array
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| field.map_or(v, |f| &v[f]).as_str().expect("a string"))
        .collect()
}
