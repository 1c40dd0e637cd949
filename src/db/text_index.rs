//! SQLite's free-text index, kept a little behind the log by its own thread.
//!
//! The FTS5 trigram index of the events' search text costs some 50 µs an
//! event to write, as much as the rest of storing it: written in the event's
//! own transaction (the first design), it halved batch ingest. It now lives in
//! a file of its own next to the database (`<database>.search`, attached to
//! every connection as `search`), with the id of the last event it holds
//! (`search.text_indexed`). Each SQLite file has its own write lock, so the
//! thread that writes the index ([`index_more`]) never holds up a writer of
//! events, and events are stored at the speed they were before the index.
//!
//! Nothing is found less for it: a search tests every event above that id
//! with `instr`, as it tests the index's candidates (see `events::TextPlan`),
//! so an event is found from the moment it is stored. Searches pay for the
//! part not indexed yet, which is nothing once the thread has caught up.
//!
//! The file holds nothing that is not in the database: deleted, it is made
//! again empty and filled from the first event. Given the wrong database's
//! index (a database restored from a backup, the file copied from elsewhere),
//! [`check_belongs`] finds that its last event is not this database's, and
//! starts it over.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::OptionalExtension;
use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::{AnyConnection, Database, DbConn, DbError};

/// The name the index's file is attached under on every SQLite connection.
pub const SCHEMA: &str = "search";

/// The index's file: the database's path with `.search` added.
pub fn path_of(database: &Path) -> std::path::PathBuf {
    with_suffix(database, ".search")
}

/// `path` with `tail` added to its file name.
fn with_suffix(path: &Path, tail: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(tail);
    name.into()
}

/// Attaches the index's file to a new SQLite connection and creates what it
/// holds if it is new (a statement that finds its table already there takes
/// no lock). Its own WAL; `synchronous = NORMAL`: a power cut may lose the
/// index's last transactions, and its mark goes back with them (the events
/// are indexed again). Its WAL is cut back to 64 MiB once copied back.
fn attach_sql(database: &Path) -> Result<String, DbError> {
    let path = path_of(database);
    let path = super::utf8_path(&path)?.replace('\'', "''");
    Ok(format!(
        "ATTACH DATABASE '{path}' AS {SCHEMA};
PRAGMA {SCHEMA}.journal_mode = WAL;
PRAGMA {SCHEMA}.synchronous = NORMAL;
PRAGMA {SCHEMA}.journal_size_limit = 67108864;
CREATE VIRTUAL TABLE IF NOT EXISTS {SCHEMA}.events_text USING fts5(
    search_doc,
    content = '',
    tokenize = 'trigram case_sensitive 1',
    detail = none
);
CREATE VIRTUAL TABLE IF NOT EXISTS {SCHEMA}.events_text_vocab USING fts5vocab(events_text, instance);
CREATE TABLE IF NOT EXISTS {SCHEMA}.text_indexed (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    through_id INTEGER NOT NULL,
    through_hash TEXT
);"
    ))
}

/// Attaches the index's file to a new SQLite connection ([`attach_sql`]). A
/// file there that SQLite cannot read as a database (overwritten, its first
/// page damaged) is moved aside, named `<database>.search.damaged-<UTC time>`
/// (its WAL with it), and a new index is made in its place, filled again from
/// the first event: a damaged index must not keep the server from starting,
/// and searches are right meanwhile (they test the events not indexed yet).
pub(super) fn attach(c: &mut diesel::SqliteConnection, database: &Path) -> Result<(), DbError> {
    let sql = attach_sql(database)?;
    match c.batch_execute(&sql) {
        Err(e) if is_damaged(&e) => {}
        attached => return Ok(attached?),
    }
    /// One connection of this process at a time moves a damaged index aside,
    /// so that none moves away the new one another has just made.
    static SETTING_ASIDE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SETTING_ASIDE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let detach = format!("DETACH DATABASE {SCHEMA}");
    let _ = c.batch_execute(&detach);
    let damage = match c.batch_execute(&sql) {
        Err(e) if is_damaged(&e) => e,
        attached => return Ok(attached?),
    };
    let _ = c.batch_execute(&detach);
    let aside = set_aside(database)?;
    tracing::warn!(
        damage = %damage,
        "the free-text index {} could not be read: moved to {}; a new one is filled from the first event",
        path_of(database).display(),
        aside.display()
    );
    Ok(c.batch_execute(&sql)?)
}

/// Whether SQLite found a file that is not a database, or a damaged one.
fn is_damaged(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info)
        if info.message().contains("file is not a database")
            || info.message().contains("database disk image is malformed"))
}

