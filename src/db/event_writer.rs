//! Where events sent over the API are written.
//!
//! On SQLite one thread does it, with its own connection. SQLite has one writer
//! at a time anyway, and two things make a single, long-lived writer much faster
//! than taking turns on pooled connections:
//! - **Group commit.** The writer takes every request waiting in its queue, and
//!   requests that arrive while it writes them join the same transaction (up to
//!   [`GROUP_EVENTS`]): one fsync for all of them, and the index pages they
//!   share are written to the WAL once. A request still stands or falls alone
//!   (a failed group is written again without the request that failed), and
//!   every answer comes after the commit.
//! - **A warm page cache.** SQLite drops a connection's cache whenever another
//!   connection has written; a pooled connection therefore met the events'
//!   indexes cold on almost every batch and read their pages back through the
//!   operating system. The writer's own connection keeps them (see
//!   [`WRITER_PRAGMAS`]) as long as the other writes (logins, sessions, user
//!   changes) stay rare.
//!
//! On PostgreSQL, which takes concurrent writers and groups their commits
//! itself, each request is written on a pooled connection.

use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use tokio::sync::{mpsc, oneshot};

use super::events::{InsertOutcome, NewEventRow, OnConflict, insert_batch, insert_rows};
use super::{AnyConnection, Database, DbConn, DbError, Pool, write_transaction};

/// Requests that may wait for the writer; more wait in their handlers.
const QUEUED_REQUESTS: usize = 64;
/// At most this many events in one group transaction (one request may exceed
/// it alone: a request is never split).
const GROUP_EVENTS: usize = 20_000;
/// The writer's page cache, 256 MiB (negative: KiB): enough for the hot part
/// of the events' indexes at a few million events, filled only as pages are
/// used. Measured against 64 and 32 MiB (`bench/ingest.py sqlite`, bench/README.md,
/// "Sixth sitting"): batches 19,000 events/s against 17,300 and 16,600, but single
/// events 2,900/s against 3,480 and 3,700. Kept for batches, the common case;
/// why a larger cache slows single events is not known yet.
const WRITER_PRAGMAS: &str = "PRAGMA cache_size = -262144;";

/// Writes batches of events; cheap to clone.
#[derive(Clone)]
pub struct EventWriter {
    inner: Inner,
    database: Database,
}

#[derive(Clone)]
enum Inner {
    /// PostgreSQL: each batch on a pooled connection.
    Pool(Pool),
    /// SQLite: batches go to the writer thread.
    Thread(mpsc::Sender<Job>),
}

struct Job {
    rows: Vec<NewEventRow>,
    on_conflict: OnConflict,
    then: AfterCommit,
    answer: oneshot::Sender<Result<InsertOutcome, DbError>>,
}

impl EventWriter {
    /// Starts the writer for the configured database (on SQLite a thread that
    /// ends when the last clone of the writer is dropped).
    pub fn start(database: &Database, pool: Pool) -> Result<Self, DbError> {
        if database.url().is_postgres() {
            return Ok(Self {
                inner: Inner::Pool(pool),
                database: database.clone(),
            });
        }
        let conn = writer_connection(database)?;
        // Only to time the wait for the next request (see `next_job`).
        let quiet = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| DbError::Config(format!("cannot start the event writer's timer: {e}")))?;
        let (queue, jobs) = mpsc::channel(QUEUED_REQUESTS);
        let for_thread = database.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || run(conn, jobs, &quiet, &for_thread))
            .map_err(|e| DbError::Config(format!("cannot start the event writer thread: {e}")))?;
        Ok(Self {
            inner: Inner::Thread(queue),
            database: database.clone(),
        })
    }

    /// Whether the events it stores are also printed on stdout (see
    /// [`Database::with_echo`]).
    pub fn echoes_stored_events(&self) -> bool {
        self.database.0.echo_stored_events
    }

    /// Whether events can be written (for `/readyz`): on SQLite, whether the
    /// writer thread is running.
    pub fn is_running(&self) -> bool {
        match &self.inner {
            Inner::Pool(_) => true,
            Inner::Thread(queue) => !queue.is_closed(),
        }
    }

    /// Stores a batch in one transaction, idempotently by event id (see
    /// [`super::events::insert_batch`]); returns once it is committed. `then`
    /// runs with the outcome right after the commit, on the writing thread, even
    /// if the caller stops waiting (the JSON log of stored events must not miss
    /// an event whose requester went away).
    pub async fn insert(
        &self,
        rows: Vec<NewEventRow>,
        on_conflict: OnConflict,
        then: AfterCommit,
    ) -> Result<InsertOutcome, DbError> {
        match &self.inner {
            Inner::Pool(pool) => {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get()?;
                    let outcome = insert_batch(&mut conn, &rows, on_conflict)?;
                    then(&outcome);
                    Ok(outcome)
                })
                .await
                .map_err(|e| DbError::Pool(format!("the database task failed: {e}")))?
            }
            Inner::Thread(queue) => {
                let (answer, answered) = oneshot::channel();
                let job = Job {
                    rows,
                    on_conflict,
                    then,
                    answer,
                };
                match tokio::time::timeout(QUEUE_WAIT, queue.send(job)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        return Err(DbError::Unavailable(
                            "the event writer has stopped; nothing of this request was stored"
                                .into(),
                        ));
                    }
                    Err(_) => {
                        return Err(DbError::Unavailable(format!(
                            "the event writer is busy (its queue stayed full for {} s); nothing of this request was stored, send it again",
                            QUEUE_WAIT.as_secs()
                        )));
                    }
                }
                answered.await.map_err(|_| {
                    DbError::Unavailable(
                        "the event writer stopped while writing this request: whether it was stored is unknown; sending it again is safe".into(),
                    )
                })?
            }
        }
    }
}

