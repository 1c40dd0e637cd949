//! API tokens: long random secrets shown once, stored only as a SHA-256 hash,
//! each with a scope (`ingest` may only send events, `read` may only read them),
//! revocable at once. Creating and revoking one is itself audited.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Secret;
use super::users::ChangedBy;
use crate::audit::event::truncate_to_micros;
use crate::audit::{Action, Diff, Event, FieldChange, store};
use crate::db::tokens::{NewTokenRow, TokenRow};
use crate::db::{self, DbConn, DbError};
use crate::ids::TokenId;

/// Every token starts with this, so a leaked one is recognisable in logs and scanners.
pub const PREFIX: &str = "adk_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send events in (POST /api/v1/audit-logs).
    Ingest,
    /// Read events (GET /api/v1/audit-logs).
    Read,
}

impl Scope {
    /// The name used in the CLI, forms and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" => Ok(Scope::Ingest),
            "read" => Ok(Scope::Read),
            other => Err(format!("unknown scope '{other}' (expected ingest or read)")),
        }
    }
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub name: String,
    pub scope: Scope,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn utc(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

fn to_token(row: TokenRow) -> Token {
    Token {
        id: TokenId(row.id),
        // The CHECK constraint keeps the column to the two names.
        scope: row.scope.parse().unwrap_or(Scope::Read),
        name: row.name,
        created_by: row.created_by,
        created_at: utc(row.created_at),
        last_used_at: row.last_used_at.map(utc),
        revoked_at: row.revoked_at.map(utc),
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a token change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidName(String),
    #[error("no API token with id {0}")]
    NotFound(TokenId),
    #[error("API token {0} is already revoked")]
    AlreadyRevoked(TokenId),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for TokenError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn token_event(by: &ChangedBy, action: Action, token: &Token, diff: Diff) -> Event {
    Event {
        id: Uuid::new_v4(),
        time: truncate_to_micros(Utc::now()),
        user: by.actor.clone(),
        action,
        resource_type: "api_key".into(),
        resource_id: format!("tok-{}", token.id),
        resource_target: token.name.clone(),
        diff,
        ip: by.ip.clone(),
        user_agent: by.user_agent.clone(),
        status_code: 200,
        request_id: Uuid::new_v4().to_string(),
    }
}

fn new_value(v: &str) -> FieldChange {
    FieldChange::values(None, Some(v.into()))
}

/// Creates a token; returns it with its secret, which is never stored or shown again.
pub fn create(
    conn: &mut DbConn,
    name: &str,
    scope: Scope,
    by: &ChangedBy,
) -> Result<(Token, Secret), TokenError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(TokenError::InvalidName(format!(
            "invalid token name '{name}': use 1 to 100 characters, no control characters"
        )));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    let token_hash = hash(&secret);
    let token = db::write_transaction(conn, |conn| {
        let row = db::tokens::insert(
            conn,
            &NewTokenRow {
                name,
                scope: scope.as_str(),
                token_hash: &token_hash,
                created_by: &by.actor.username,
                created_at: Utc::now().naive_utc(),
            },
        )?;
        let token = to_token(row);
        let diff = Diff::from([
            ("name".to_owned(), new_value(name)),
            ("scope".to_owned(), new_value(scope.as_str())),
            ("token".to_owned(), FieldChange::secret()),
        ]);
        store::record(conn, token_event(by, Action::Create, &token, diff))?;
        Ok::<_, TokenError>(token)
    })?;
    Ok((token, Secret::new(secret)))
}

/// Every token, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<Token>, DbError> {
    Ok(db::tokens::list(conn)?.into_iter().map(to_token).collect())
}

/// Revokes a token: it stops working at once. Records a `delete`.
pub fn revoke(conn: &mut DbConn, id: TokenId, by: &ChangedBy) -> Result<Token, TokenError> {
    db::write_transaction(conn, |conn| {
        let token = db::tokens::list(conn)?
            .into_iter()
            .find(|t| t.id == id.0)
            .map(to_token)
            .ok_or(TokenError::NotFound(id))?;
        if token.revoked_at.is_some() {
            return Err(TokenError::AlreadyRevoked(id));
        }
        db::tokens::revoke(conn, id, Utc::now().naive_utc())?;
        let diff = Diff::from([(
            "revoked".to_owned(),
            FieldChange::values(Some(false.into()), Some(true.into())),
        )]);
        store::record(conn, token_event(by, Action::Delete, &token, diff))?;
        Ok(token)
    })
}

/// How often `last_used_at` is written, at most, per token.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// The live (unrevoked) token whose secret this is, recording its use.
pub fn authenticate(conn: &mut DbConn, presented: &str) -> Result<Option<Token>, DbError> {
    if !presented.starts_with(PREFIX) || presented.len() > 200 {
        return Ok(None);
    }
    let Some(row) = db::tokens::find_by_hash(conn, &hash(presented))? else {
        return Ok(None);
    };
    let token = to_token(row);
    if token.revoked_at.is_some() {
        return Ok(None);
    }
    let now = Utc::now();
    if token
        .last_used_at
        .is_none_or(|t| now - t > Duration::seconds(TOUCH_EVERY_SECONDS))
    {
        db::tokens::touch(conn, token.id, now.naive_utc())?;
    }
    Ok(Some(token))
}
