//! Streams: the destinations events are forwarded to, and how far each has
//! got in the log (see `streams` for what they mean to a user).
//!
//! A stream is delivered by one instance at a time: the one holding its
//! lease (`lease_owner` until `lease_until`). Every change of its progress is
//! made only while the lease is held (`WHERE lease_owner = <me>`), so an
//! instance that lost its lease (paused for longer than the lease, or cut
//! off from the database) cannot move a position another has moved since.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::streams;
use super::{AnyConnection, DbConn, DbError, write_statement};

/// The database's clock, in UTC: what leases and failures are timed by, so
/// that instances whose clocks disagree still agree on when a lease ends
/// (on PostgreSQL, its server's clock; a SQLite file is shared only by the
/// processes of one machine, whose clock this is).
pub fn now(conn: &mut DbConn) -> Result<NaiveDateTime, DbError> {
    match conn.backend() {
        AnyConnection::Postgres(c) => Ok(diesel::select(diesel::dsl::sql::<
            diesel::sql_types::Timestamp,
        >(
            "clock_timestamp() AT TIME ZONE 'UTC'"
        ))
        .get_result(c)?),
        AnyConnection::Sqlite(_) => Ok(chrono::Utc::now().naive_utc()),
    }
}

/// A stored stream.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = streams)]
pub struct StreamRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub secret: Option<String>,
    pub filter: String,
    pub paused: bool,
    pub next_position: i64,
    pub delivered: i64,
    pub last_delivered_time: Option<NaiveDateTime>,
    pub last_delivered_at: Option<NaiveDateTime>,
    pub retrying_since: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub failed_at: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

/// A stream to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = streams)]
pub struct NewStreamRow<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub target: &'a str,
    pub secret: Option<&'a str>,
    pub filter: &'a str,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
}

/// Stores a stream and returns it (inside the caller's write transaction);
/// `None` when its name is taken (by another add at the same moment too).
pub fn insert(conn: &mut DbConn, stream: &NewStreamRow<'_>) -> Result<Option<StreamRow>, DbError> {
    match diesel::insert_into(streams::table)
        .values(stream)
        .execute(conn.backend())
    {
        Err(e) if super::is_unique_violation(&e) => return Ok(None),
        done => done?,
    };
    find_by_name(conn, stream.name)
}

/// Every stream, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<StreamRow>, DbError> {
    Ok(streams::table
        .order(streams::id.asc())
        .select(StreamRow::as_select())
        .load(conn.backend())?)
}

pub fn find(conn: &mut DbConn, id: i64) -> Result<Option<StreamRow>, DbError> {
    Ok(streams::table
        .find(id)
        .select(StreamRow::as_select())
        .first(conn.backend())
        .optional()?)
}

pub fn find_by_name(conn: &mut DbConn, name: &str) -> Result<Option<StreamRow>, DbError> {
    Ok(streams::table
        .filter(streams::name.eq(name))
        .select(StreamRow::as_select())
        .first(conn.backend())
        .optional()?)
}

/// Pauses a stream, or resumes it: resuming also ends its failure, so it
/// is tried again at once. Whether there was such a stream.
pub fn set_paused(conn: &mut DbConn, id: i64, paused: bool) -> Result<bool, DbError> {
    let target = streams::table.find(id);
    let n = if paused {
        diesel::update(target)
            .set(streams::paused.eq(true))
            .execute(conn.backend())?
    } else {
        diesel::update(target)
            .set((
                streams::paused.eq(false),
                streams::failed_at.eq(None::<NaiveDateTime>),
                streams::retrying_since.eq(None::<NaiveDateTime>),
            ))
            .execute(conn.backend())?
    };
    Ok(n > 0)
}

pub fn remove(conn: &mut DbConn, id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(streams::table.find(id)).execute(conn.backend())? > 0)
}

