//! Browser sessions kept in the application's own database, behind
//! actix-session's `SessionStore`, and a typed view of what a session holds.
//!
//! The cookie carries only a random key (encrypted by actix-session); the
//! sessions table holds the key's SHA-256, so a copy of the table cannot be
//! replayed as cookies. Logout, suspension and role changes delete rows, which
//! ends the session everywhere at once, on every instance.

use std::collections::HashMap;
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_session::{Session, SessionExt};
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::sessions::{self, SessionRow};
use crate::db::{DbError, Pool};
use crate::error::AppError;
use crate::ids::UserId;

/// How often a session's last-seen time is written, at most: the idle timeout
/// needs no finer grain, and reads then cost no write.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// The database-backed [`SessionStore`].
#[derive(Clone)]
pub struct DbSessionStore {
    pool: Pool,
    idle: Duration,
    absolute: Duration,
}

impl DbSessionStore {
    /// A store that ends sessions idle for `idle`, or older than `absolute`.
    pub fn new(pool: Pool, idle: Duration, absolute: Duration) -> Self {
        Self {
            pool,
            idle,
            absolute,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::db::DbConn) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, anyhow::Error> {
        let pool = self.pool.clone();
        let joined = actix_web::web::block(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| anyhow::anyhow!("session task failed: {e}"))?;
        joined.map_err(|e| {
            if e.is_unavailable() {
                anyhow::anyhow!("{STORE_UNAVAILABLE}: {e}")
            } else {
                anyhow::anyhow!("{e}")
            }
        })
    }
}

/// How the store's errors say that the database is away; actix-session
/// answers any store error with a bare 500, which [`store_outage_is_503`]
/// turns back into the 503 it is.
const STORE_UNAVAILABLE: &str = "session store: database unavailable";

/// Whether actix-session failed because the store could not reach the
/// database. Its error wraps ours (a `LoadError`, `SaveError` or
/// `UpdateError`) under a fixed message of its own; the debug form shows
/// the whole chain.
fn is_store_outage(e: &actix_web::Error) -> bool {
    format!("{e:?}").contains(STORE_UNAVAILABLE)
}

/// Answers a request whose session could not be read or written because the
/// database is away with the same 503 (and `Retry-After`) as any page or API
/// call, not actix-session's bare 500. Wraps the session middleware. The
/// response is built here, with the security headers and the request's id,
/// because the middlewares outside pass an error by without adding them.
pub async fn store_outage_is_503(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::ResponseError;
    let api = super::http_rules::is_api(req.path());
    let https = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .is_some_and(|s| s.config.secure_cookies());
    match next.call(req).await {
        Ok(res) => Ok(res.map_into_boxed_body()),
        Err(e) if is_store_outage(&e) => {
            let cause = format!("{e:?}");
            let mut response = if api {
                super::api::Problem::new(
                    actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "the database is not answering; retry later",
                )
                .error_response()
            } else {
                AppError::Unavailable(cause.clone()).error_response()
            };
            let headers = response.headers_mut();
            for (name, value) in super::security_header_list(https) {
                headers.insert(name, value);
            }
            if let Some(id) = super::request_id::current()
                .and_then(|id| actix_web::http::header::HeaderValue::from_str(&id).ok())
            {
                headers.insert(
                    actix_web::http::header::HeaderName::from_static(super::request_id::HEADER),
                    id,
                );
            }
            Err(actix_web::error::InternalError::from_response(cause, response).into())
        }
        Err(e) => Err(e),
    }
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn new_key() -> SessionKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SessionKey::try_from(hex::encode(bytes)).expect("64 hex characters make a valid session key")
}

/// The user id a session state names, if any (values are JSON, as actix-session stores them).
fn user_id_of(state: &HashMap<String, String>) -> Option<i64> {
    state
        .get(USER_ID)
        .and_then(|v| serde_json::from_str(v).ok())
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl SessionStore for DbSessionStore {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        let key_hash = hash_key(session_key.as_ref());
        let idle = to_chrono(self.idle);
        let row = self
            .run(move |conn| {
                let Some(row) = sessions::find(conn, &key_hash)? else {
                    return Ok(None);
                };
                let now = Utc::now().naive_utc();
                if row.expires_at <= now || row.last_seen_at + idle <= now {
                    sessions::delete(conn, &key_hash)?;
                    return Ok(None);
                }
                if (now - row.last_seen_at).num_seconds() >= TOUCH_EVERY_SECONDS {
                    sessions::touch(conn, &key_hash, now)?;
                }
                Ok(Some(row))
            })
            .await
            .map_err(LoadError::Other)?;
        match row {
            None => Ok(None),
            Some(row) => serde_json::from_str(&row.state)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
        }
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        _ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let key = new_key();
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let now = Utc::now().naive_utc();
        let row = SessionRow {
            key_hash: hash_key(key.as_ref()),
            user_id: user_id_of(&state),
            state: json,
            created_at: now,
            last_seen_at: now,
            expires_at: now + to_chrono(self.absolute),
        };
        let idle = to_chrono(self.idle);
        self.run(move |conn| {
            sessions::insert(conn, &row)?;
            if rand::random::<u8>() < 8 {
                // Now and then, sweep out sessions nobody will come back to.
                sessions::delete_expired(conn, now, now - idle)?;
            }
            Ok(())
        })
        .await
        .map_err(SaveError::Other)?;
        Ok(key)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: HashMap<String, String>,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let key_hash = hash_key(session_key.as_ref());
        let json =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let user_id = user_id_of(&state);
        let updated = self
            .run(move |conn| {
                sessions::update_state(conn, &key_hash, user_id, &json, Utc::now().naive_utc())
            })
            .await
            .map_err(UpdateError::Other)?;
        if updated {
            Ok(session_key)
        } else {
            // The row is gone (ended elsewhere: logout, a role change, a password
            // reset): start a fresh, anonymous session rather than revive the login.
            let mut state = state;
            state.remove(USER_ID);
            state.remove(CSRF);
            self.save(state, ttl)
                .await
                .map_err(|e| UpdateError::Other(anyhow::anyhow!("{e}")))
        }
    }

    async fn update_ttl(
        &self,
        _session_key: &SessionKey,
        _ttl: &CookieDuration,
    ) -> Result<(), anyhow::Error> {
        // Idle time is tracked in `load`; the absolute expiry never moves.
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let key_hash = hash_key(session_key.as_ref());
        self.run(move |conn| sessions::delete(conn, &key_hash))
            .await
    }
}

/// Deletes ended sessions (past their absolute expiry, or idle for `idle`)
/// every `every`, for as long as the server runs, so that the table holds
/// only live ones even when nobody logs in.
pub async fn purge_expired(pool: Pool, idle: Duration, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let pool = pool.clone();
        let purged = actix_web::web::block(move || {
            let mut conn = pool.get()?;
            let now = Utc::now().naive_utc();
            sessions::delete_expired(&mut conn, now, now - to_chrono(idle))
        })
        .await;
        match purged {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(sessions = n, "purged ended sessions"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not purge ended sessions"),
            Err(e) => tracing::warn!(error = %e, "the session purge failed"),
        }
    }
}

const USER_ID: &str = "user_id";
const CSRF: &str = "csrf";
const FLASH: &str = "flash";

/// What Auditdesk keeps in a session: who is logged in, and the CSRF token.
pub struct TypedSession(Session);

impl TypedSession {
    /// The logged-in user's id, if any.
    pub fn user_id(&self) -> Option<UserId> {
        self.0.get::<i64>(USER_ID).ok().flatten().map(UserId)
    }

