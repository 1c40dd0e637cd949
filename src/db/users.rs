//! The users table.

use crate::ids::UserId;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::{AnyConnection, DbConn, DbError, with_backend, write_statement};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub suspended: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
}

/// A user to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUserRow<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub suspended: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Which unique value an insert collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
}

/// Inserts a user; `Ok(Err(..))` when the username or email is already taken.
pub fn insert(conn: &mut DbConn, user: &NewUserRow<'_>) -> Result<Result<UserRow, Taken>, DbError> {
    if find_by_username(conn, user.username)?.is_some() {
        return Ok(Err(Taken::Username));
    }
    if find_by_email(conn, user.email)?.is_some() {
        return Ok(Err(Taken::Email));
    }
    let inserted = diesel::insert_into(users::table)
        .values(user)
        .execute(conn.backend());
    match inserted {
        Ok(_) => {}
        // A concurrent insert won the race between the checks above and ours.
        Err(e) if super::is_unique_violation(&e) => return Ok(Err(Taken::Username)),
        Err(e) => return Err(e.into()),
    }
    let row = find_by_username(conn, user.username)?
        .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
    Ok(Ok(row))
}

/// The user with this username.
pub fn find_by_username(conn: &mut DbConn, username: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn.backend())
        .optional()?)
}

/// The user with this email.
pub fn find_by_email(conn: &mut DbConn, email: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn.backend())
        .optional()?)
}

/// The user with this id.
pub fn find_by_id(conn: &mut DbConn, id: UserId) -> Result<Option<UserRow>, DbError> {
    // Per backend, not through `AnyConnection`: a hot query (see `db`, "Hot queries").
    Ok(with_backend!(conn, c => users::table
        .find(id.0)
        .select(UserRow::as_select())
        .first(c)
        .optional())?)
}

/// Every user, by username.
pub fn list(conn: &mut DbConn) -> Result<Vec<UserRow>, DbError> {
    Ok(users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn.backend())?)
}

/// Whether any user exists (the first-run setup is open only while none does).
pub fn any_exist(conn: &mut DbConn) -> Result<bool, DbError> {
    let n: i64 = users::table
        .select(users::id)
        .limit(1)
        .count()
        .get_result(conn.backend())?;
    Ok(n > 0)
}

/// Inside a write transaction, keeps other changes of roles and suspensions out
/// until it ends. On PostgreSQL (READ COMMITTED) two managers demoting each other
/// at once would otherwise both count "another site manager remains"; this lock
/// mode conflicts with itself. SQLite's writers are serialised already.
pub fn lock_for_role_change(conn: &mut DbConn) -> Result<(), DbError> {
    if let AnyConnection::Postgres(c) = conn.backend() {
        use diesel::connection::SimpleConnection;
        c.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")?;
    }
    Ok(())
}

/// How many site managers are not suspended.
pub fn count_active_site_managers(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(users::table
        .filter(users::role.eq("site_manager"))
        .filter(users::suspended.eq(false))
        .count()
        .get_result(conn.backend())?)
}

/// Changes a user's role.
pub fn set_role(
    conn: &mut DbConn,
    id: UserId,
    role: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set((users::role.eq(role), users::updated_at.eq(now)))
        .execute(conn.backend())?;
    Ok(())
}

/// Suspends or reactivates a user.
pub fn set_suspended(
    conn: &mut DbConn,
    id: UserId,
    suspended: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set((users::suspended.eq(suspended), users::updated_at.eq(now)))
        .execute(conn.backend())?;
    Ok(())
}

/// Replaces a user's password hash.
pub fn set_password_hash(
    conn: &mut DbConn,
    id: UserId,
    hash: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn.backend())?;
    Ok(())
}

/// Records a successful login.
pub fn set_last_login(conn: &mut DbConn, id: UserId, now: NaiveDateTime) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::update(users::table.find(id.0))
            .set(users::last_login_at.eq(Some(now)))
            .execute(conn.backend())
    })?;
    Ok(())
}
