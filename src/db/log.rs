//! Log positions: the order in which events were committed, and each
//! event's leaf hash (see `integrity`). Positions are given under a lock
//! that each sealing transaction holds until it commits (SQLite's write
//! lock; on PostgreSQL the `log_state` row, `SELECT ... FOR UPDATE`), so they
//! follow the commits across every instance, without gaps: a transaction
//! that rolls back takes its positions with it.

use diesel::prelude::*;

use super::events::EventRow;
use super::schema::{events, log_entries, log_state, log_subtrees};
use super::{AnyConnection, DbConn, DbError, write_transaction};

/// Gives the next positions, in order, to these events (their ids and leaf
/// hashes), inside the caller's write transaction.
pub fn append(conn: &mut DbConn, entries: &[(i64, String)]) -> Result<(), DbError> {
    if entries.is_empty() {
        return Ok(());
    }
    let next = lock_next(conn)?;
    insert_from(conn, next, entries)
}

/// The next position, with the lock that orders sealing taken.
fn lock_next(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(match conn.backend() {
        AnyConnection::Sqlite(c) => log_state::table.select(log_state::next_position).first(c)?,
        // Held until this transaction commits: the next sealer waits here.
        AnyConnection::Postgres(c) => log_state::table
            .select(log_state::next_position)
            .for_update()
            .first(c)?,
    })
}

/// Stores `entries` at positions `next`, `next + 1`, ... and moves the
/// next position past them.
fn insert_from(conn: &mut DbConn, next: i64, entries: &[(i64, String)]) -> Result<(), DbError> {
    let rows: Vec<_> = entries
        .iter()
        .zip(next..)
        .map(|((event_id, leaf_hash), position)| {
            (
                log_entries::position.eq(position),
                log_entries::event_id.eq(*event_id),
                log_entries::leaf_hash.eq(leaf_hash.as_str()),
            )
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        match conn.backend() {
            AnyConnection::Sqlite(c) => diesel::insert_into(log_entries::table)
                .values(chunk)
                .execute(c)?,
            AnyConnection::Postgres(c) => diesel::insert_into(log_entries::table)
                .values(chunk)
                .execute(c)?,
        };
    }
    let after = next + i64::try_from(entries.len()).unwrap_or(i64::MAX);
    diesel::update(log_state::table)
        .set(log_state::next_position.eq(after))
        .execute(conn.backend())?;
    Ok(())
}

/// Rows per INSERT of positions: small rows, few indexes.
const ROWS_PER_STATEMENT: usize = 500;

/// Gives positions to earlier events (stored before positions existed), in a
/// write transaction of their own, passing over any that another instance
/// sealed meanwhile; returns how many it sealed.
pub fn seal_earlier(conn: &mut DbConn, entries: &[(i64, String)]) -> Result<usize, DbError> {
    write_transaction(conn, |conn| {
        let next = lock_next(conn)?;
        let ids: Vec<i64> = entries.iter().map(|(id, _)| *id).collect();
        let sealed: std::collections::HashSet<i64> = log_entries::table
            .filter(log_entries::event_id.eq_any(&ids))
            .select(log_entries::event_id)
            .load::<i64>(conn.backend())?
            .into_iter()
            .collect();
        let fresh: Vec<(i64, String)> = entries
            .iter()
            .filter(|(id, _)| !sealed.contains(id))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            insert_from(conn, next, &fresh)?;
        }
        Ok(fresh.len())
    })
}

/// Up to `limit` events with ids between `after` and `below` (see
/// [`sealed_below`]) that have no position yet, oldest id first.
pub fn unsealed(
    conn: &mut DbConn,
    after: i64,
    below: i64,
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    Ok(events::table
        .left_join(log_entries::table)
        .filter(log_entries::position.is_null())
        .filter(events::id.gt(after))
        .filter(events::id.lt(below))
        .order(events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn.backend())?)
}

/// The id below which events were stored before positions existed and may
/// still lack one; 0 once they are all sealed.
pub fn sealed_below(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(log_state::table
        .select(log_state::sealed_below)
        .first(conn.backend())?)
}

/// Marks the events stored before positions existed as all sealed: from now
/// on an event without a position is one slipped in, never sealed.
pub fn earlier_events_sealed(conn: &mut DbConn) -> Result<(), DbError> {
    super::write_statement(conn, |conn| {
        diesel::update(log_state::table)
            .set(log_state::sealed_below.eq(0))
            .execute(conn.backend())
    })?;
    Ok(())
}

