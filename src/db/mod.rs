//! The database layer: the only module that names a backend.
//!
//! One connection type, [`DbConn`], covers SQLite (the embedded default) and
//! PostgreSQL (for scale); which one is chosen by the URL scheme (see
//! [`DatabaseUrl`]). Queries are written once with diesel's query builder and run
//! on whichever backend the connection holds through [`with_backend!`], which
//! expands the same code for each backend: the few statements that really differ
//! (upserts, PRAGMAs, how a write transaction begins) stay readable in one place.

pub mod event_writer;
pub mod events;
pub mod login_failures;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod users;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// A connection to either backend. Everything outside `db/` sees only this type.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// A PostgreSQL server, chosen by a `postgres://` or `postgresql://` URL.
    Postgres(diesel::PgConnection),
    /// An SQLite file, chosen by `sqlite://PATH` or a plain path.
    Sqlite(diesel::SqliteConnection),
}

/// Runs `$body` with `$c` bound to the backend's own connection type, once per backend.
macro_rules! with_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use with_backend;

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
/// - cache_size: 32 MiB a connection (SQLite's default is 2 MiB), filled only as
///   pages are used; with less, every insert into the events table's indexes read
///   its pages back through the operating system (ingest was kernel-bound).
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
PRAGMA cache_size = -32768;
PRAGMA wal_autocheckpoint = 100000;
PRAGMA journal_size_limit = 536870912;";

/// Set on every PostgreSQL connection (see [`Manager::connect`]).
const POSTGRES_SETTINGS: &str = "SET plan_cache_mode = force_custom_plan;";

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
            Self::Pool(_) | Self::Connect(_) | Self::Unavailable(_)
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
        Self::Query(e)
    }
}

/// Whether SQLite gave up waiting for the write lock (after `busy_timeout`, or
/// this process's own wait for [`SQLITE_WRITER`]): busy, not broken.
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
    url: DatabaseUrl,
}

