//! Streams (CONTRACT.md, "Streams"): every stored event forwarded to the
//! systems that watch them, a webhook or a syslog server, each stream with
//! the page's filters, delivered at least once and in log-position order,
//! resumed from where it stopped. Adding, pausing, resuming and removing a
//! stream are audited like any other change, a webhook's secret as a secret.

pub mod deliver;
pub mod syslog;
pub mod webhook;

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

use crate::audit::event::truncate_to_micros;
use crate::audit::filter::{AuditQuery, Filter, QueryParams, RawQuery, encode_query};
use crate::audit::{Action, Actor, Diff, Event, FieldChange, store};
use crate::auth::Secret;
use crate::auth::users::ChangedBy;
use crate::db::streams::{NewStreamRow, StreamRow};
use crate::db::{self, DbConn, DbError};

/// Where a stream's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `POST`s of NDJSON batches to this http(s) URL.
    Webhook(url::Url),
    /// RFC 5424 messages to a syslog server.
    Syslog(syslog::Address),
}

impl Destination {
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook(_) => "webhook",
            Destination::Syslog(_) => "syslog",
        }
    }

    /// The URL or address as given, checked: `kind` is `webhook` or `syslog`.
    pub fn parse(kind: &str, target: &str) -> Result<Self, StreamError> {
        match kind {
            "webhook" => {
                let url = url::Url::parse(target).map_err(|e| {
                    StreamError::Invalid(format!("invalid webhook URL '{target}': {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(StreamError::Invalid(format!(
                        "invalid webhook URL '{target}': use http:// or https:// and a host"
                    )));
                }
                // The URL is listed, shown and recorded in the stream's event:
                // a password in it would be too.
                if url.password().is_some() {
                    return Err(StreamError::Invalid(
                        "the webhook URL holds a password, which would be shown and recorded with it: \
                         give the receiver a URL without one (the stream's secret signs each batch)"
                            .into(),
                    ));
                }
                Ok(Destination::Webhook(url))
            }
            "syslog" => Ok(Destination::Syslog(
                target.parse().map_err(StreamError::Invalid)?,
            )),
            other => Err(StreamError::Invalid(format!(
                "unknown stream kind '{other}' (expected webhook or syslog)"
            ))),
        }
    }
}

impl Destination {
    /// The destination as listed, shown and recorded in the log: a webhook
    /// URL's query values and user name are `******`, since receivers
    /// often take their token there, and stream lists and events are read
    /// by auditors and forwarded to other systems. The URL is stored and
    /// used whole. (A token in the URL's path, as some receivers want, is
    /// not told apart from the path; prefer the query or a secret.)
    pub fn shown(&self) -> String {
        const HIDDEN: &str = "******";
        match self {
            Destination::Webhook(url) => {
                let mut shown = url.clone();
                if !url.username().is_empty() {
                    let _ = shown.set_username(HIDDEN);
                }
                if let Some(query) = url.query() {
                    let masked: Vec<String> = query
                        .split('&')
                        .map(|part| match part.split_once('=') {
                            Some((key, _)) => format!("{key}={HIDDEN}"),
                            None if part.is_empty() => String::new(),
                            None => HIDDEN.to_owned(),
                        })
                        .collect();
                    shown.set_query(Some(&masked.join("&")));
                }
                shown.set_fragment(None);
                shown.to_string()
            }
            Destination::Syslog(address) => address.to_string(),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Webhook(url) => f.write_str(url.as_str()),
            Destination::Syslog(address) => address.fmt(f),
        }
    }
}

/// How a stream is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Delivering, or waiting for new events.
    Delivering,
    /// Its destination has failed since then; tried again with backoff.
    Retrying { since: DateTime<Utc>, error: String },
    /// Paused by a site manager.
    Paused,
    /// Failed for longer than the limit: not tried again until resumed.
    Failing { since: DateTime<Utc>, error: String },
}

impl Health {
    /// The one word `stream list` and the page show.
    pub fn word(&self) -> &'static str {
        match self {
            Health::Delivering => "delivering",
            Health::Retrying { .. } => "retrying",
            Health::Paused => "paused",
            Health::Failing { .. } => "failing",
        }
    }
}

