//! The database layer: the only module that names a backend.
//!
//! One connection type, [`DbConn`], covers SQLite (the embedded default) and
//! PostgreSQL (for scale); which one is chosen by the URL scheme (see
//! [`DatabaseUrl`]). Queries are written once with diesel's query builder and run
//! on [`AnyConnection`], diesel's `MultiConnection` over both backends
//! (`query.load(conn.backend())`). What it cannot express is written per backend
//! with [`with_backend!`], which expands the same code once for each: upserts
//! (`ON CONFLICT`), the event insert, PRAGMAs and how a write transaction begins.
//!
//! # Hot queries
//! The queries every page view runs (its session, its user, the page of events
//! and their capped count) are also written with [`with_backend!`]: diesel's
//! `MultiConnection` writes a query's SQL text again on every execution and
//! passes each bind and value through its own backend type. Measured with
//! `bench/page.sh sqlite 1000000` (bench/README.md, "Fifth sitting").

pub mod checkpoints;
pub mod event_writer;
pub mod events;
pub mod log;
pub mod log_checks;
pub mod login_failures;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod streams;
pub mod text_index;
pub mod tokens;
pub mod users;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// A connection to the configured database. Everything outside `db/` sees only
/// this type: the backend's own connection, and what every connection to the
/// same database in this process shares ([`Database`]).
pub struct DbConn {
    conn: AnyConnection,
    database: Database,
}

/// The backend's own connection: what diesel runs queries on.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A PostgreSQL server, chosen by a `postgres://` or `postgresql://` URL.
    Postgres(diesel::PgConnection),
    /// An SQLite file, chosen by `sqlite://PATH` or a plain path.
    Sqlite(diesel::SqliteConnection),
}

impl DbConn {
    /// The backend's own connection, for the statements one backend writes its
    /// own way (and for tests that look beneath the application).
    pub fn backend(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// The database this connection belongs to.
    pub fn database(&self) -> &Database {
        &self.database
    }
}

impl SimpleConnection for DbConn {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        self.conn.batch_execute(query)
    }
}

/// Runs `$body` with `$c` bound to the backend's own connection type, once per backend.
macro_rules! with_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $crate::db::DbConn::backend($conn) {
            $crate::db::AnyConnection::Postgres($c) => $body,
            $crate::db::AnyConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use with_backend;

/// How long a request waits for a pooled connection before it is answered
/// 503. A database that is down is noticed within this: the pool tries to
/// connect again meanwhile, and a PostgreSQL connection attempt gives up
/// after [`PG_CONNECTION_OPTIONS`]' `connect_timeout`.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(2);

/// libpq options added to a PostgreSQL URL that does not set them: give up
/// connecting after 2 s, and find a connection whose server went silent (a
/// host gone, a network cut) within seconds by TCP keepalives and the time
/// sent data may stay unacknowledged, not after the system's two hours.
pub const PG_CONNECTION_OPTIONS: &[(&str, &str)] = &[
    ("connect_timeout", "2"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "1"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "5000"),
];

/// `raw` with the [`PG_CONNECTION_OPTIONS`] it does not set itself.
fn with_connection_options(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_owned();
    };
    let set: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in PG_CONNECTION_OPTIONS {
            if !set.iter().any(|k| k == key) {
                pairs.append_pair(key, value);
            }
        }
    }
    url.to_string()
}

/// One database as this process uses it: where it is, the queue of this
/// process's SQLite writers, and whether stored events are echoed on stdout.
/// Each pool, and each connection opened outside one, belongs to one
/// `Database`; two databases in one process (tests, a tool beside a server)
/// share nothing. Cloning it is cheap and keeps the same queue.
#[derive(Clone)]
pub struct Database(std::sync::Arc<Shared>);