/// Renames the index's file (and its WAL) to `<file>.damaged-<UTC time>`, and
/// removes its shared-memory file (it describes the old WAL): where it went.
fn set_aside(database: &Path) -> Result<std::path::PathBuf, DbError> {
    let file = path_of(database);
    let aside = with_suffix(
        &file,
        &chrono::Utc::now()
            .format(".damaged-%Y%m%dT%H%M%S%.3fZ")
            .to_string(),
    );
    let failed = |what: &Path, e: std::io::Error| {
        DbError::Connect(format!(
            "the free-text index {} cannot be read, and moving {} aside failed: {e}",
            file.display(),
            what.display()
        ))
    };
    std::fs::rename(&file, &aside).map_err(|e| failed(&file, e))?;
    let wal = with_suffix(&file, "-wal");
    if wal.exists() {
        std::fs::rename(&wal, with_suffix(&aside, "-wal")).map_err(|e| failed(&wal, e))?;
    }
    let shm = with_suffix(&file, "-shm");
    match std::fs::remove_file(&shm) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(&shm, e)),
        _ => {}
    }
    Ok(aside)
}

#[derive(diesel::QueryableByName)]
struct Mark {
    #[diesel(sql_type = BigInt)]
    through_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    through_hash: Option<String>,
}

/// The index's mark (none yet: it is empty).
fn mark(c: &mut diesel::SqliteConnection) -> Result<Mark, DbError> {
    Ok(diesel::sql_query(format!(
        "SELECT through_id, through_hash FROM {SCHEMA}.text_indexed WHERE one = 1"
    ))
    .get_result::<Mark>(c)
    .optional()?
    .unwrap_or(Mark {
        through_id: 0,
        through_hash: None,
    }))
}

/// Moves the index's mark.
fn set_mark(
    c: &mut diesel::SqliteConnection,
    through_id: i64,
    through_hash: Option<&str>,
) -> Result<(), DbError> {
    diesel::sql_query(format!(
        "INSERT OR REPLACE INTO {SCHEMA}.text_indexed (one, through_id, through_hash) VALUES (1, ?, ?)"
    ))
    .bind::<BigInt, _>(through_id)
    .bind::<Nullable<Text>, _>(through_hash)
    .execute(c)?;
    Ok(())
}

/// The id of the last event the index holds: it holds every event up to it.
/// `None` on PostgreSQL, whose index is written with each event.
pub fn indexed_through(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    match conn.backend() {
        AnyConnection::Sqlite(c) => Ok(Some(indexed_through_sqlite(c)?)),
        AnyConnection::Postgres(_) => Ok(None),
    }
}

pub(super) fn indexed_through_sqlite(c: &mut diesel::SqliteConnection) -> Result<i64, DbError> {
    Ok(mark(c)?.through_id)
}

/// The content hash of the event with this id, if it is stored.
fn hash_of(c: &mut diesel::SqliteConnection, id: i64) -> Result<Option<String>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Hash {
        #[diesel(sql_type = Text)]
        content_hash: String,
    }
    Ok(
        diesel::sql_query("SELECT content_hash FROM main.events WHERE id = ?")
            .bind::<BigInt, _>(id)
            .get_result::<Hash>(c)
            .optional()?
            .map(|h| h.content_hash),
    )
}