impl Manager {
    fn connect(&self) -> Result<DbConn, DbError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = diesel::PgConnection::establish(url).map_err(|e| {
                    DbError::Connect(format!(
                        "PostgreSQL at {}: {}",
                        self.url,
                        one_line(&e.to_string())
                    ))
                })?;
                // Plan each execution with its values. A generic plan cached while
                // the events table was small (a sequential scan) stayed in use as
                // it grew: an import's id lookups went from milliseconds to seconds.
                conn.batch_execute(POSTGRES_SETTINGS)?;
                Ok(DbConn::Postgres(conn))
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
                let path_str = path.to_str().ok_or_else(|| {
                    DbError::Config(format!(
                        "SQLite path '{}' is not valid UTF-8",
                        path.display()
                    ))
                })?;
                let mut conn = diesel::SqliteConnection::establish(path_str).map_err(|e| {
                    DbError::Connect(format!(
                        "SQLite file '{}': {}",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                })?;
                conn.batch_execute(&format!(
                    "{SQLITE_PRAGMAS}\nPRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
                ))
                .map_err(|e| {
                    DbError::Connect(format!(
                        "SQLite file '{}': {}",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                })?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        Manager::connect(self)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        r2d2::R2D2Connection::is_broken(conn)
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

/// Connects to the database, runs pending migrations and returns a pool.
///
/// Fails with one clear message when the URL is wrong or the database does not answer.
pub fn connect(url: &DatabaseUrl) -> Result<Pool, DbError> {
    let manager = Manager { url: url.clone() };
    // One connection first: its error is clearer than the pool's time-out.
    let mut first = manager.connect()?;
    run_migrations(&mut first)?;
    drop(first);
    let max_size = if url.is_postgres() { 16 } else { 8 };
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .error_handler(Box::new(PoolErrorLog))
        .build(manager)
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Opens one connection outside any pool (CLI commands, tests).
pub fn connect_one(url: &DatabaseUrl) -> Result<DbConn, DbError> {
    Manager { url: url.clone() }.connect()
}

/// Readies one connection for a long bulk load (`auditdesk import`). On SQLite the
/// page cache grows to 64 MiB, so the pages of the events table's id index stay in
/// memory from one batch to the next instead of being read back through the
/// operating system for every insert. Nothing changes on PostgreSQL,
/// whose shared buffers belong to the server.
pub fn prepare_bulk_load(conn: &mut DbConn) -> Result<(), DbError> {
    if let DbConn::Sqlite(c) = conn {
        c.batch_execute("PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;")
            .map_err(DbError::from)?;
    }
    Ok(())
}

/// Brings the schema up to date; returns the versions applied.
pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    let applied = match conn {
        DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    let applied = applied.map_err(|e| DbError::Migration(e.to_string()))?;
    // An import killed while its indexes were dropped left them missing.
    events::ensure_secondary_indexes(conn)?;
    Ok(applied)
}

/// Reverts every migration (used by the migration round-trip test).
pub fn revert_all_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    let reverted = match conn {
        DbConn::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(versions),
        DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(versions),
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

/// Held by this process's SQLite write transactions (see [`write_transaction`]).
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long a writer waits for its turn, in this process as in SQLite's busy_timeout.
const SQLITE_WRITER_WAIT: Duration = Duration::from_millis(BUSY_TIMEOUT_MS);

/// Waits for this process's SQLite writer lock, at most [`SQLITE_WRITER_WAIT`]
/// (a stuck writer must not hang every other one, and with them the pool).
fn sqlite_writer_turn() -> Result<std::sync::MutexGuard<'static, ()>, diesel::result::Error> {
    use std::sync::TryLockError;
    use std::sync::atomic::Ordering;
    if let Ok(turn) = SQLITE_WRITER.try_lock() {
        return Ok(turn);
    }
    /// Counts this writer in [`WAITING_WRITERS`] until it has its turn or gives up.
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING_WRITERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    WAITING_WRITERS.fetch_add(1, Ordering::AcqRel);
    let _waiting = Waiting;
    let deadline = std::time::Instant::now() + SQLITE_WRITER_WAIT;
    loop {
        match SQLITE_WRITER.try_lock() {
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

/// Runs `f` in a write transaction. On SQLite it begins IMMEDIATE, taking the write
/// lock up front, so that concurrent writers queue on busy_timeout instead of one of
/// them failing with "database is locked" when its read lock cannot be upgraded.
pub fn write_transaction<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let outermost_sqlite = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_none(),
        DbConn::Postgres(_) => false,
    };
    // Nested calls (a user change that records its event) become savepoints.
    if outermost_sqlite {
        // SQLite has one writer at a time anyway; queueing here lets the next
        // writer in within a millisecond of the lock being free, where SQLite's
        // busy handler polls with sleeps of up to 100 ms (measured: batch ingest
        // p99 2.5 s, a core idle). Other processes still meet busy_timeout.
        let _one_writer = sqlite_writer_turn()?;
        let DbConn::Sqlite(c) = conn else {
            unreachable!("checked just above")
        };
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
        let outcome = f(conn);
        let DbConn::Sqlite(c) = conn else {
            unreachable!("the connection cannot change backend inside a transaction")
        };
        return match outcome {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(c)?;
                Ok(value)
            }
            Err(e) => {
                // The caller's error is the one worth reporting; a failed rollback
                // leaves the connection marked broken and the pool discards it.
                let _ = AnsiTransactionManager::rollback_transaction(c);
                Err(e)
            }
        };
    }
    conn.transaction(f)
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
    match conn {
        DbConn::Postgres(_) => Ok(f(conn)?),
        DbConn::Sqlite(_) => write_transaction(conn, |c| f(c).map_err(DbError::from)),
    }
}

/// Writers of this process waiting for [`SQLITE_WRITER`].
static WAITING_WRITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Called by a writer that writes back to back (the event writer) before it
/// takes the lock again: gives writers already waiting (at most 50 ms) the
/// chance to go first, since the lock itself is not fair.
pub(crate) fn let_waiting_writers_in() {
    use std::sync::atomic::Ordering;
    let until = std::time::Instant::now() + Duration::from_millis(50);
    while WAITING_WRITERS.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
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
