//! Delivering streams: one thread per stream that is neither paused nor
//! failing, started and ended by a supervising thread that looks at the
//! streams every second.
//!
//! A stream's thread holds the stream's lease (`db::streams`): on PostgreSQL
//! several instances may run, and one delivers a given stream at a time; if
//! it stops, another takes the lease over once it has lapsed. It reads the
//! log from the stream's position, keeps the events its filter matches,
//! sends them as one batch, and moves the position past them only once the
//! destination acknowledged it: a restart, a crash or an outage resumes
//! from the stored position, and loses nothing (a batch whose answer was
//! lost is sent again: at least once). A stretch of the log with none of the
//! stream's events moves the position without sending anything.
//!
//! A failed delivery is tried again after a backoff that doubles up to a
//! minute, with jitter; a stream failing for longer than `fail_after` is
//! marked failing, which is recorded as an event, and is not tried again
//! until resumed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use rand::Rng;
use uuid::Uuid;

use super::{Destination, Stream, parse_filter, syslog, webhook};
use crate::audit::query::criteria;
use crate::audit::store::from_row;
use crate::db::streams::{self as rows, Acknowledged};
use crate::db::{Database, DbConn, DbError};

/// How streams are delivered (`serve`'s options, and tests').
#[derive(Debug, Clone)]
pub struct Settings {
    /// A stream failing for longer is marked failing (`--stream-fail-after`).
    pub fail_after: Duration,
    /// How long a delivery may take, connecting included.
    pub timeout: Duration,
    /// The most events in one batch.
    pub batch: usize,
    /// How often a stream that has caught up looks for new events.
    pub poll: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// Certificate authorities HTTPS webhooks may use besides the system's
    /// (`--stream-ca-file`).
    pub webhook_roots: Option<webhook::Roots>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fail_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            batch: 1000,
            poll: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            webhook_roots: None,
        }
    }
}