/// A position as stored: the event at it (if that event still exists) and
/// the leaf hash recorded when it was sealed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub position: i64,
    pub event_id: i64,
    pub leaf_hash: String,
    pub event: Option<EventRow>,
}

/// Up to `limit` positions from `from` on, in order, with their events.
pub fn entries(conn: &mut DbConn, from: i64, limit: i64) -> Result<Vec<Entry>, DbError> {
    let rows: Vec<(i64, i64, String, Option<EventRow>)> = log_entries::table
        .left_join(events::table)
        .filter(log_entries::position.ge(from))
        .order(log_entries::position.asc())
        .limit(limit)
        .select((
            log_entries::position,
            log_entries::event_id,
            log_entries::leaf_hash,
            Option::<EventRow>::as_select(),
        ))
        .load(conn.backend())?;
    Ok(rows
        .into_iter()
        .map(|(position, event_id, leaf_hash, event)| Entry {
            position,
            event_id,
            leaf_hash,
            event,
        })
        .collect())
}

/// Up to `limit` positions from `from` on, in order, with their events' ids
/// only (what a stream looks through, reading the events it keeps).
pub fn event_ids(conn: &mut DbConn, from: i64, limit: i64) -> Result<Vec<(i64, i64)>, DbError> {
    Ok(log_entries::table
        .filter(log_entries::position.ge(from))
        .order(log_entries::position.asc())
        .limit(limit)
        .select((log_entries::position, log_entries::event_id))
        .load(conn.backend())?)
}

/// Up to `limit` stored events that have no position (or one below 0, which
/// no position is), oldest id first: events slipped in past the application,
/// or stored before positions existed and not sealed yet.
pub fn without_position(conn: &mut DbConn, limit: i64) -> Result<Vec<EventRow>, DbError> {
    Ok(events::table
        .left_join(log_entries::table)
        .filter(
            log_entries::position
                .is_null()
                .or(log_entries::position.lt(0)),
        )
        .order(events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn.backend())?)
}

/// The next position to give: every position below it is committed (read
/// without the lock; a sealer still holding it has not committed its own).
pub fn next_position(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(log_state::table
        .select(log_state::next_position)
        .first(conn.backend())?)
}

/// Up to `limit` stored leaf hashes from position `from` on, in order, with
/// their positions.
pub fn leaf_hashes(
    conn: &mut DbConn,
    from: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, DbError> {
    Ok(log_entries::table
        .filter(log_entries::position.ge(from))
        .order(log_entries::position.asc())
        .limit(limit)
        .select((log_entries::position, log_entries::leaf_hash))
        .load(conn.backend())?)
}

/// The position of the event with this database id, if it has one.
pub fn position_of(conn: &mut DbConn, event_id: i64) -> Result<Option<i64>, DbError> {
    Ok(log_entries::table
        .filter(log_entries::event_id.eq(event_id))
        .select(log_entries::position)
        .first(conn.backend())
        .optional()?)
}

/// The stored head of the perfect subtree of `level` and `index` (see the
/// log_subtrees migration), if it was stored.
pub fn subtree(conn: &mut DbConn, level: i32, index: i64) -> Result<Option<String>, DbError> {
    Ok(log_subtrees::table
        .filter(log_subtrees::level.eq(level))
        .filter(log_subtrees::idx.eq(index))
        .select(log_subtrees::head)
        .first(conn.backend())
        .optional()?)
}

/// Stores subtree heads as (level, index, hex head), passing over any
/// already stored (in the caller's write transaction).
pub fn insert_subtrees(conn: &mut DbConn, heads: &[(i32, i64, String)]) -> Result<(), DbError> {
    let rows: Vec<_> = heads
        .iter()
        .map(|(level, index, head)| {
            (
                log_subtrees::level.eq(*level),
                log_subtrees::idx.eq(*index),
                log_subtrees::head.eq(head.as_str()),
            )
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        match conn.backend() {
            AnyConnection::Sqlite(c) => diesel::insert_into(log_subtrees::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(c)?,
            AnyConnection::Postgres(c) => diesel::insert_into(log_subtrees::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(c)?,
        };
    }
    Ok(())
}

/// How many subtree heads are stored.
pub fn subtree_count(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(log_subtrees::table.count().get_result(conn.backend())?)
}
