//! Giving log positions to the events stored before positions existed.
//! Events stored since get theirs in the transaction that stores them
//! (`db::events::insert_rows`).

use crate::db::{self, DbConn, DbError};

use super::leaf;

/// Gives every event stored before positions existed (see
/// `db::log::unsealed`) its position, oldest id first, a thousand at a time,
/// each batch in its own transaction; returns how many. Run at every start,
/// after the migrations: a no-op once done, and an interrupted run goes on
/// where it stopped. An event slipped in later is never sealed here.
pub fn seal_earlier_events(conn: &mut DbConn) -> Result<u64, DbError> {
    const BATCH: i64 = 1000;
    let below = db::log::sealed_below(conn)?;
    if below == 0 {
        return Ok(0);
    }
    let mut after = 0;
    let mut sealed = 0u64;
    loop {
        let rows = db::log::unsealed(conn, after, below, BATCH)?;
        let Some(last) = rows.last() else {
            db::log::earlier_events_sealed(conn)?;
            return Ok(sealed);
        };
        after = last.id;
        let entries: Vec<(i64, String)> = rows
            .iter()
            .map(|row| (row.id, hex::encode(leaf::hash_of(row))))
            .collect();
        sealed += db::log::seal_earlier(conn, &entries)? as u64;
    }
}