/// What runs right after a batch is committed (see [`EventWriter::insert`]).
pub type AfterCommit = Box<dyn FnOnce(&InsertOutcome) + Send>;

/// How long a request waits for room in the writer's queue before a 503.
const QUEUE_WAIT: Duration = Duration::from_secs(15);

fn writer_connection(database: &Database) -> Result<DbConn, DbError> {
    let mut conn = database.connect_one()?;
    conn.batch_execute(WRITER_PRAGMAS)?;
    Ok(conn)
}

/// How long the writer waits without a request before it empties the WAL.
const QUIET_BEFORE_WAL_TRUNCATE: Duration = Duration::from_secs(5);

/// The next request; `None` once every sender is gone. After a write, each
/// [`QUIET_BEFORE_WAL_TRUNCATE`] spent waiting for it tries to empty the WAL
/// file, until that is done.
fn next_job(
    jobs: &mut mpsc::Receiver<Job>,
    quiet: &tokio::runtime::Runtime,
    conn: &mut DbConn,
    wrote: &mut bool,
) -> Option<Job> {
    while *wrote {
        // The timer must be made inside the runtime.
        let waited = quiet
            .block_on(async { tokio::time::timeout(QUIET_BEFORE_WAL_TRUNCATE, jobs.recv()).await });
        match waited {
            Ok(job) => return job,
            Err(_) => *wrote = !truncate_wal(conn),
        }
    }
    jobs.blocking_recv()
}

/// Copies the WAL back into the database file and cuts it to zero bytes, so
/// that a quiet instance keeps no WAL of hundreds of MiB beside its database
/// (see `journal_size_limit` in [`super::SQLITE_PRAGMAS`]). It does not wait
/// for a reader that still uses the WAL (a long export) or for another writer:
/// it reports `false` and is tried again after the next quiet spell. (The
/// copying itself runs on the writer thread, as SQLite's own checkpoints do.)
/// The database's WAL only: the free-text index's file is its thread's.
fn truncate_wal(conn: &mut DbConn) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    let AnyConnection::Sqlite(c) = conn.backend() else {
        return true; // only SQLite has a WAL file of its own
    };
    let attempt = c.batch_execute("PRAGMA busy_timeout = 0;").and_then(|()| {
        diesel::sql_query("PRAGMA main.wal_checkpoint(TRUNCATE)").get_result::<Checkpoint>(c)
    });
    // Whatever became of the attempt: the next write must wait its turn again.
    let restored = c.batch_execute(&format!(
        "PRAGMA busy_timeout = {};",
        super::BUSY_TIMEOUT_MS
    ));
    match attempt.and_then(|done| restored.map(|()| done)) {
        Ok(Checkpoint { busy: 0 }) => {
            tracing::debug!("event writer: quiet, the WAL is emptied");
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %e, "event writer: cannot empty the WAL");
            true
        }
    }
}