/// Takes (or keeps) the lease on a stream that is neither paused nor
/// failing, for `length` from the database's `now`: whether this instance
/// holds it now. A lease another holds is taken only once it has ended by
/// the database's clock.
pub fn take_lease(
    conn: &mut DbConn,
    id: i64,
    owner: &str,
    length: chrono::Duration,
) -> Result<bool, DbError> {
    let now = now(conn)?;
    let until = now + length;
    let n = write_statement(conn, |conn| {
        diesel::update(
            streams::table
                .find(id)
                .filter(streams::paused.eq(false))
                .filter(streams::failed_at.is_null())
                .filter(
                    streams::lease_owner
                        .is_null()
                        .or(streams::lease_owner.eq(owner))
                        .or(streams::lease_until.lt(now)),
                ),
        )
        .set((
            streams::lease_owner.eq(owner),
            streams::lease_until.eq(until),
        ))
        .execute(conn.backend())
    })?;
    Ok(n > 0)
}

/// Gives the lease up (the instance stops), so another may take it at once.
pub fn release_lease(conn: &mut DbConn, id: i64, owner: &str) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::update(
            streams::table
                .find(id)
                .filter(streams::lease_owner.eq(owner)),
        )
        .set((
            streams::lease_owner.eq(None::<String>),
            streams::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn.backend())
    })?;
    Ok(())
}

/// What a delivered batch moves: the next position, how many events were
/// delivered and the newest time among them.
#[derive(Debug, Clone, Copy)]
pub struct Acknowledged {
    pub next_position: i64,
    pub delivered: i64,
    pub last_time: Option<NaiveDateTime>,
    pub at: NaiveDateTime,
}

/// Records a batch the destination acknowledged (or a stretch of the log
/// with no event for this stream), while the lease is held: whether it was.
pub fn acknowledge(
    conn: &mut DbConn,
    id: i64,
    owner: &str,
    ack: Acknowledged,
) -> Result<bool, DbError> {
    let n = write_statement(conn, |conn| {
        let mine = streams::table
            .find(id)
            .filter(streams::lease_owner.eq(owner));
        match ack.last_time {
            Some(time) => diesel::update(mine)
                .set((
                    streams::next_position.eq(ack.next_position),
                    streams::delivered.eq(streams::delivered + ack.delivered),
                    streams::last_delivered_time.eq(time),
                    streams::last_delivered_at.eq(ack.at),
                    streams::retrying_since.eq(None::<NaiveDateTime>),
                    streams::last_error.eq(None::<String>),
                ))
                .execute(conn.backend()),
            None => diesel::update(mine)
                .set((
                    streams::next_position.eq(ack.next_position),
                    streams::retrying_since.eq(None::<NaiveDateTime>),
                    streams::last_error.eq(None::<String>),
                ))
                .execute(conn.backend()),
        }
    })?;
    Ok(n > 0)
}

/// Records a failed delivery: retrying since the first failure in a row.
/// Returns since when, while the lease is held.
pub fn record_failure(
    conn: &mut DbConn,
    id: i64,
    owner: &str,
    error: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, DbError> {
    write_statement(conn, |conn| {
        let mine = streams::table
            .find(id)
            .filter(streams::lease_owner.eq(owner));
        diesel::update(mine.filter(streams::retrying_since.is_null()))
            .set(streams::retrying_since.eq(now))
            .execute(conn.backend())?;
        diesel::update(mine)
            .set(streams::last_error.eq(error))
            .execute(conn.backend())?;
        mine.select(streams::retrying_since)
            .first::<Option<NaiveDateTime>>(conn.backend())
            .optional()
            .map(Option::flatten)
    })
}

/// Marks a stream failing: it is not tried again until resumed. Whether
/// this instance did (it held the lease, which it gives up).
pub fn mark_failed(
    conn: &mut DbConn,
    id: i64,
    owner: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        streams::table
            .find(id)
            .filter(streams::lease_owner.eq(owner)),
    )
    .set((
        streams::failed_at.eq(now),
        streams::lease_owner.eq(None::<String>),
        streams::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn.backend())?;
    Ok(n > 0)
}
