//! Browser sessions. The cookie holds a random key; only its hash is stored.

use crate::ids::UserId;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::sessions;
use super::{DbConn, DbError, with_backend, write_statement};

/// A stored session.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub key_hash: String,
    pub user_id: Option<i64>,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Stores a new session.
pub fn insert(conn: &mut DbConn, row: &SessionRow) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::insert_into(sessions::table)
            .values(row)
            .execute(conn.backend())
    })?;
    Ok(())
}

/// The session with this key hash.
pub fn find(conn: &mut DbConn, key_hash: &str) -> Result<Option<SessionRow>, DbError> {
    // Per backend, not through `AnyConnection`: a hot query (see `db`, "Hot queries").
    Ok(with_backend!(conn, c => sessions::table
        .find(key_hash)
        .select(SessionRow::as_select())
        .first(c)
        .optional())?)
}

/// Replaces a session's state; returns false when the session no longer exists.
pub fn update_state(
    conn: &mut DbConn,
    key_hash: &str,
    user_id: Option<i64>,
    state: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = write_statement(conn, |conn| {
        diesel::update(sessions::table.find(key_hash))
            .set((
                sessions::state.eq(state),
                sessions::user_id.eq(user_id),
                sessions::last_seen_at.eq(now),
            ))
            .execute(conn.backend())
    })?;
    Ok(n > 0)
}

/// Marks a session as used now (for the idle timeout).
pub fn touch(conn: &mut DbConn, key_hash: &str, now: NaiveDateTime) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::update(sessions::table.find(key_hash))
            .set(sessions::last_seen_at.eq(now))
            .execute(conn.backend())
    })?;
    Ok(())
}

/// Deletes one session.
pub fn delete(conn: &mut DbConn, key_hash: &str) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::delete(sessions::table.find(key_hash)).execute(conn.backend())
    })?;
    Ok(())
}

/// Deletes every session of a user (suspension, role change, password reset).
pub fn delete_for_user(conn: &mut DbConn, user_id: UserId) -> Result<usize, DbError> {
    write_statement(conn, |conn| {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id.0)))
            .execute(conn.backend())
    })
}

/// Deletes sessions past their absolute expiry or idle since `idle_before`.
pub fn delete_expired(
    conn: &mut DbConn,
    now: NaiveDateTime,
    idle_before: NaiveDateTime,
) -> Result<usize, DbError> {
    write_statement(conn, |conn| {
        diesel::delete(
            sessions::table.filter(
                sessions::expires_at
                    .le(now)
                    .or(sessions::last_seen_at.lt(idle_before)),
            ),
        )
        .execute(conn.backend())
    })
}
