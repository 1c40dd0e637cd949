//! One `Config` for the server, from flags and environment (see `main.rs`).

use std::time::Duration;

use crate::db::DatabaseUrl;
use crate::net::{ForwardedHeader, TrustedProxies};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the data lives.
    pub database_url: DatabaseUrl,
    /// Address to listen on; port 0 picks a free one (tests).
    pub bind: String,
    /// The address people use to reach the server; `https://...` makes cookies Secure.
    pub public_url: Option<String>,
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, however busy.
    pub absolute_timeout: Duration,
    /// Print each stored event on stdout as one line of Coder's log-export shape.
    pub log_audit_json: bool,
    /// Worker threads for HTTP (`None`: one per core).
    pub workers: Option<usize>,
    /// How often ended sessions are deleted.
    pub purge_sessions_every: Duration,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// The one forwarding header those proxies write.
    pub forwarded_header: ForwardedHeader,
    /// The file of the key that signs checkpoints (`None`: on SQLite
    /// `<database file>.signing-key`, on PostgreSQL no checkpoints).
    pub signing_key: Option<std::path::PathBuf>,
    /// How often a checkpoint is made when the log grew.
    pub checkpoint_interval: Duration,
    /// A file each new checkpoint's note is appended to (a copy outside the
    /// database).
    pub checkpoint_log: Option<std::path::PathBuf>,
    /// Downloads of the log (Manage > Audit > Export) that may run at once;
    /// more are answered 503 with `Retry-After` before any byte.
    pub max_exports: usize,
    /// How streams are delivered (`--stream-fail-after`, timeouts, batches).
    pub streams: crate::streams::deliver::Settings,
}

/// The defaults, stated once: `serve`'s flags show and use these too.
pub mod defaults {
    pub const BIND: &str = "127.0.0.1:8080";
    pub const IDLE_TIMEOUT_MINUTES: u64 = 30;
    pub const ABSOLUTE_TIMEOUT_HOURS: u64 = 12;
    pub const PURGE_SESSIONS_MINUTES: u64 = 10;
    pub const MAX_EXPORTS: u16 = 4;
    pub const CHECKPOINT_INTERVAL_SECONDS: u64 = 60;
}

impl Config {
    /// Defaults for everything but the database.
    pub fn new(database_url: DatabaseUrl) -> Self {
        Self {
            database_url,
            bind: defaults::BIND.into(),
            public_url: None,
            idle_timeout: Duration::from_secs(defaults::IDLE_TIMEOUT_MINUTES * 60),
            absolute_timeout: Duration::from_secs(defaults::ABSOLUTE_TIMEOUT_HOURS * 60 * 60),
            log_audit_json: false,
            workers: None,
            trusted_proxies: TrustedProxies::default(),
            forwarded_header: ForwardedHeader::default(),
            purge_sessions_every: Duration::from_secs(defaults::PURGE_SESSIONS_MINUTES * 60),
            max_exports: usize::from(defaults::MAX_EXPORTS),
            signing_key: None,
            checkpoint_interval: Duration::from_secs(defaults::CHECKPOINT_INTERVAL_SECONDS),
            checkpoint_log: None,
            streams: crate::streams::deliver::Settings::default(),
        }
    }

    /// Where the signing key is: the configured file, or beside an SQLite
    /// database file; `None` on PostgreSQL without `--signing-key`.
    pub fn signing_key_path(&self) -> Option<std::path::PathBuf> {
        self.signing_key
            .clone()
            .or_else(|| default_signing_key(&self.database_url))
    }

    /// A cookie's name: with the `__Host-` prefix when cookies are Secure, so
    /// that the browser keeps it to this host, path `/`, over https only.
    pub fn cookie_name(&self, name: &str) -> String {
        if self.secure_cookies() {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
    }

    /// Whether cookies must carry the Secure flag.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }
}

/// `<database file>.signing-key` for an SQLite database; none for PostgreSQL.
pub fn default_signing_key(url: &DatabaseUrl) -> Option<std::path::PathBuf> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".signing-key");
            Some(name.into())
        }
        DatabaseUrl::Postgres(_) => None,
    }
}
