//! The stored state of the server's background check of the log (see
//! `integrity::watch`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::log_checks;
use super::{AnyConnection, DbConn, DbError};

/// Where the last check left off, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = log_checks)]
#[diesel(treat_none_as_null = true)]
pub struct LogCheck {
    /// Positions below this were found whole.
    pub verified_size: i64,
    /// The tree's right edge at `verified_size`: subtree heads, hex,
    /// comma-separated.
    pub frontier: String,
    /// When the last check ran; `None` before the first.
    pub checked_at: Option<NaiveDateTime>,
    /// What the last check found wrong, one per line; empty when it passed.
    pub problems: String,
}

/// The state as it is.
pub fn read(conn: &mut DbConn) -> Result<LogCheck, DbError> {
    Ok(log_checks::table
        .filter(log_checks::id.eq(1))
        .select(LogCheck::as_select())
        .first(conn.backend())?)
}

/// The state, locked until the caller's write transaction ends (on
/// PostgreSQL the row lock: another instance's check waits, then sees this
/// one's result; SQLite's write lock does it already).
pub fn read_for_update(conn: &mut DbConn) -> Result<LogCheck, DbError> {
    let row = log_checks::table.filter(log_checks::id.eq(1));
    Ok(match conn.backend() {
        AnyConnection::Postgres(c) => row.select(LogCheck::as_select()).for_update().first(c)?,
        AnyConnection::Sqlite(c) => row.select(LogCheck::as_select()).first(c)?,
    })
}

/// Stores a check's result (in the caller's write transaction).
pub fn write(conn: &mut DbConn, check: &LogCheck) -> Result<(), DbError> {
    diesel::update(log_checks::table.filter(log_checks::id.eq(1)))
        .set(check)
        .execute(conn.backend())?;
    Ok(())
}