/// The writer thread: takes the next request and writes it in one transaction
/// with every other request that is waiting or arrives meanwhile.
fn run(
    mut conn: DbConn,
    mut jobs: mpsc::Receiver<Job>,
    quiet: &tokio::runtime::Runtime,
    database: &Database,
) {
    let mut wrote = false;
    while let Some(first) = next_job(&mut jobs, quiet, &mut conn, &mut wrote) {
        wrote = true;
        // The requests waiting now, and those that come while it is written,
        // join `first` in `write_group`.
        let mut group = vec![first];
        // Writers elsewhere in this process (logins, user changes) wait for the
        // same lock; a writer that takes it back at once would starve them.
        super::let_waiting_writers_in(&conn);
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_group(&mut conn, &mut group, &mut jobs, database)
        }));
        let results = written.unwrap_or_else(|_| {
            tracing::error!(requests = group.len(), "event writer: a group panicked");
            if let Ok(fresh) = writer_connection(database) {
                conn = fresh;
            }
            group
                .iter()
                .map(|_| {
                    Err(DbError::Unavailable(
                        "the event writer failed while writing this request: whether it was stored is unknown; sending it again is safe".into(),
                    ))
                })
                .collect()
        });
        tracing::debug!(
            requests = group.len(),
            events = group.iter().map(|job| job.rows.len()).sum::<usize>(),
            "event writer: group written"
        );
        for (job, result) in group.into_iter().zip(results) {
            if let Ok(outcome) = &result {
                (job.then)(outcome);
            }
            // The requester may have gone (client disconnected): nothing to tell.
            let _ = job.answer.send(result);
        }
    }
}

fn failure(message: &str) -> DbError {
    DbError::Query(diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::Unknown,
        Box::new(message.to_owned()),
    ))
}

/// Writes the group in one transaction (no savepoint per request: SQLite
/// copies every page a savepoint touches into a sub-journal, which cost more
/// than the rare retry). When one request's statements fail, that request gets
/// the error and the others are written again without it; a failure that
/// belongs to no request (the lock, the commit, the disk) answers them all.
/// After any failure the connection is replaced, in case it was left in a
/// state it cannot leave.
fn write_group(
    conn: &mut DbConn,
    group: &mut Vec<Job>,
    jobs: &mut mpsc::Receiver<Job>,
    database: &Database,
) -> Vec<Result<InsertOutcome, DbError>> {
    let mut results: Vec<Option<Result<InsertOutcome, DbError>>> = Vec::new();
    let mut pending: Vec<usize> = (0..group.len()).collect();
    let mut first_attempt = true;
    while !pending.is_empty() {
        let mut failed = None;
        let written = write_transaction(conn, |conn| {
            let mut outcomes = Vec::with_capacity(pending.len());
            let mut events: usize = pending.iter().map(|&i| group[i].rows.len()).sum();
            let mut next = 0;
            loop {
                if next == pending.len() {
                    // Requests that arrived while this transaction was being
                    // written join it (once, not when a group is written again):
                    // the more events share a commit, the fewer index pages
                    // each costs in the WAL.
                    if !first_attempt || events >= GROUP_EVENTS {
                        break;
                    }
                    let Ok(job) = jobs.try_recv() else { break };
                    events += job.rows.len();
                    group.push(job);
                    pending.push(group.len() - 1);
                }
                let i = pending[next];
                let job = &group[i];
                match insert_rows(conn, &job.rows, job.on_conflict) {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) => {
                        failed = Some(i);
                        return Err(e);
                    }
                }
                next += 1;
            }
            Ok::<_, DbError>(outcomes)
        });
        first_attempt = false;
        results.resize_with(group.len(), || None);
        match written {
            Ok(outcomes) => {
                for (&i, outcome) in pending.iter().zip(outcomes) {
                    results[i] = Some(Ok(outcome));
                }
                pending.clear();
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = pending.len(), "event writer: a group transaction failed");
                match writer_connection(database) {
                    Ok(fresh) => *conn = fresh,
                    Err(e) => tracing::warn!(error = %e, "event writer: cannot reconnect"),
                }
                match failed {
                    Some(i) => {
                        results[i] = Some(Err(e));
                        pending.retain(|&j| j != i);
                    }
                    None => {
                        let message = e.to_string();
                        for &j in &pending {
                            results[j] = Some(Err(match &e {
                                // Busy, not broken: each requester may retry.
                                DbError::Unavailable(detail) => {
                                    DbError::Unavailable(detail.clone())
                                }
                                DbError::Lost(detail) => DbError::Lost(detail.clone()),
                                DbError::OutcomeUnknown(detail) => {
                                    DbError::OutcomeUnknown(detail.clone())
                                }
                                _ => failure(&message),
                            }));
                        }
                        pending.clear();
                    }
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(failure("the event writer lost this request's outcome"))))
        .collect()
}
