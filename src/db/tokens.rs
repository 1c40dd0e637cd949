//! API tokens. Only a hash of each token's secret is stored.

use crate::ids::TokenId;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_tokens;
use super::{DbConn, DbError, write_statement};

/// A stored API token (without its secret, which is never stored).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub token_hash: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A token to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewTokenRow<'a> {
    pub name: &'a str,
    pub scope: &'a str,
    pub token_hash: &'a str,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
}

/// Stores a token and returns it.
pub fn insert(conn: &mut DbConn, token: &NewTokenRow<'_>) -> Result<TokenRow, DbError> {
    diesel::insert_into(api_tokens::table)
        .values(token)
        .execute(conn.backend())?;
    find_by_hash(conn, token.token_hash)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
}

/// The token whose secret hashes to `token_hash`.
pub fn find_by_hash(conn: &mut DbConn, token_hash: &str) -> Result<Option<TokenRow>, DbError> {
    Ok(api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .select(TokenRow::as_select())
        .first(conn.backend())
        .optional()?)
}

/// Every token, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<TokenRow>, DbError> {
    Ok(api_tokens::table
        .order(api_tokens::id.asc())
        .select(TokenRow::as_select())
        .load(conn.backend())?)
}

/// Marks a token revoked; returns false when there is no such token.
pub fn revoke(conn: &mut DbConn, id: TokenId, now: NaiveDateTime) -> Result<bool, DbError> {
    let n = diesel::update(api_tokens::table.find(id.0))
        .set(api_tokens::revoked_at.eq(Some(now)))
        .execute(conn.backend())?;
    Ok(n > 0)
}

/// Records that a token was used.
pub fn touch(conn: &mut DbConn, id: TokenId, now: NaiveDateTime) -> Result<(), DbError> {
    write_statement(conn, |conn| {
        diesel::update(api_tokens::table.find(id.0))
            .set(api_tokens::last_used_at.eq(Some(now)))
            .execute(conn.backend())
    })?;
    Ok(())
}