/// A stream as listed (never with its secret).
#[derive(Debug, Clone)]
pub struct Stream {
    pub id: i64,
    pub name: String,
    pub destination: Destination,
    pub has_secret: bool,
    /// The page's filters, in the query-string form the page uses.
    pub filter: String,
    pub health: Health,
    /// The first log position not delivered yet.
    pub next_position: i64,
    pub delivered: i64,
    pub last_delivered_time: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl Stream {
    fn from_row(row: StreamRow) -> Result<Self, StreamError> {
        let error = || row.last_error.clone().unwrap_or_default();
        let health = if row.paused {
            Health::Paused
        } else if let Some(at) = row.failed_at {
            Health::Failing {
                since: utc(row.retrying_since.unwrap_or(at)),
                error: error(),
            }
        } else if let Some(since) = row.retrying_since {
            Health::Retrying {
                since: utc(since),
                error: error(),
            }
        } else {
            Health::Delivering
        };
        Ok(Self {
            id: row.id,
            destination: Destination::parse(&row.kind, &row.target)?,
            has_secret: row.secret.is_some(),
            health,
            next_position: row.next_position,
            delivered: row.delivered,
            last_delivered_time: row.last_delivered_time.map(utc),
            created_by: row.created_by,
            created_at: utc(row.created_at),
            name: row.name,
            filter: row.filter,
        })
    }

    /// How many events of the log it has yet to pass over: those after its
    /// position, whether or not its filter keeps them.
    pub fn behind(&self, log_end: i64) -> i64 {
        (log_end - self.next_position).max(0)
    }
}

/// A stream's filter, read back from its stored query-string form.
pub fn parse_filter(stored: &str) -> Result<Filter, StreamError> {
    let params = QueryParams::parse(stored, &[]);
    if let Some(e) = params.errors.first() {
        return Err(StreamError::Invalid(format!("stream filter: {e}")));
    }
    AuditQuery::parse(&params.raw)
        .map(|q| q.filter)
        .map_err(|errors| StreamError::Invalid(format!("stream filter: {}", joined(&errors))))
}

fn joined<E: fmt::Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a stream change was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Invalid(String),
    #[error("a stream named '{0}' exists already")]
    NameTaken(String),
    #[error("no stream with id {0}")]
    NotFound(i64),
    #[error("stream {0} is already {1}")]
    Already(i64, &'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for StreamError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// What `stream add` and the page's form give.
#[derive(Debug)]
pub struct NewStream<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    /// The webhook's URL or the syslog server's address.
    pub target: &'a str,
    /// A webhook's signing secret.
    pub secret: Option<Secret>,
    /// The page's filters.
    pub filters: &'a RawQuery,
}

/// The longest name and target kept.
const MAX_NAME: usize = 100;
const MAX_TARGET: usize = 2000;

fn check_name(name: &str) -> Result<(), StreamError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(StreamError::Invalid(format!(
            "invalid stream name '{}': use 1 to {MAX_NAME} characters, no control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn stream_event(by: &ChangedBy, action: Action, id: i64, name: &str, diff: Diff) -> Event {
    Event {
        id: Uuid::new_v4(),
        time: truncate_to_micros(Utc::now()),
        user: by.actor.clone(),
        action,
        resource_type: "stream".into(),
        resource_id: format!("stream-{id}"),
        resource_target: name.to_owned(),
        diff,
        ip: by.ip.clone(),
        user_agent: by.user_agent.clone(),
        status_code: 200,
        request_id: Uuid::new_v4().to_string(),
    }
}

fn text(v: &str) -> Option<serde_json::Value> {
    Some(serde_json::Value::String(v.to_owned()))
}

/// Adds a stream; it starts from the first event of the log. Records a `create`.
pub fn add(conn: &mut DbConn, new: NewStream<'_>, by: &ChangedBy) -> Result<Stream, StreamError> {
    check_name(new.name)?;
    if new.target.len() > MAX_TARGET {
        return Err(StreamError::Invalid(format!(
            "the stream's target is longer than {MAX_TARGET} bytes"
        )));
    }
    let destination = Destination::parse(new.kind, new.target)?;
    if new.secret.is_some() && !matches!(destination, Destination::Webhook(_)) {
        return Err(StreamError::Invalid(
            "a secret signs webhook deliveries only: a syslog stream has none".into(),
        ));
    }
    if let Some(secret) = &new.secret
        && secret.expose().is_empty()
    {
        return Err(StreamError::Invalid("the webhook secret is empty".into()));
    }
    let query =
        AuditQuery::parse(new.filters).map_err(|errors| StreamError::Invalid(joined(&errors)))?;
    let filter = encode_query(&query.filter_pairs());
    let target = destination.to_string();
    db::write_transaction(conn, |conn| {
        if db::streams::find_by_name(conn, new.name)?.is_some() {
            return Err(StreamError::NameTaken(new.name.to_owned()));
        }
        let row = db::streams::insert(
            conn,
            &NewStreamRow {
                name: new.name,
                kind: destination.kind(),
                target: &target,
                secret: new.secret.as_ref().map(Secret::expose),
                filter: &filter,
                created_by: &by.actor.username,
                created_at: Utc::now().naive_utc(),
            },
        )?
        .ok_or_else(|| StreamError::NameTaken(new.name.to_owned()))?;
        let mut diff = Diff::from([
            ("name".to_owned(), FieldChange::values(None, text(new.name))),
            (
                "kind".to_owned(),
                FieldChange::values(None, text(destination.kind())),
            ),
            (
                "target".to_owned(),
                FieldChange::values(None, text(&destination.shown())),
            ),
            (
                "filters".to_owned(),
                FieldChange::values(None, text(&filter)),
            ),
        ]);
        if new.secret.is_some() {
            diff.insert("secret".to_owned(), FieldChange::secret());
        }
        store::record(
            conn,
            stream_event(by, Action::Create, row.id, new.name, diff),
        )?;
        Stream::from_row(row)
    })
}

/// Every stream, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<Stream>, StreamError> {
    db::streams::list(conn)?
        .into_iter()
        .map(Stream::from_row)
        .collect()
}

/// The streams retrying or failing (Manage > Audit names them).
pub fn unhealthy(conn: &mut DbConn) -> Result<Vec<Stream>, DbError> {
    Ok(db::streams::list(conn)?
        .into_iter()
        .filter(|r| r.failed_at.is_some() || (r.retrying_since.is_some() && !r.paused))
        .filter_map(|r| Stream::from_row(r).ok())
        .collect())
}

/// The position the next stored event will have.
pub fn log_end(conn: &mut DbConn) -> Result<i64, StreamError> {
    Ok(db::log::next_position(conn)?)
}

/// Pauses (`true`) or resumes a stream; resuming a failing stream tries it
/// again at once. Records a `write` of `paused` (and of `failing`).
pub fn set_paused(
    conn: &mut DbConn,
    id: i64,
    paused: bool,
    by: &ChangedBy,
) -> Result<Stream, StreamError> {
    db::write_transaction(conn, |conn| {
        let row = db::streams::find(conn, id)?.ok_or(StreamError::NotFound(id))?;
        let failing = row.failed_at.is_some();
        // Resuming a failing stream is a change even though it is not paused.
        let resumes_failing = failing && !paused;
        if row.paused == paused && !resumes_failing {
            return Err(StreamError::Already(
                id,
                if paused { "paused" } else { "delivering" },
            ));
        }
        db::streams::set_paused(conn, id, paused)?;
        let mut diff = Diff::new();
        if row.paused != paused {
            diff.insert(
                "paused".to_owned(),
                FieldChange::values(Some((!paused).into()), Some(paused.into())),
            );
        }
        if resumes_failing {
            diff.insert(
                "failing".to_owned(),
                FieldChange::values(Some(true.into()), Some(false.into())),
            );
        }
        store::record(conn, stream_event(by, Action::Write, id, &row.name, diff))?;
        let row = db::streams::find(conn, id)?.ok_or(StreamError::NotFound(id))?;
        Stream::from_row(row)
    })
}

/// Removes a stream: its delivery stops. Records a `delete`.
pub fn remove(conn: &mut DbConn, id: i64, by: &ChangedBy) -> Result<Stream, StreamError> {
    db::write_transaction(conn, |conn| {
        let row = db::streams::find(conn, id)?.ok_or(StreamError::NotFound(id))?;
        let stream = Stream::from_row(row)?;
        db::streams::remove(conn, id)?;
        let diff = Diff::from([
            (
                "name".to_owned(),
                FieldChange::values(text(&stream.name), None),
            ),
            (
                "kind".to_owned(),
                FieldChange::values(text(stream.destination.kind()), None),
            ),
            (
                "target".to_owned(),
                FieldChange::values(text(&stream.destination.shown()), None),
            ),
        ]);
        store::record(
            conn,
            stream_event(by, Action::Delete, id, &stream.name, diff),
        )?;
        Ok(stream)
    })
}

/// The server itself, as the actor of what it decides (a stream marked failing).
pub fn server_actor() -> ChangedBy {
    ChangedBy {
        actor: Actor {
            username: "auditdesk".into(),
            email: "auditdesk@localhost (server)".into(),
        },
        ip: String::new(),
        user_agent: format!("auditdesk/{}", env!("CARGO_PKG_VERSION")),
    }
}

/// Records that the server marked a stream failing.
fn record_failing(
    conn: &mut DbConn,
    id: i64,
    name: &str,
    error: &str,
    since: DateTime<Utc>,
) -> Result<(), DbError> {
    let diff = Diff::from([
        (
            "failing".to_owned(),
            FieldChange::values(Some(false.into()), Some(true.into())),
        ),
        (
            "retrying_since".to_owned(),
            FieldChange::values(None, text(&crate::audit::event::format_time(since))),
        ),
        (
            "last_error".to_owned(),
            FieldChange::values(None, text(error)),
        ),
    ]);
    store::record(
        conn,
        stream_event(&server_actor(), Action::Write, id, name, diff),
    )
}

#[cfg(test)]
mod tests {
    use super::Destination;

    #[test]
    fn a_webhook_url_is_shown_without_its_query_values_or_user_name() {
        let shown = |url: &str| Destination::parse("webhook", url).unwrap().shown();
        assert_eq!(
            shown("https://siem.example/in?token=abc123&source=x"),
            "https://siem.example/in?token=******&source=******"
        );
        assert_eq!(
            shown("https://siem.example/in?abc123"),
            "https://siem.example/in?******"
        );
        assert_eq!(
            shown("https://abc123@siem.example:8088/services/collector#frag"),
            "https://******@siem.example:8088/services/collector"
        );
        assert_eq!(shown("http://127.0.0.1:9/hook"), "http://127.0.0.1:9/hook");
        // Stored and used whole.
        let d = Destination::parse("webhook", "https://siem.example/in?token=abc123").unwrap();
        assert_eq!(d.to_string(), "https://siem.example/in?token=abc123");
        let syslog = Destination::parse("syslog", "tcp://127.0.0.1:514").unwrap();
        assert_eq!(syslog.shown(), "tcp://127.0.0.1:514");
    }
}
