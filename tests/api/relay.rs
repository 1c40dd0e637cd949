//! A TCP relay in front of PostgreSQL that the test controls: it can cut
//! every connection and refuse new ones (the database is gone), come back,
//! or let one COMMIT through and break that connection before its answer
//! returns (the outcome of a commit is unknown to the application).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use auditdesk::db::DatabaseUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Backend, TestDb};

/// A fresh PostgreSQL database and a relay in front of it, or `None` (after
/// a loud skip) without PostgreSQL.
pub fn relayed_postgres() -> Option<(TestDb, Relay)> {
    let db = TestDb::new(Backend::Postgres)?;
    let DatabaseUrl::Postgres(real) = &db.url else {
        unreachable!("a PostgreSQL test database")
    };
    let url = url::Url::parse(real).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let relay = Relay::start(target, url);
    Some((db, relay))
}

#[derive(Default)]
struct Switches {
    /// Cleared: every connection is cut and new ones are closed at once.
    closed: AtomicBool,
    /// Set: the next COMMIT goes through and its connection is then broken
    /// before the answer comes back.
    break_after_commit: AtomicBool,
    /// How many commits were let through and their answers dropped.
    commits_broken: AtomicUsize,
}

/// The relay's controls.
pub struct Relay {
    port: u16,
    url: url::Url,
    switches: Arc<Switches>,
}

impl Relay {
    /// Runs on a thread of its own: the application connects to the database
    /// synchronously while the test's runtime waits for it.
    fn start(target: String, url: url::Url) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let switches = Arc::new(Switches::default());
        let shared = switches.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(accept(std_listener, target, shared));
        });
        Self {
            port,
            url,
            switches,
        }
    }

    /// The database's URL through the relay.
    pub fn database_url(&self) -> DatabaseUrl {
        let mut url = self.url.clone();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        // In plain text, so that the relay can see a COMMIT go by.
        url.query_pairs_mut().append_pair("sslmode", "disable");
        DatabaseUrl::Postgres(url.to_string())
    }

    /// The database becomes unreachable: open connections break, new ones close.
    pub fn cut(&self) {
        self.switches.closed.store(true, Ordering::SeqCst);
    }

    /// The database is reachable again.
    pub fn restore(&self) {
        self.switches.closed.store(false, Ordering::SeqCst);
    }

    /// The next COMMIT (on any connection: arm it just before the request
    /// whose transaction it is to break) reaches the database, and its
    /// connection breaks before the answer returns.
    pub fn break_after_next_commit(&self) {
        self.switches
            .break_after_commit
            .store(true, Ordering::SeqCst);
    }

    /// How many commits had their answer dropped.
    pub fn commits_broken(&self) -> usize {
        self.switches.commits_broken.load(Ordering::SeqCst)
    }
}

async fn accept(listener: std::net::TcpListener, target: String, switches: Arc<Switches>) {
    let listener = TcpListener::from_std(listener).unwrap();
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            return;
        };
        if switches.closed.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let (switches, target) = (switches.clone(), target.clone());
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let broken = async {
                while !switches.closed.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::select! {
                _ = carry(inbound, outbound, &switches) => {}
                _ = broken => {}
            }
        });
    }
}

/// Copies both ways until either side closes, or until a COMMIT it was told
/// to break has gone through.
async fn carry(inbound: TcpStream, outbound: TcpStream, switches: &Switches) {
    let (mut from_app, mut to_app) = inbound.into_split();
    let (mut from_db, mut to_db) = outbound.into_split();
    // Set once a COMMIT is to be broken: no answer reaches the app after it.
    let muted = AtomicBool::new(false);
    let answers = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_db.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if muted.load(Ordering::SeqCst) {
                continue;
            }
            if to_app.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let requests = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_app.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let breaking = contains(chunk, b"COMMIT")
                && switches.break_after_commit.swap(false, Ordering::SeqCst);
            if breaking {
                muted.store(true, Ordering::SeqCst);
            }
            if to_db.write_all(chunk).await.is_err() {
                return;
            }
            if breaking {
                // Let the database read and run it, then drop both sides
                // without passing its answer on.
                tokio::time::sleep(Duration::from_millis(300)).await;
                switches.commits_broken.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    };
    tokio::select! {
        _ = answers => {}
        _ = requests => {}
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