    /// Starts an authenticated session under a new key (no fixation) with a new CSRF token.
    pub fn log_in(&self, user_id: UserId) -> Result<(), AppError> {
        self.0.renew();
        self.0.clear();
        self.0
            .insert(USER_ID, user_id.0)
            .map_err(|e| AppError::Internal(format!("session: {e}")))?;
        self.0
            .insert(CSRF, random_token())
            .map_err(|e| AppError::Internal(format!("session: {e}")))
    }

    /// Ends the session, on the server too.
    pub fn log_out(&self) {
        self.0.purge();
    }

    /// The session's CSRF token, made on first use.
    pub fn csrf_token(&self) -> Result<String, AppError> {
        if let Ok(Some(token)) = self.0.get::<String>(CSRF) {
            return Ok(token);
        }
        let token = random_token();
        self.0
            .insert(CSRF, &token)
            .map_err(|e| AppError::Internal(format!("session: {e}")))?;
        Ok(token)
    }

    /// Keeps a one-line note for the next page (after a redirect).
    pub fn set_flash(&self, note: &str) -> Result<(), AppError> {
        self.0
            .insert(FLASH, note)
            .map_err(|e| AppError::Internal(format!("session: {e}")))
    }

    /// Takes the note left by [`TypedSession::set_flash`], if any.
    pub fn take_flash(&self) -> Option<String> {
        self.0.remove_as::<String>(FLASH).and_then(Result::ok)
    }
}

impl super::forms::CsrfCheck for TypedSession {
    /// Refuses a form whose token is missing or not this session's.
    fn check_csrf(&self, given: &str) -> Result<(), AppError> {
        match self.0.get::<String>(CSRF) {
            Ok(Some(expected)) if constant_time_eq(expected.as_bytes(), given.as_bytes()) => Ok(()),
            _ => Err(AppError::Csrf),
        }
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequest for TypedSession {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(TypedSession(req.get_session())))
    }
}

#[cfg(test)]
mod tests {
    use actix_session::storage::{LoadError, SaveError, UpdateError};
    use actix_web::HttpResponse;
    use actix_web::error::InternalError;

    use super::*;

    /// actix-session wraps a store's error as `InternalError::from_response(e, 500)`.
    fn as_session_middleware_wraps<E: std::fmt::Debug + std::fmt::Display + 'static>(
        e: E,
    ) -> actix_web::Error {
        InternalError::from_response(e, HttpResponse::InternalServerError().finish()).into()
    }

    #[test]
    fn an_unreachable_database_is_told_apart_in_every_store_error() {
        let outage = || anyhow::anyhow!("{STORE_UNAVAILABLE}: no database connection available");
        assert!(is_store_outage(&as_session_middleware_wraps(
            LoadError::Other(outage())
        )));
        assert!(is_store_outage(&as_session_middleware_wraps(
            SaveError::Other(outage())
        )));
        assert!(is_store_outage(&as_session_middleware_wraps(
            UpdateError::Other(outage())
        )));
        let broken = anyhow::anyhow!("database error: no such table: sessions");
        assert!(!is_store_outage(&as_session_middleware_wraps(
            SaveError::Other(broken)
        )));
    }
}
