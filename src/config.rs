//! One `Config` for the server, from flags and environment (see `main.rs`).

use std::time::Duration;

use crate::db::DatabaseUrl;

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
}

/// The defaults, stated once: `serve`'s flags show and use these too.
pub mod defaults {
    pub const BIND: &str = "127.0.0.1:8080";
    pub const IDLE_TIMEOUT_MINUTES: u64 = 30;
    pub const ABSOLUTE_TIMEOUT_HOURS: u64 = 12;
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
        }
    }

    /// Whether cookies must carry the Secure flag.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }
}