/// How long a lease lasts; it is renewed once half of it has gone, and
/// before a send when less than the send's timeout and a margin is left
/// (so the timeout must be well under this).
const LEASE: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the streams.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The threads delivering streams; they stop when this is dropped.
pub struct Streams {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Streams {
    /// Starts delivering every stream of `database`.
    pub fn start(database: &Database, settings: Settings) -> Result<Self, DbError> {
        let stop = Arc::new(AtomicBool::new(false));
        let instance = format!("{}", Uuid::new_v4());
        let database = database.clone();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("streams".into())
            .spawn(move || supervise(&database, &settings, &instance, &stopping))
            .map_err(|e| DbError::Config(format!("cannot start the streams' thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sleeps for `d`, or less when told to stop: whether to go on.
fn pause(stop: &AtomicBool, d: Duration) -> bool {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    false
}

fn supervise(database: &Database, settings: &Settings, instance: &str, stop: &Arc<AtomicBool>) {
    let mut running: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut conn: Option<DbConn> = None;
    loop {
        running.retain(|_, t| !t.is_finished());
        let active = conn
            .take()
            .map_or_else(|| database.connect_one(), Ok)
            .and_then(|mut c| {
                let found = rows::list(&mut c);
                conn = Some(c);
                found
            });
        match active {
            Ok(streams) => {
                for row in streams {
                    if row.paused || row.failed_at.is_some() || running.contains_key(&row.id) {
                        continue;
                    }
                    let (id, database, settings, instance, stop) = (
                        row.id,
                        database.clone(),
                        settings.clone(),
                        instance.to_owned(),
                        stop.clone(),
                    );
                    match std::thread::Builder::new()
                        .name(format!("stream-{id}"))
                        .spawn(move || deliver(id, &database, &settings, &instance, &stop))
                    {
                        Ok(t) => {
                            running.insert(row.id, t);
                        }
                        Err(e) => {
                            tracing::error!(stream = row.id, error = %e, "cannot start a stream's thread")
                        }
                    }
                }
            }
            Err(e) => {
                conn = None;
                tracing::error!(error = %e, "cannot read the streams");
            }
        }
        if !pause(stop, LOOK_EVERY) {
            break;
        }
    }
    for (_, t) in running {
        let _ = t.join();
    }
}

/// Where a stream's events go, ready to send.
enum Sender {
    Webhook(webhook::Sender),
    Syslog(syslog::Sender),
}

impl Sender {
    fn new(stream: &Stream, secret: Option<String>, settings: &Settings) -> Result<Self, String> {
        let timeout = settings.timeout;
        Ok(match &stream.destination {
            Destination::Webhook(url) => Sender::Webhook(webhook::Sender::new(
                url.clone(),
                secret,
                timeout,
                settings.webhook_roots.as_ref(),
            )?),
            Destination::Syslog(address) => {
                Sender::Syslog(syslog::Sender::new(address.clone(), timeout))
            }
        })
    }

    fn send(&mut self, batch: &[(i64, crate::audit::Event)], delivery: Uuid) -> Result<(), String> {
        match self {
            Sender::Webhook(w) => {
                let mut body = String::with_capacity(batch.len() * 512);
                for (_, event) in batch {
                    body.push_str(&event.to_json());
                    body.push('\n');
                }
                w.send(body, delivery)
            }
            Sender::Syslog(s) => s.send(batch),
        }
    }
}

/// A stream's thread, until the stream is paused, failing or removed, or the server stops.
fn deliver(id: i64, database: &Database, settings: &Settings, instance: &str, stop: &AtomicBool) {
    let mut conn = None;
    let mut failures = 0u32;
    // The batch being tried again keeps its delivery id: (first position, id).
    let mut delivery: Option<(i64, Uuid)> = None;
    let mut sender: Option<(String, Sender)> = None;
    // Until when this instance holds the stream's lease, as far as it knows.
    let mut lease: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let c = match conn.take().map_or_else(|| database.connect_one(), Ok) {
            Ok(c) => conn.insert(c),
            Err(e) => {
                tracing::error!(stream = id, error = %e, "a stream cannot reach the database");
                if !pause(stop, settings.poll.max(Duration::from_secs(1))) {
                    break;
                }
                continue;
            }
        };
        match step(
            c,
            id,
            settings,
            instance,
            &mut lease,
            &mut sender,
            &mut delivery,
        ) {
            Ok(Step::Sent) => failures = 0,
            Ok(Step::Idle) => {
                if !pause(stop, settings.poll) {
                    break;
                }
            }
            Ok(Step::NotMine) => {
                if !pause(stop, settings.poll.max(Duration::from_secs(1))) {
                    break;
                }
            }
            Ok(Step::Over) => return,
            Ok(Step::Failed) => {
                failures += 1;
                if !pause(stop, backoff(failures, settings.max_backoff)) {
                    break;
                }
            }
            Err(e) => {
                // The connection may be what failed: the next step opens another.
                conn = None;
                lease = None;
                tracing::error!(stream = id, error = %e, "a stream's delivery could not be recorded");
                failures += 1;
                if !pause(stop, backoff(failures, settings.max_backoff)) {
                    break;
                }
            }
        }
    }
    if let Some(c) = conn.as_mut() {
        let _ = rows::release_lease(c, id, instance);
    }
}

/// What one step of a stream's thread did.
enum Step {
    /// Sent a batch (or passed over events that are not the stream's).
    Sent,
    /// Nothing new in the log.
    Idle,
    /// Another instance holds the stream.
    NotMine,
    /// The stream is paused, failing or gone: the thread ends.
    Over,
    /// The destination failed; tried again after a backoff.
    Failed,
}

/// The wait before the `failures`-th retry in a row: half a second doubled
/// each time up to `max`, then a random point in its upper half.
fn backoff(failures: u32, max: Duration) -> Duration {
    let full = Duration::from_millis(500)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    let half = full / 2;
    half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn step(
    conn: &mut DbConn,
    id: i64,
    settings: &Settings,
    instance: &str,
    lease: &mut Option<Instant>,
    sender: &mut Option<(String, Sender)>,
    delivery: &mut Option<(i64, Uuid)>,
) -> Result<Step, DbError> {
    let Some(row) = rows::find(conn, id)? else {
        return Ok(Step::Over);
    };
    if row.paused || row.failed_at.is_some() {
        rows::release_lease(conn, id, instance)?;
        return Ok(Step::Over);
    }
    // The row says whose the lease is: one taken over (by an instance whose
    // clock runs ahead) or ended is taken again, or not at all.
    if row.lease_owner.as_deref() != Some(instance) {
        *lease = None;
    }
    // Renewed once half of it has gone (a write each time, on SQLite the
    // database's write lock): another instance cannot take it before it ends.
    if !hold(conn, id, instance, lease, LEASE / 2)? {
        return Ok(Step::NotMine);
    }
    let secret = row.secret.clone();
    let stream_row_key = format!("{}\u{0}{}\u{0}{:?}", row.kind, row.target, row.secret);
    let name = row.name.clone();
    let trouble = Trouble {
        id,
        name: &name,
        instance,
        settings,
        retrying_since: row.retrying_since,
    };
    let filter = row.filter.clone();
    let stream = match Stream::from_row(row) {
        Ok(s) => s,
        Err(e) => {
            return trouble.fail(conn, &e.to_string());
        }
    };
    let filter = match parse_filter(&filter) {
        Ok(f) => criteria(&f),
        Err(e) => {
            return trouble.fail(conn, &e.to_string());
        }
    };
    // A batch's worth of the log: all of it for a stream without a filter.
    let scan = i64::try_from(settings.batch).unwrap_or(i64::MAX);
    let entries = crate::db::log::event_ids(conn, stream.next_position, scan)?;
    let Some(&(last_position, _)) = entries.last() else {
        return Ok(Step::Idle);
    };
    let ids: Vec<i64> = entries.iter().map(|&(_, event)| event).collect();
    let mut found: HashMap<i64, crate::db::events::EventRow> =
        crate::db::events::among(conn, &filter, &ids)?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
    // The stream's events in position order; the position moves past the
    // last entry looked at.
    let mut batch = Vec::new();
    for &(position, event_id) in &entries {
        if let Some(row) = found.remove(&event_id) {
            match from_row(row) {
                Ok(event) => batch.push((position, event)),
                Err(e) => {
                    let why = format!("the event at log position {position} cannot be read: {e}");
                    return trouble.fail(conn, &why);
                }
            }
        }
    }
    let next_position = last_position + 1;
    if batch.is_empty() {
        let ack = Acknowledged {
            next_position,
            delivered: 0,
            last_time: None,
            at: now(),
        };
        return acknowledged(conn, id, instance, ack, lease);
    }
    let first = batch[0].0;
    let delivery_id = match *delivery {
        Some((at, uuid)) if at == first => uuid,
        _ => {
            let uuid = Uuid::new_v4();
            *delivery = Some((first, uuid));
            uuid
        }
    };
    if sender
        .as_ref()
        .is_none_or(|(key, _)| *key != stream_row_key)
    {
        match Sender::new(&stream, secret, settings) {
            Ok(s) => *sender = Some((stream_row_key, s)),
            Err(e) => return trouble.fail(conn, &e),
        }
    }
    let Some((_, destination)) = sender.as_mut() else {
        return Ok(Step::Failed);
    };
    // A send takes at most the timeout: the lease must outlast it, with room
    // to record the answer, or be renewed first (reading the batch may have
    // taken a while).
    if !hold(conn, id, instance, lease, settings.timeout + LEASE / 6)? {
        return Ok(Step::NotMine);
    }
    match destination.send(&batch, delivery_id) {
        Ok(()) => {
            let last_time = batch.iter().map(|(_, e)| e.time.naive_utc()).max();
            let ack = Acknowledged {
                next_position,
                delivered: batch.len() as i64,
                last_time,
                at: now(),
            };
            *delivery = None;
            acknowledged(conn, id, instance, ack, lease)
        }
        Err(e) => trouble.fail(conn, &e),
    }
}

/// Makes sure this instance holds the stream's lease for at least `need`
/// more, taking it again when less is left: whether it does. The lease ends
/// by the database's clock (`rows::take_lease`); this instance counts it from
/// before it asked, on its own steady clock, so it always thinks the lease
/// ends a little sooner than the database does.
fn hold(
    conn: &mut DbConn,
    id: i64,
    instance: &str,
    lease: &mut Option<Instant>,
    need: Duration,
) -> Result<bool, DbError> {
    if lease.is_some_and(|until| until.saturating_duration_since(Instant::now()) >= need) {
        return Ok(true);
    }
    let asked_at = Instant::now();
    let length = chrono::Duration::from_std(LEASE).unwrap_or_default();
    if rows::take_lease(conn, id, instance, length)? {
        *lease = Some(asked_at + LEASE);
        Ok(true)
    } else {
        *lease = None;
        Ok(false)
    }
}

/// Moves the stream's position, if this instance still holds its lease.
fn acknowledged(
    conn: &mut DbConn,
    id: i64,
    instance: &str,
    ack: Acknowledged,
    lease: &mut Option<Instant>,
) -> Result<Step, DbError> {
    if rows::acknowledge(conn, id, instance, ack)? {
        Ok(Step::Sent)
    } else {
        *lease = None;
        Ok(Step::NotMine)
    }
}

/// A stream whose step failed: what recording it needs.
struct Trouble<'a> {
    id: i64,
    name: &'a str,
    instance: &'a str,
    settings: &'a Settings,
    /// Since when it has been failing, as read at the step's start.
    retrying_since: Option<NaiveDateTime>,
}

impl Trouble<'_> {
    /// Records a failure; past the limit, marks the stream failing (and records that).
    fn fail(&self, conn: &mut DbConn, error: &str) -> Result<Step, DbError> {
        let Trouble {
            id,
            name,
            instance,
            settings,
            retrying_since,
        } = *self;
        tracing::warn!(stream = id, name, error, "a stream's delivery failed");
        // By the database's clock, as every instance that may take the
        // stream over reads `retrying_since`.
        let at = rows::now(conn)?;
        let since = rows::record_failure(conn, id, instance, error, at)?
            .or(retrying_since)
            .unwrap_or(at);
        let limit =
            chrono::Duration::from_std(settings.fail_after).unwrap_or(chrono::Duration::MAX);
        if at - since < limit {
            return Ok(Step::Failed);
        }
        crate::db::write_transaction(conn, |conn| {
            if rows::mark_failed(conn, id, instance, at)? {
                super::record_failing(
                    conn,
                    id,
                    name,
                    error,
                    chrono::DateTime::from_naive_utc_and_offset(since, Utc),
                )?;
                tracing::error!(
                    stream = id,
                    name,
                    error,
                    "a stream is marked failing: resume it to try again"
                );
            }
            Ok::<_, DbError>(())
        })?;
        Ok(Step::Over)
    }
}
