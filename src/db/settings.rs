//! Values every instance must share, such as the cookie signing key.

use diesel::prelude::*;

use super::schema::settings;
use super::{DbConn, DbError, with_backend};

/// The value of a setting, if set.
pub fn get(conn: &mut DbConn, name: &str) -> Result<Option<String>, DbError> {
    Ok(settings::table
        .find(name)
        .select(settings::value)
        .first(conn.backend())
        .optional()?)
}

/// Returns the stored value, storing `make()` first if there is none. Safe when
/// several instances start at once: the first insert wins and all read it.
pub fn get_or_insert(
    conn: &mut DbConn,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<String, DbError> {
    if let Some(v) = get(conn, name)? {
        return Ok(v);
    }
    let value = make();
    // An upsert: diesel's MultiConnection cannot write ON CONFLICT, each backend can.
    with_backend!(conn, c => diesel::insert_into(settings::table)
        .values((settings::name.eq(name), settings::value.eq(&value)))
        .on_conflict_do_nothing()
        .execute(c))?;
    get(conn, name)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
}