struct Shared {
    url: DatabaseUrl,
    writers: WriterQueue,
    echo_stored_events: bool,
    /// What the free-text index has shown to be common (see `events::CommonTerms`).
    common_terms: events::CommonTerms,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.0.url)
            .field("echo_stored_events", &self.0.echo_stored_events)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The database at `url`; nothing is opened yet.
    pub fn new(url: DatabaseUrl) -> Self {
        Self::with_echo(url, false)
    }

    /// The database at `url`, with stored events also printed on stdout, one
    /// line each, when `echo` is on (`serve --log-audit-json`; the audit
    /// store prints them, see [`DbConn::echoes_stored_events`]).
    pub fn with_echo(url: DatabaseUrl, echo: bool) -> Self {
        Self(std::sync::Arc::new(Shared {
            url,
            writers: WriterQueue::default(),
            echo_stored_events: echo,
            common_terms: events::CommonTerms::default(),
        }))
    }

    /// Where the data lives.
    pub fn url(&self) -> &DatabaseUrl {
        &self.0.url
    }

    /// Connects, runs pending migrations and returns a pool.
    ///
    /// Fails with one clear message when the URL is wrong or the database does not answer.
    pub fn pool(&self) -> Result<Pool, DbError> {
        let manager = Manager {
            database: self.clone(),
        };
        // One connection first: its error is clearer than the pool's time-out.
        let mut first = self.connect_one()?;
        run_migrations(&mut first)?;
        drop(first);
        let max_size = if self.url().is_postgres() { 16 } else { 8 };
        r2d2::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(CONNECTION_WAIT)
            .error_handler(Box::new(PoolErrorLog))
            .build(manager)
            .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// Opens one connection outside any pool (the event writer, CLI commands, tests).
    pub fn connect_one(&self) -> Result<DbConn, DbError> {
        Ok(DbConn {
            conn: open(self.url())?,
            database: self.clone(),
        })
    }

    /// Opens one connection that cannot write (`auditdesk verify`): a SQLite
    /// file is opened read-only, with nothing made beside it (no free-text
    /// index file, no table), so checking a copy kept as evidence leaves it as
    /// it was; a PostgreSQL session's transactions are read-only.
    pub fn connect_read_only(&self) -> Result<DbConn, DbError> {
        Ok(DbConn {
            conn: open_read_only(self.url())?,
            database: self.clone(),
        })
    }
}

impl DbConn {
    /// Whether events stored through this connection are also printed on
    /// stdout (see [`Database::with_echo`]).
    pub fn echoes_stored_events(&self) -> bool {
        self.database.0.echo_stored_events
    }
}

/// A pool of connections to the configured database.
pub type Pool = r2d2::Pool<Manager>;
/// A connection checked out of the [`Pool`].
pub type PooledConn = r2d2::PooledConnection<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite writer waits for the write lock before giving up, in ms:
/// SQLite's busy_timeout, and the wait for this process's own writer lock.
const BUSY_TIMEOUT_MS: u64 = 15_000;

/// Set on every SQLite connection, with `busy_timeout` = [`BUSY_TIMEOUT_MS`].
/// - WAL: readers never wait for the writer.
/// - synchronous=FULL: an acknowledged event survives a power cut, not only a crash.
/// - busy_timeout: a writer waits its turn instead of failing with "database is locked".
/// - cache_size: 2 MiB a connection (SQLite's default, said here so that it is a
///   decision). The file's pages are cached once, by the operating system, not
///   once more in each of the pool's connections: with 32 MiB each the server held
///   723–789 MB after `bench/page.sh sqlite 1000000`, with 2 MiB 117 MB, and the
///   page cases served the same (24,438 req/s summed over the nine against
///   24,581 and 26,120; bench/README.md, "Sixth sitting"). A scan of the whole
///   table (free text, until it has an index) reads through the operating system
///   and is ~25% slower. Writers that need more set more: the event writer
///   ([`event_writer`]) and `auditdesk import` ([`prepare_bulk_load`]). mmap is
///   no better: each connection maps the file anew, and the server's RSS counted
///   698 MB of mapped pages (peak 3.8 GB).
/// - wal_autocheckpoint: the WAL is copied back into the database file once it
///   holds 100,000 pages (~400 MiB) rather than 10,000: an index page that many
///   commits change is copied back once, not once every few commits (a bulk
///   insert of 150,000 generated events in batches of 1,000 went from 9,800 to
///   15,400 events/s).
/// - journal_size_limit: once a checkpoint has copied everything back, the next
///   write starts the WAL over from its beginning and shrinks the file to at most
///   512 MiB, above the ~400 MiB one checkpoint interval fills: under sustained
///   writes the file is reused, not cut and grown again (shrinking it to 64 MiB
///   each time cost 15% of ingest throughput: the kernel dropped and allocated
///   its pages again). A WAL that grew further (a checkpoint held back by a long
///   reader) is cut back to 512 MiB; the event writer empties it when the
///   instance goes quiet ([`event_writer`]).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
PRAGMA cache_size = -2048;
PRAGMA wal_autocheckpoint = 100000;
PRAGMA journal_size_limit = 536870912;";

