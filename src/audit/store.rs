//! Storing validated events through the one write path in `db::events`, and
//! reading stored rows back as domain events.

use std::io::Write;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Action, Actor, Diff, Event, NewEvent};
use crate::db::event_writer::{AfterCommit, EventWriter};
use crate::db::events::{self as rows, EventRow, InsertOutcome, NewEventRow, OnConflict};
use crate::db::{DbConn, DbError};

/// Stores a batch; see [`rows::insert_batch`] for idempotency and conflicts.
pub fn store_batch(
    conn: &mut DbConn,
    batch: &[NewEvent],
    on_conflict: OnConflict,
) -> Result<InsertOutcome, DbError> {
    let outcome = rows::insert_batch(conn, &to_rows(batch), on_conflict)?;
    if conn.echoes_stored_events() {
        print_stored(batch, &outcome);
    }
    Ok(outcome)
}

/// Stores a batch sent over the API through the event writer, which groups
/// concurrent requests into one transaction; all or nothing of this batch. The
/// JSON log lines are printed right after the commit, even if the requester
/// has gone by then.
pub async fn store_sent(
    writer: &EventWriter,
    batch: Vec<NewEvent>,
) -> Result<InsertOutcome, DbError> {
    let rows = to_rows(&batch);
    let then: AfterCommit = if writer.echoes_stored_events() {
        Box::new(move |outcome| print_stored(&batch, outcome))
    } else {
        Box::new(|_| {})
    };
    writer.insert(rows, OnConflict::RefuseBatch, then).await
}

fn to_rows(batch: &[NewEvent]) -> Vec<NewEventRow> {
    let received_at = Utc::now().naive_utc();
    batch.iter().map(|e| to_row(e, received_at)).collect()
}

/// The JSON log of stored events (`serve --log-audit-json`: one line each in
/// Coder's log-export shape, on stdout), printed only after the commit, so the
/// log never shows an event the database does not hold. (Inside an enclosing
/// transaction, such as a user change, the line may precede that
/// transaction's commit.) Whether it is printed is a setting of the database
/// handle ([`crate::db::Database::with_echo`]), not of the process.
fn print_stored(batch: &[NewEvent], outcome: &InsertOutcome) {
    if !outcome.stored.is_empty() {
        let mut out = std::io::stdout().lock();
        for &i in &outcome.stored {
            let _ = writeln!(out, "{}", batch[i].event.to_coder_line());
        }
        let _ = out.flush();
    }
}

/// Stores one event the application records about itself (logins, user changes).
pub fn record(conn: &mut DbConn, event: Event) -> Result<(), DbError> {
    store_batch(conn, &[NewEvent::new(event)], OnConflict::RefuseBatch).map(|_| ())
}

fn to_row(new: &NewEvent, received_at: chrono::NaiveDateTime) -> NewEventRow {
    let e = &new.event;
    let mut row = NewEventRow {
        event_uuid: e.id.to_string(),
        time: e.time.naive_utc(),
        actor_username: e.user.username.clone(),
        actor_email: e.user.email.clone(),
        action: e.action.as_str().to_owned(),
        resource_type: e.resource_type.clone(),
        resource_id: e.resource_id.clone(),
        resource_target: e.resource_target.clone(),
        diff: e.diff_json(),
        ip: e.ip.clone(),
        user_agent: e.user_agent.clone(),
        status_code: i32::from(e.status_code),
        request_id: e.request_id.clone(),
        content_hash: new.content_hash.clone(),
        received_at,
        search_doc: super::free_text::document(e),
        earlier_hash: new.earlier_hash.clone(),
        leaf_hash: String::new(),
    };
    row.leaf_hash = crate::integrity::leaf::hex_hash_of_event(e, &row);
    row
}

/// Gives every event stored before free text was indexed its search text
/// (`free_text::document`), a thousand at a time, each batch in its own
/// transaction; returns how many. Run at every start, after the migrations: a
/// no-op once done, and an interrupted run goes on where it stopped.
pub fn fill_search_docs(conn: &mut DbConn) -> Result<u64, DbError> {
    const BATCH: i64 = 1000;
    let mut after = 0;
    let mut filled = 0u64;
    loop {
        let batch = rows::unsearched(conn, after, BATCH)?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.id;
        let docs: Vec<(i64, String)> = batch
            .into_iter()
            .map(|row| {
                let id = row.id;
                let doc = match from_row(row.clone()) {
                    Ok(event) => super::free_text::document(&event),
                    // Still searchable by its fields; not by its diff, which
                    // cannot be told apart from the JSON around it.
                    Err(e) => {
                        tracing::warn!("{e}; its search text holds its fields, not its diff");
                        super::free_text::raw_document(&[
                            &row.resource_target,
                            &row.actor_username,
                            &row.actor_email,
                            &row.resource_id,
                            &row.request_id,
                        ])
                    }
                };
                (id, doc)
            })
            .collect();
        rows::set_search_docs(conn, &docs)?;
        filled += docs.len() as u64;
        if filled.is_multiple_of(100_000) {
            tracing::info!("free text: search text filled in for {filled} earlier events so far");
        }
    }
    if filled > 0 {
        tracing::info!("free text: search text filled in for {filled} earlier events");
    }
    Ok(filled)
}

/// A stored row that no longer reads as an event (it was written by something
/// other than this application).
#[derive(Debug, thiserror::Error)]
#[error("stored event row {id} is unreadable: {reason}")]
pub struct CorruptRow {
    pub id: i64,
    pub reason: String,
}

/// Reads a stored row back as a domain event.
pub fn from_row(row: EventRow) -> Result<Event, CorruptRow> {
    let corrupt = |reason: String| CorruptRow { id: row.id, reason };
    let id = Uuid::parse_str(&row.event_uuid).map_err(|e| corrupt(format!("event id: {e}")))?;
    let action = row
        .action
        .parse::<Action>()
        .map_err(|e| corrupt(e.to_string()))?;
    let diff: Diff = serde_json::from_str(&row.diff).map_err(|e| corrupt(format!("diff: {e}")))?;
    let status_code =
        u16::try_from(row.status_code).map_err(|e| corrupt(format!("status code: {e}")))?;
    Ok(Event {
        id,
        time: DateTime::<Utc>::from_naive_utc_and_offset(row.time, Utc),
        user: Actor {
            username: row.actor_username,
            email: row.actor_email,
        },
        action,
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        resource_target: row.resource_target,
        diff,
        ip: row.ip,
        user_agent: row.user_agent,
        status_code,
        request_id: row.request_id,
    })
}

/// The newest events, newest first.
pub fn latest(conn: &mut DbConn, limit: i64) -> Result<Vec<Event>, LoadError> {
    rows::latest(conn, limit)?
        .into_iter()
        .map(|row| from_row(row).map_err(LoadError::Corrupt))
        .collect()
}

/// Why stored events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Corrupt(CorruptRow),
}
