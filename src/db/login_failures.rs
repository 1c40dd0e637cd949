//! Failed logins, for throttling per account name and per address.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::login_failures;
use super::{DbConn, DbError, write_statement};

/// Records a failed login.
pub fn record(
    conn: &mut DbConn,
    account: &str,
    ip: &str,
    time: NaiveDateTime,
) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::account.eq(account),
                login_failures::ip.eq(ip),
                login_failures::time.eq(time),
            ))
            .execute(conn.backend())
    })?;
    Ok(())
}

/// Failures for this account since `since`: how many, and the oldest one's time.
pub fn for_account(
    conn: &mut DbConn,
    account: &str,
    since: NaiveDateTime,
) -> Result<(i64, Option<NaiveDateTime>), DbError> {
    Ok(login_failures::table
        .filter(login_failures::account.eq(account))
        .filter(login_failures::time.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(login_failures::time),
        ))
        .first(conn.backend())?)
}

/// Failures from this address since `since`: how many, and the oldest one's time.
pub fn for_ip(
    conn: &mut DbConn,
    ip: &str,
    since: NaiveDateTime,
) -> Result<(i64, Option<NaiveDateTime>), DbError> {
    Ok(login_failures::table
        .filter(login_failures::ip.eq(ip))
        .filter(login_failures::time.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(login_failures::time),
        ))
        .first(conn.backend())?)
}

/// Forgets an account's failures (after it logs in successfully).
pub fn clear_account(conn: &mut DbConn, account: &str) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::delete(login_failures::table.filter(login_failures::account.eq(account)))
            .execute(conn.backend())
    })?;
    Ok(())
}

/// Forgets failures older than `before`.
pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, DbError> {
    write_statement(conn, |conn| {
        diesel::delete(login_failures::table.filter(login_failures::time.lt(before)))
            .execute(conn.backend())
    })
}
