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

/// How many failures a query found since a time, and when the latest was.
pub type Count = (i64, Option<NaiveDateTime>);

/// Failures for this account name from this address since `since`.
pub fn for_pair(
    conn: &mut DbConn,
    account: &str,
    ip: &str,
    since: NaiveDateTime,
) -> Result<Count, DbError> {
    Ok(login_failures::table
        .filter(login_failures::account.eq(account))
        .filter(login_failures::ip.eq(ip))
        .filter(login_failures::time.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::max(login_failures::time),
        ))
        .first(conn.backend())?)
}

/// Failures for this account name, from every address, since `since`.
pub fn for_account(
    conn: &mut DbConn,
    account: &str,
    since: NaiveDateTime,
) -> Result<Count, DbError> {
    Ok(login_failures::table
        .filter(login_failures::account.eq(account))
        .filter(login_failures::time.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::max(login_failures::time),
        ))
        .first(conn.backend())?)
}

/// Failures from this address, for every account name, since `since`.
pub fn for_ip(conn: &mut DbConn, ip: &str, since: NaiveDateTime) -> Result<Count, DbError> {
    Ok(login_failures::table
        .filter(login_failures::ip.eq(ip))
        .filter(login_failures::time.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::max(login_failures::time),
        ))
        .first(conn.backend())?)
}

/// Forgets an account's failures from one address (after it logs in from
/// there); others' failures for the account stand.
pub fn clear_pair(conn: &mut DbConn, account: &str, ip: &str) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::delete(
            login_failures::table
                .filter(login_failures::account.eq(account))
                .filter(login_failures::ip.eq(ip)),
        )
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