/// Set on every PostgreSQL connection (see [`Manager::connect`]).
const POSTGRES_SETTINGS: &str = "SET plan_cache_mode = force_custom_plan;";

/// Set on every pooled PostgreSQL connection: a pooled transaction never
/// waits on anything but the database, so one left idle for 30 s belongs to a
/// process that froze (stopped, swapped out, hung); PostgreSQL then ends its
/// session, and the locks it held, such as the log's next position that every
/// ingest waits for, are free again. An export's own connection
/// ([`Database::connect_one`]) waits on its reader, and is not given this.
const POOLED_POSTGRES_SETTINGS: &str = "SET idle_in_transaction_session_timeout = '30s';";

/// Where the data lives, parsed from `--database-url` / `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (may hold a password: never printed whole).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses the URL forms of CONTRACT.md: `postgres://`, `postgresql://`,
    /// `sqlite://PATH`, or a plain path. Any other `scheme://` is refused.
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DbError::Config("the database URL is empty".into()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DbError::Config(
                    "the sqlite:// database URL has no path (use sqlite://auditdesk.db or sqlite:///abs/path.db)".into(),
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(DbError::Config(format!(
                "unsupported database URL scheme '{scheme}://' (use postgres://, postgresql://, sqlite://PATH or a file path)"
            )));
        }
        Ok(Self::Sqlite(PathBuf::from(raw)))
    }

    /// Whether this URL selects PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// Shows the URL with any password replaced by `***`.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    write!(f, "{parsed}")
                }
                Ok(parsed) => write!(f, "{parsed}"),
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL or setup is wrong; the message says how.
    #[error("{0}")]
    Config(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// No connection became free in time (the database may be down).
    #[error("no database connection available: {0}")]
    Pool(String),
    /// A write could not be taken now; the message says what became of it.
    #[error("{0}")]
    Unavailable(String),
    /// The connection broke before a commit was asked for: the database
    /// rolls back whatever the transaction had written.
    #[error("the connection to the database was lost: {0}")]
    Lost(String),
    /// The connection broke while the database was committing: the write may
    /// or may not have been stored, and only the database knows which.
    #[error("the connection to the database was lost during the commit: {0}")]
    OutcomeUnknown(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(diesel::result::Error),
}

impl DbError {
    /// Whether the database is away or busy rather than the request wrong or
    /// the code broken: a 503 to retry, on the pages and the API alike.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Pool(_)
                | Self::Connect(_)
                | Self::Unavailable(_)
                | Self::Lost(_)
                | Self::OutcomeUnknown(_)
        )
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        if is_lock_timeout(&e) {
            // A transaction that could not take the lock is rolled back whole.
            return Self::Unavailable(format!(
                "the database is busy: another writer holds its lock ({}); nothing of this change was written, try again",
                one_line(&e.to_string())
            ));
        }
        if is_connection_lost(&e) {
            return Self::Lost(one_line(&e.to_string()));
        }
        Self::Query(e)
    }
}

/// Whether the connection itself failed (the server went away, the network
/// broke) rather than the statement: libpq reports a connection gone bad, or
/// one that could not even send the command.
fn is_connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        e,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | Error::BrokenTransactionManager
    )
}

/// Whether SQLite gave up waiting for the write lock (after `busy_timeout`, or
/// this process's own wait for its turn, [`WriterQueue`]): busy, not broken.
fn is_lock_timeout(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message().starts_with("database is locked"))
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Pool(e.to_string())
    }
}

/// Opens connections for the pool, each set up for its backend.
#[derive(Debug, Clone)]
pub struct Manager {
    database: Database,
}

/// Opens a connection to `url` and sets it up for its backend.
/// Turns SQLite's memory statistics off, once, before its first connection
/// in the process (later it cannot be: SQLite is then initialised, and the
/// call changes nothing). With them on, every allocation of every connection
/// takes one lock of the whole process to count itself: the free-text
/// index's queries allocate much, and the pages' connections queued on that
/// lock (on 1M events under `wrk -t2 -c16`, the API's `q=docs` answered in
/// 14.8 ms p50 with them, 11.1 ms without; `q=ttl` 10.3 and 7.4; the
/// unfiltered page 4.1 and 3.7). Nothing here reads the statistics.
fn without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before any other SQLite function of
        // this process has initialised the library, from one thread (Once);
        // SQLITE_CONFIG_MEMSTATUS takes one int. If SQLite was initialised
        // already, it returns SQLITE_MISUSE and changes nothing.
        let _ = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            )
        };
    });
}