/// Runs `f` in a transaction that writes the index's file and only reads the
/// database's: its first statement takes the index's write lock (waiting its
/// turn), so the database's stays free for the writers of events (`BEGIN
/// IMMEDIATE` would take every attached file's). Whatever fails (the lock,
/// `f`, the commit), the transaction is rolled back: the connection is never
/// left inside it (the index's thread would then fail every batch after).
fn index_transaction<T>(
    c: &mut diesel::SqliteConnection,
    f: impl FnOnce(&mut diesel::SqliteConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    c.batch_execute("BEGIN")?;
    let done = c
        .batch_execute(&format!("DELETE FROM {SCHEMA}.text_indexed WHERE 0"))
        .map_err(DbError::from)
        .and_then(|()| f(c))
        .and_then(|v| {
            c.batch_execute("COMMIT")?;
            Ok(v)
        });
    if done.is_err() {
        // Nothing to roll back if the commit went through after all.
        let _ = c.batch_execute("ROLLBACK");
    }
    done
}

/// Whether the index is this database's: the last event it holds is stored
/// here with the same content hash. If not, the index is emptied and starts
/// over from the first event (`true`). Run with the migrations, before any
/// search (at the server's start and by every command). An index that
/// belongs is found so without its write lock: a command does not wait for
/// the index's thread (a merge holds it for seconds).
pub fn check_belongs(conn: &mut DbConn) -> Result<bool, DbError> {
    let AnyConnection::Sqlite(c) = conn.backend() else {
        return Ok(false);
    };
    let belongs = |c: &mut diesel::SqliteConnection| -> Result<bool, DbError> {
        let m = mark(c)?;
        Ok(m.through_id == 0 || hash_of(c, m.through_id)? == m.through_hash)
    };
    if belongs(c)? {
        return Ok(false);
    }
    index_transaction(c, |c| {
        if belongs(c)? {
            return Ok(false);
        }
        c.batch_execute(&format!(
            "INSERT INTO {SCHEMA}.events_text (events_text) VALUES ('delete-all');"
        ))?;
        set_mark(c, 0, None)?;
        Ok(true)
    })
}

/// Adds up to `limit` events after the index's last to it, in one
/// transaction, and moves its mark to the last of them: how many. Stops
/// before an event whose search text is not filled in yet (stored before
/// free text existed; the server's start fills them in).
pub fn index_more(conn: &mut DbConn, limit: i64) -> Result<usize, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Next {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        search_doc: Option<String>,
        #[diesel(sql_type = Text)]
        content_hash: String,
    }
    let AnyConnection::Sqlite(c) = conn.backend() else {
        return Ok(0);
    };
    index_transaction(c, |c| {
        let from = mark(c)?.through_id;
        let next: Vec<Next> = diesel::sql_query(
            "SELECT id, search_doc, content_hash FROM main.events WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind::<BigInt, _>(from)
        .bind::<BigInt, _>(limit)
        .load(c)?;
        let mut last: Option<&Next> = None;
        for event in &next {
            let Some(doc) = &event.search_doc else {
                break;
            };
            diesel::sql_query(format!(
                "INSERT INTO {SCHEMA}.events_text (rowid, search_doc) VALUES (?, ?)"
            ))
            .bind::<BigInt, _>(event.id)
            .bind::<Text, _>(doc)
            .execute(c)?;
            last = Some(event);
        }
        let Some(last) = last else {
            return Ok(0);
        };
        set_mark(c, last.id, Some(&last.content_hash))?;
        Ok(next.iter().take_while(|e| e.search_doc.is_some()).count())
    })
}

/// Merges the index's segments into one. After a large catch-up they are
/// hundreds, and a rare term's lookup reads the doclists of each (5.5 ms
/// before, 2.2 ms after, on 1M events; the merge took 4.6 s).
pub fn optimize(conn: &mut DbConn) -> Result<(), DbError> {
    if let AnyConnection::Sqlite(c) = conn.backend() {
        c.batch_execute(&format!(
            "INSERT INTO {SCHEMA}.events_text (events_text) VALUES ('optimize');"
        ))?;
        // The merge rewrote the whole index into the WAL: copied back now,
        // and the file cut, if no search holds an older view of it (if one
        // does, SQLite's own checkpoints copy it back later).
        c.batch_execute(&format!("PRAGMA {SCHEMA}.wal_checkpoint(TRUNCATE);"))?;
    }
    Ok(())
}

/// Events added to the index in one transaction: enough that a transaction's
/// cost is spread thin, few enough that one holds the index's file for a
/// fraction of a second.
const INDEX_BATCH: i64 = 5_000;
/// How often an idle index looks for new events.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// After a catch-up of at least this many events, the index is merged.
const MERGE_AFTER: usize = 100_000;
/// The index's thread runs at this nice value: it gives way to the server's
/// threads (the writers of events, the pages), and takes the cores they leave.
const NICE: i32 = 10;

/// The thread that keeps SQLite's free-text index; it stops when this is
/// dropped (with the server).
pub struct Indexer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Indexer {
    /// Starts the index's thread (after the migrations, which check that the
    /// index is this database's: [`check_belongs`]); `None` on PostgreSQL.
    pub fn start(database: &Database) -> Result<Option<Self>, DbError> {
        if database.url().is_postgres() {
            return Ok(None);
        }
        let conn = database.connect_one()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let database = database.clone();
        let thread = std::thread::Builder::new()
            .name("text-index".into())
            .spawn(move || keep(conn, &database, stopped))
            .map_err(|e| {
                DbError::Config(format!("cannot start the free-text index's thread: {e}"))
            })?;
        Ok(Some(Self {
            stop: Some(stop),
            thread: Some(thread),
        }))
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The index's thread: adds what is new, in batches, until told to stop.
fn keep(mut conn: DbConn, database: &Database, stopped: mpsc::Receiver<()>) {
    // SAFETY: setpriority only reads its arguments; on Linux, `who` = 0 with
    // PRIO_PROCESS names the calling thread.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICE);
    }
    let mut run = (0usize, Instant::now());
    loop {
        let wait = match index_more(&mut conn, INDEX_BATCH) {
            Ok(n) if n as i64 == INDEX_BATCH => {
                run.0 += n;
                Duration::ZERO
            }
            Ok(n) => {
                run.0 += n;
                if run.0 >= MERGE_AFTER {
                    if let Err(e) = optimize(&mut conn) {
                        tracing::error!(error = %e, "the free-text index could not be merged");
                    }
                    // What the catch-up and the merge held goes back to the system.
                    let _ = conn.batch_execute("PRAGMA shrink_memory;");
                    crate::memory::release_freed();
                    tracing::info!(
                        events = run.0,
                        seconds = run.1.elapsed().as_secs_f64(),
                        "the free-text index has caught up"
                    );
                }
                run = (0, Instant::now());
                IDLE_WAIT
            }
            Err(e) => {
                tracing::error!(error = %e, "the free-text index could not be written; searches test the events it lacks");
                // A connection in a state it cannot leave is not tried again.
                if let Ok(fresh) = database.connect_one() {
                    conn = fresh;
                }
                run = (0, Instant::now());
                Duration::from_secs(1)
            }
        };
        match stopped.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
