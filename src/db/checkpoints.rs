//! Stored signed checkpoints (see `integrity::checkpoint`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::checkpoints;
use super::{AnyConnection, DbConn, DbError};

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = checkpoints)]
pub struct CheckpointRow {
    /// The tree size it signs.
    pub size: i64,
    /// The tree head, base64.
    pub root: String,
    /// The whole signed note.
    pub note: String,
    /// The tree's right edge at this size: subtree heads, hex, comma-separated.
    pub frontier: String,
    pub created_at: NaiveDateTime,
}

/// The latest checkpoint, if any.
pub fn latest(conn: &mut DbConn) -> Result<Option<CheckpointRow>, DbError> {
    Ok(checkpoints::table
        .order(checkpoints::size.desc())
        .select(CheckpointRow::as_select())
        .first(conn.backend())
        .optional()?)
}

/// Every checkpoint, smallest first.
pub fn all(conn: &mut DbConn) -> Result<Vec<CheckpointRow>, DbError> {
    Ok(checkpoints::table
        .order(checkpoints::size.asc())
        .select(CheckpointRow::as_select())
        .load(conn.backend())?)
}

/// The checkpoints of sizes above `above` and up to `up_to`, smallest first.
pub fn between(conn: &mut DbConn, above: i64, up_to: i64) -> Result<Vec<CheckpointRow>, DbError> {
    Ok(checkpoints::table
        .filter(checkpoints::size.gt(above))
        .filter(checkpoints::size.le(up_to))
        .order(checkpoints::size.asc())
        .select(CheckpointRow::as_select())
        .load(conn.backend())?)
}

/// Stores a checkpoint (in the caller's write transaction).
pub fn insert(conn: &mut DbConn, row: &CheckpointRow) -> Result<(), DbError> {
    diesel::insert_into(checkpoints::table)
        .values(row)
        .execute(conn.backend())?;
    Ok(())
}

/// Makes the caller's write transaction the only one making a checkpoint
/// until it commits: on PostgreSQL a transaction-level advisory lock (other
/// instances' checkpointers wait, then find the checkpoint made); SQLite's
/// write lock does it already.
pub fn lock(conn: &mut DbConn) -> Result<(), DbError> {
    /// The advisory lock's key: "ADCKPT" in ASCII.
    const KEY: i64 = 0x0000_4144_434B_5054;
    if let AnyConnection::Postgres(c) = conn.backend() {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({KEY})")).execute(c)?;
    }
    Ok(())
}