fn open(url: &DatabaseUrl) -> Result<AnyConnection, DbError> {
    match url {
        DatabaseUrl::Postgres(raw) => {
            // The error names the URL as `Display` shows it: without its password.
            let mut conn =
                diesel::PgConnection::establish(&with_connection_options(raw)).map_err(|e| {
                    DbError::Connect(format!(
                        "PostgreSQL at {}: {}",
                        url,
                        one_line(&e.to_string())
                    ))
                })?;
            // Plan each execution with its values. A generic plan cached while
            // the events table was small (a sequential scan) stayed in use as
            // it grew: an import's id lookups went from milliseconds to seconds.
            conn.batch_execute(POSTGRES_SETTINGS)?;
            Ok(AnyConnection::Postgres(conn))
        }
        DatabaseUrl::Sqlite(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir
                && !dir.is_dir()
            {
                return Err(DbError::Connect(format!(
                    "SQLite database directory '{}' does not exist",
                    dir.display()
                )));
            }
            let path_str = utf8_path(path)?;
            without_memory_statistics();
            let mut conn = diesel::SqliteConnection::establish(path_str).map_err(|e| {
                DbError::Connect(format!(
                    "SQLite file '{}': {}",
                    path.display(),
                    one_line(&e.to_string())
                ))
            })?;
            let failed = |e: DbError| match e {
                DbError::Query(e) => DbError::Connect(format!(
                    "SQLite file '{}': {}",
                    path.display(),
                    one_line(&e.to_string())
                )),
                e => e,
            };
            conn.batch_execute(&format!(
                "{SQLITE_PRAGMAS}\nPRAGMA busy_timeout = {BUSY_TIMEOUT_MS};\n{WRITE_TURN_TABLE}"
            ))
            .map_err(|e| failed(e.into()))?;
            text_index::attach(&mut conn, path).map_err(failed)?;
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

/// Opens a connection to `url` that cannot write (see [`Database::connect_read_only`]).
fn open_read_only(url: &DatabaseUrl) -> Result<AnyConnection, DbError> {
    match url {
        DatabaseUrl::Postgres(_) => {
            let mut conn = open(url)?;
            conn.batch_execute("SET default_transaction_read_only = on;")?;
            Ok(conn)
        }
        DatabaseUrl::Sqlite(path) => {
            let path_str = utf8_path(path)?;
            let failed = |e: &dyn std::fmt::Display| {
                DbError::Connect(format!(
                    "SQLite file '{}' (read-only): {}",
                    path.display(),
                    one_line(&e.to_string())
                ))
            };
            let mut conn = diesel::SqliteConnection::establish(&read_only_uri(path_str))
                .map_err(|e| failed(&e))?;
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA query_only = ON;"
            ))
            .map_err(|e| failed(&e))?;
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

/// An SQLite URI that opens the file at `path` read-only. The path's bytes
/// other than letters, digits, `/` and `-._~` are percent-encoded (a `?`, `#`
/// or `%` in a file name would otherwise be read as the URI's own).
fn read_only_uri(path: &str) -> String {
    let mut uri = String::from("file:");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// A SQLite file's path as SQLite takes it, or why it cannot be given.
pub(super) fn utf8_path(path: &std::path::Path) -> Result<&str, DbError> {
    path.to_str().ok_or_else(|| {
        DbError::Config(format!(
            "SQLite path '{}' is not valid UTF-8",
            path.display()
        ))
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        let mut conn = self.database.connect_one()?;
        if let AnyConnection::Postgres(c) = &mut conn.conn {
            c.batch_execute(POOLED_POSTGRES_SETTINGS)?;
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        r2d2::R2D2Connection::is_broken(&mut conn.conn)
    }
}

/// Collects pool errors into the log instead of r2d2's default of printing to stderr.
#[derive(Debug)]
struct PoolErrorLog;

impl r2d2::HandleError<DbError> for PoolErrorLog {
    fn handle_error(&self, error: DbError) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// Opens one connection to `url` outside any pool (CLI commands, tests), as a
/// [`Database`] of its own.
pub fn connect_one(url: &DatabaseUrl) -> Result<DbConn, DbError> {
    Database::new(url.clone()).connect_one()
}

/// Readies one connection for a long bulk load (`auditdesk import`). On SQLite the
/// page cache grows to 64 MiB, so the pages of the events table's id index stay in
/// memory from one batch to the next instead of being read back through the
/// operating system for every insert. Nothing changes on PostgreSQL,
/// whose shared buffers belong to the server.
pub fn prepare_bulk_load(conn: &mut DbConn) -> Result<(), DbError> {
    if let AnyConnection::Sqlite(c) = conn.backend() {
        c.batch_execute("PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;")
            .map_err(DbError::from)?;
    }
    Ok(())
}

/// Brings the schema up to date; returns the versions applied.
pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    /// The advisory lock's key: "ADMIGR" in ASCII.
    const KEY: i64 = 0x0000_4144_4D49_4752;
    let applied = match conn.backend() {
        // Instances started together would each apply the same migration:
        // one at a time, the others then find nothing pending.
        AnyConnection::Postgres(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({KEY})")).execute(c)?;
            let applied = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({KEY})")).execute(c)?;
            applied
        }
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    let applied = applied.map_err(|e| DbError::Migration(e.to_string()))?;
    // An import killed while its indexes were dropped left them missing.
    events::ensure_secondary_indexes(conn)?;
    // Before any search: SQLite's free-text index must be this database's.
    if text_index::check_belongs(conn)? {
        tracing::warn!(
            "the free-text index belonged to another database (a restored or copied file): it starts over"
        );
    }
    Ok(applied)
}

/// Reverts every migration (used by the migration round-trip test).
pub fn revert_all_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    let reverted = match conn.backend() {
        AnyConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(versions),
        AnyConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    reverted.map_err(|e| DbError::Migration(e.to_string()))
}

fn versions(v: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}

/// Answers whether the database responds (for `/readyz`).
pub fn ping(conn: &mut DbConn) -> Result<(), DbError> {
    conn.batch_execute("SELECT 1").map_err(DbError::from)
}

/// This process's SQLite writers to one database, queued for their turn (see
/// [`write_transaction`]).
#[derive(Default)]
struct WriterQueue {
    /// Held by the write transaction under way.
    lock: std::sync::Mutex<()>,
    /// Writers waiting for [`WriterQueue::lock`].
    waiting: std::sync::atomic::AtomicUsize,
}

/// How long a writer waits for its turn, in this process as in SQLite's busy_timeout.
const SQLITE_WRITER_WAIT: Duration = Duration::from_millis(BUSY_TIMEOUT_MS);

impl WriterQueue {
    /// Waits for the lock, at most [`SQLITE_WRITER_WAIT`] (a stuck writer must
    /// not hang every other one, and with them the pool).
    fn turn(&self) -> Result<std::sync::MutexGuard<'_, ()>, diesel::result::Error> {
        use std::sync::TryLockError;
        use std::sync::atomic::Ordering;
        if let Ok(turn) = self.lock.try_lock() {
            return Ok(turn);
        }
        /// Counts this writer in `waiting` until it has its turn or gives up.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        let deadline = std::time::Instant::now() + SQLITE_WRITER_WAIT;
        loop {
            match self.lock.try_lock() {
                Ok(turn) => return Ok(turn),
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::Unknown,
                        Box::new(format!(
                            "database is locked: another write did not finish within {} s",
                            BUSY_TIMEOUT_MS / 1000
                        )),
                    ));
                }
            }
        }
    }

    /// Gives writers already waiting (at most 50 ms) the chance to go first,
    /// since the lock itself is not fair.
    fn let_waiting_in(&self) {
        use std::sync::atomic::Ordering;
        let until = std::time::Instant::now() + Duration::from_millis(50);
        while self.waiting.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// An empty table of every SQLite database, made when a connection opens:
/// deleting nothing from it is how a write transaction takes the database's
/// write lock first ([`SQLITE_TAKE_WRITE_LOCK`]).
const WRITE_TURN_TABLE: &str = "CREATE TABLE IF NOT EXISTS main.write_turn (never INTEGER);";

/// A write transaction's first statement on SQLite: it takes the database's write lock
/// up front, so that concurrent writers queue on busy_timeout instead of one of
/// them failing with "database is locked" when its read lock cannot be
/// upgraded. Not `BEGIN IMMEDIATE`, which takes the write lock of every
/// attached file, the free-text index's too ([`text_index`]): the writers of
/// events would then wait for the index's writer, and it for them. A DELETE
/// that deletes nothing takes the lock of its own file only (and the busy
/// handler waits for it as for `BEGIN IMMEDIATE`, nothing being read yet).
const SQLITE_TAKE_WRITE_LOCK: &str = "DELETE FROM main.write_turn WHERE 0";

/// Runs `f` in a write transaction. On SQLite it takes the database's write
/// lock up front ([`SQLITE_TAKE_WRITE_LOCK`]).
pub fn write_transaction<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    let outermost_sqlite = match &mut conn.conn {
        AnyConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()
            .map_err(DbError::from)?
            .is_none(),
        AnyConnection::Postgres(_) => false,
    };
    // Nested calls (a user change that records its event) become savepoints.
    if outermost_sqlite {
        // SQLite has one writer at a time anyway; queueing here lets the next
        // writer in within a millisecond of the lock being free, where SQLite's
        // busy handler polls with sleeps of up to 100 ms (measured: batch ingest
        // p99 2.5 s, a core idle). Other processes still meet busy_timeout.
        let database = conn.database.clone();
        let _one_writer = database.0.writers.turn().map_err(DbError::from)?;
        return transaction(conn, Some("BEGIN"), |conn| {
            conn.batch_execute(SQLITE_TAKE_WRITE_LOCK)
                .map_err(DbError::from)?;
            f(conn)
        });
    }
    transaction(conn, None, f)
}

/// diesel's `Connection::transaction`, with `f` given the whole [`DbConn`] and
/// the outermost transaction begun by `begin` when given.
///
/// A commit whose answer is lost with the connection is
/// [`DbError::OutcomeUnknown`]: the server may have committed before the
/// connection broke, so "nothing was stored" would be a guess. Any other
/// failure leaves nothing written (the server rolls back a transaction whose
/// connection is gone).
fn transaction<T, E>(
    conn: &mut DbConn,
    begin: Option<&str>,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    type Manager = <AnyConnection as Connection>::TransactionManager;
    match begin {
        Some(sql) => {
            with_backend!(conn, c => AnsiTransactionManager::begin_transaction_sql(c, sql))
                .map_err(DbError::from)?
        }
        None => Manager::begin_transaction(&mut conn.conn).map_err(DbError::from)?,
    }
    match f(conn) {
        Ok(value) => {
            // Only the outermost COMMIT can store anything; a nested one
            // releases a savepoint.
            let outermost = with_backend!(conn, c => {
                AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
            })
            .ok()
            .flatten()
            .is_some_and(|depth| depth.get() == 1);
            Manager::commit_transaction(&mut conn.conn).map_err(|e| {
                if outermost {
                    commit_failed(conn, e)
                } else {
                    DbError::from(e)
                }
            })?;
            Ok(value)
        }
        Err(e) => {
            // The caller's error is the one worth reporting; a failed rollback
            // leaves the connection marked broken and the pool discards it.
            let _ = Manager::rollback_transaction(&mut conn.conn);
            Err(e)
        }
    }
}

/// What a failed COMMIT means for what was written. SQLite runs in this
/// process and its failed commit stored nothing; PostgreSQL's answer can be
/// lost on the way back.
fn commit_failed(conn: &mut DbConn, e: diesel::result::Error) -> DbError {
    let remote = matches!(conn.conn, AnyConnection::Postgres(_));
    let lost = remote
        && (is_connection_lost(&e)
            || matches!(e, diesel::result::Error::RollbackErrorOnCommit { .. })
            || r2d2::R2D2Connection::is_broken(&mut conn.conn));
    if lost {
        DbError::OutcomeUnknown(one_line(&e.to_string()))
    } else {
        DbError::from(e)
    }
}

/// One write statement. On SQLite it is queued like [`write_transaction`]s: a
/// lone UPDATE relying on busy_timeout alone would wait behind a busy event
/// writer with SQLite's sleeps of up to 100 ms between tries, and could time
/// out. PostgreSQL takes concurrent writers: the statement runs as it is,
/// without the two round trips of a transaction around it.
pub(crate) fn write_statement<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, diesel::result::Error>,
) -> Result<T, DbError> {
    match conn.conn {
        AnyConnection::Postgres(_) => Ok(f(conn)?),
        AnyConnection::Sqlite(_) => write_transaction(conn, |c| f(c).map_err(DbError::from)),
    }
}

/// Called by a writer that writes back to back (the event writer) before it
/// takes the lock again: gives this database's writers already waiting the
/// chance to go first.
pub(crate) fn let_waiting_writers_in(conn: &DbConn) {
    conn.database.0.writers.let_waiting_in();
}

/// Whether PostgreSQL aborted the transaction to break a deadlock (two
/// transactions inserting the same new ids in different orders): the other one
/// goes on, and this one can be written again. diesel does not pass on the
/// SQLSTATE (40P01), so this reads PostgreSQL's message, which is English unless
/// the server's `lc_messages` says otherwise (then the request stays a 500).
pub fn is_deadlock(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message().starts_with("deadlock detected"))
}

/// Whether a diesel error is a unique-constraint violation.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn postgres_urls_get_the_time_limits_they_do_not_set() {
        let url =
            with_connection_options("postgres://u:p@db.internal:5432/audit?connect_timeout=9");
        let parsed = url::Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let value = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            value("connect_timeout"),
            Some("9"),
            "the URL's own value stands"
        );
        assert_eq!(
            pairs.iter().filter(|(k, _)| k == "connect_timeout").count(),
            1
        );
        assert_eq!(value("tcp_user_timeout"), Some("5000"));
        assert_eq!(value("keepalives_idle"), Some("5"));
        assert_eq!(parsed.password(), Some("p"));
        assert_eq!(parsed.path(), "/audit");
    }

    /// Each database has its own queue of writers: a write to one file goes
    /// ahead while another file's write transaction is open in this process
    /// (with one queue for the process it waited 15 s and failed as busy).
    #[test]
    fn two_databases_in_one_process_do_not_share_a_writer_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = Database::new(DatabaseUrl::Sqlite(dir.path().join("first.db")));
        let second = Database::new(DatabaseUrl::Sqlite(dir.path().join("second.db")));
        let mut held = first.connect_one().unwrap();
        let (holding, held_now) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            write_transaction(&mut held, |c| {
                c.batch_execute("CREATE TABLE t (x INTEGER)")?;
                holding.send(()).unwrap();
                released.recv().unwrap();
                Ok::<_, DbError>(())
            })
        });
        held_now.recv().unwrap();
        let mut other = second.connect_one().unwrap();
        let written = write_transaction(&mut other, |c| {
            c.batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
                .map_err(DbError::from)
        });
        release.send(()).unwrap();
        holder.join().unwrap().unwrap();
        written.expect("the second database's write does not wait for the first's");
    }

    /// Connections of one database share its queue: a second writer waits in
    /// it for the first to commit, then goes ahead (it is not refused as busy).
    #[test]
    fn writers_to_one_database_take_turns() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let database = Database::new(DatabaseUrl::Sqlite(dir.path().join("one.db")));
        database
            .connect_one()
            .unwrap()
            .batch_execute("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let mut held = database.connect_one().unwrap();
        let queue = database.clone();
        let (holding, held_now) = mpsc::channel();
        let holder = std::thread::spawn(move || {
            write_transaction(&mut held, |c| {
                c.batch_execute("INSERT INTO t VALUES (1)")?;
                holding.send(()).unwrap();
                // Commits once the other writer is seen waiting (or gives up).
                let until = std::time::Instant::now() + Duration::from_secs(10);
                while queue.0.writers.waiting.load(Ordering::Acquire) == 0
                    && std::time::Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok::<_, DbError>(queue.0.writers.waiting.load(Ordering::Acquire))
            })
        });
        held_now.recv().unwrap();
        let mut second = database.connect_one().unwrap();
        write_transaction(&mut second, |c| {
            c.batch_execute("INSERT INTO t VALUES (2)")
                .map_err(DbError::from)
        })
        .expect("the second writer waits its turn");
        let waiting_seen = holder.join().unwrap().unwrap();
        assert_eq!(waiting_seen, 1, "the second writer queued behind the first");
    }
}
