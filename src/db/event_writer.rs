//! Where events sent over the API are written.
//!
//! On SQLite one thread does it, with its own connection. SQLite has one writer
//! at a time anyway, and two things make a single, long-lived writer much faster
//! than taking turns on pooled connections:
//! - **Group commit.** Requests that arrive while a transaction is being written
//!   wait in a queue and are written together in the next one: one fsync for
//!   all of them, and the index pages they share are written to the WAL once.
//!   A request still stands or falls alone (a failed group is written again
//!   request by request), and every answer comes after the commit.
//! - **A warm page cache.** SQLite drops a connection's cache whenever another
//!   connection has written; a pooled connection therefore met the events'
//!   indexes cold on almost every batch and read their pages back through the
//!   operating system. The writer's own connection keeps them (see
//!   [`WRITER_PRAGMAS`]).
//!
//! On PostgreSQL, which takes concurrent writers and groups their commits
//! itself, each request is written on a pooled connection.

use diesel::connection::SimpleConnection;
use tokio::sync::{mpsc, oneshot};

use super::events::{InsertOutcome, NewEventRow, OnConflict, insert_batch, insert_rows};
use super::{DatabaseUrl, DbConn, DbError, Pool, connect_one, write_transaction};

/// Requests that may wait for the writer; more wait in their handlers.
const QUEUED_REQUESTS: usize = 64;
/// At most this many events in one group transaction (one request may exceed
/// it alone: a request is never split).
const GROUP_EVENTS: usize = 20_000;
/// The writer's page cache, 256 MiB (negative: KiB): enough for the hot part
/// of the events' indexes at a few million events, filled only as pages are
/// used.
const WRITER_PRAGMAS: &str = "PRAGMA cache_size = -262144;";

/// Writes batches of events; cheap to clone.
#[derive(Clone)]
pub struct EventWriter {
    inner: Inner,
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
    answer: oneshot::Sender<Result<InsertOutcome, DbError>>,
}

impl EventWriter {
    /// Starts the writer for the configured database (on SQLite a thread that
    /// ends when the last clone of the writer is dropped).
    pub fn start(url: &DatabaseUrl, pool: Pool) -> Result<Self, DbError> {
        if url.is_postgres() {
            return Ok(Self {
                inner: Inner::Pool(pool),
            });
        }
        let mut conn = connect_one(url)?;
        conn.batch_execute(WRITER_PRAGMAS)?;
        let (queue, jobs) = mpsc::channel(QUEUED_REQUESTS);
        let url = url.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || run(conn, jobs, &url))
            .map_err(|e| DbError::Config(format!("cannot start the event writer thread: {e}")))?;
        Ok(Self {
            inner: Inner::Thread(queue),
        })
    }

    /// Stores a batch in one transaction, idempotently by event id (see
    /// [`super::events::insert_batch`]); returns once it is committed.
    pub async fn insert(
        &self,
        rows: Vec<NewEventRow>,
        on_conflict: OnConflict,
    ) -> Result<InsertOutcome, DbError> {
        if rows.is_empty() {
            return Ok(InsertOutcome::default());
        }
        match &self.inner {
            Inner::Pool(pool) => {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get()?;
                    super::events::insert_batch(&mut conn, &rows, on_conflict)
                })
                .await
                .map_err(|e| DbError::Pool(format!("the database task failed: {e}")))?
            }
            Inner::Thread(queue) => {
                let (answer, answered) = oneshot::channel();
                let job = Job {
                    rows,
                    on_conflict,
                    answer,
                };
                queue
                    .send(job)
                    .await
                    .map_err(|_| DbError::Pool("the event writer has stopped".into()))?;
                answered.await.map_err(|_| {
                    DbError::Pool("the event writer stopped before answering".into())
                })?
            }
        }
    }
}

/// The writer thread: takes the next request and whatever else is waiting, and
/// writes them in one transaction.
fn run(mut conn: DbConn, mut jobs: mpsc::Receiver<Job>, url: &DatabaseUrl) {
    while let Some(first) = jobs.blocking_recv() {
        let mut events = first.rows.len();
        let mut group = vec![first];
        while events < GROUP_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    events += job.rows.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let results = write_group(&mut conn, &group);
        tracing::debug!(
            requests = group.len(),
            events,
            "event writer: group written"
        );
        if results.iter().any(Result::is_err) {
            // Start the next group on a fresh connection, in case this one is
            // left in a state it cannot leave (a failed rollback).
            match connect_one(url).and_then(|mut fresh| {
                fresh.batch_execute(WRITER_PRAGMAS)?;
                Ok(fresh)
            }) {
                Ok(fresh) => conn = fresh,
                Err(e) => tracing::warn!(error = %e, "event writer: cannot reconnect"),
            }
        }
        for (job, result) in group.into_iter().zip(results) {
            // The requester may have gone (client disconnected): nothing to tell.
            let _ = job.answer.send(result);
        }
    }
}

/// Writes the group in one transaction. Should that fail, each job is written
/// again alone, so that one request's failure never fails the others. (No
/// savepoint per job: SQLite copies every page a savepoint touches into a
/// sub-journal, which cost more than the rare retry.)
fn write_group(conn: &mut DbConn, group: &[Job]) -> Vec<Result<InsertOutcome, DbError>> {
    if let [job] = group {
        return vec![insert_batch(conn, &job.rows, job.on_conflict)];
    }
    let written = write_transaction(conn, |conn| {
        group
            .iter()
            .map(|job| insert_rows(conn, &job.rows, job.on_conflict))
            .collect::<Result<Vec<_>, DbError>>()
    });
    match written {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(error = %e, requests = group.len(), "event writer: the group failed; writing its requests one by one");
            group
                .iter()
                .map(|job| insert_batch(conn, &job.rows, job.on_conflict))
                .collect()
        }
    }
}
