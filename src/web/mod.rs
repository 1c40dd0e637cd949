//! HTTP only: extractors, handlers, views. No SQL here; database work runs on
//! the blocking pool through [`AppState::db`].

pub mod api;
mod assets;
pub mod audit;
pub mod auth;
pub mod client_address;
mod forms;
mod health;
pub mod http_rules;
pub mod pre_login;
pub mod request_id;
pub mod session;
pub mod shown;
pub mod streams;
pub mod users;
pub mod views;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, web};
use tokio::sync::Semaphore;

use crate::audit::query::PageCache;
use crate::auth::users::{ChangedBy, NewUser, User, UserError};
use crate::auth::{Role, Secret};
use crate::config::Config;
use crate::db::event_writer::EventWriter;
use crate::db::{Database, DbConn, DbError, Pool};
use crate::error::AppError;

/// How many argon2 checks may run at once (~19 MiB each).
const CONCURRENT_PASSWORD_CHECKS: usize = 4;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Config,
    /// Writes the events sent over the API (grouped on SQLite).
    pub events: EventWriter,
    /// What the audit page can show again while it holds (see [`PageCache`]).
    pub page_cache: Arc<PageCache>,
    /// Caps concurrent password hashing so a login flood cannot exhaust memory.
    pub password_checks: Arc<Semaphore>,
    /// The database, for connections held outside the pool (exports).
    pub database: Database,
    /// Turns at exporting: each export holds one for its whole life.
    pub exports: Arc<Semaphore>,
    /// Signs the CSRF tokens of the forms shown before login.
    pub form_key: pre_login::FormKey,
    /// Signs the device cookies of browsers that have logged in.
    pub device_key: pre_login::DeviceKey,
    /// Which refused logins this process has recorded lately.
    pub refusals: Arc<crate::auth::login::RefusalRecords>,
}

impl AppState {
    /// Wraps the database and its pool, the configuration, the event writer and the key for
    /// pre-login forms.
    pub fn new(
        database: Database,
        pool: Pool,
        config: Config,
        events: EventWriter,
        form_key: pre_login::FormKey,
        device_key: pre_login::DeviceKey,
    ) -> Self {
        Self {
            database,
            exports: Arc::new(Semaphore::new(config.max_exports)),
            pool,
            config,
            events,
            form_key,
            device_key,
            page_cache: Arc::new(PageCache::default()),
            password_checks: Arc::new(Semaphore::new(CONCURRENT_PASSWORD_CHECKS)),
            refusals: Arc::default(),
        }
    }

    /// Runs `f` with a pooled connection on the blocking pool: diesel is
    /// synchronous and must never run on an async worker thread.
    pub async fn db<T, E>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        // The request's span (its id) goes along, so the blocking thread's
        // log lines name the request too.
        let span = tracing::Span::current();
        let joined = web::block(move || {
            let _entered = span.enter();
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(blocking) => Err(E::from(DbError::Pool(format!(
                "the database task failed: {blocking}"
            )))),
        }
    }

    /// A turn at password hashing: each argon2 run takes ~19 MiB, so a flood of
    /// logins or password changes waits here instead of exhausting memory.
    pub async fn password_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
        self.password_checks
            .acquire()
            .await
            .map_err(|e| AppError::Internal(format!("password check limiter: {e}")))
    }

    /// Hashes a new password with argon2id on the blocking pool, in turn.
    pub async fn hash_password(&self, password: Secret) -> Result<String, AppError> {
        let _turn = self.password_turn().await?;
        web::block(move || crate::auth::password::hash_password(password.expose()))
            .await
            .map_err(|e| AppError::Internal(format!("hashing: {e}")))
    }

    /// Hashes the new account's password, then stores the account with
    /// `create` ([`crate::auth::users::create`], or `create_first` at setup). The
    /// outer error is the server's; the inner one is the refusal to show.
    pub async fn create_account(
        &self,
        account: Account,
        by: ChangedBy,
        create: fn(&mut DbConn, &NewUser<'_>, &ChangedBy) -> Result<User, UserError>,
    ) -> Result<Result<User, UserError>, AppError> {
        let password_hash = self.hash_password(account.password).await?;
        self.db(move |conn| {
            let new = NewUser {
                username: &account.username,
                email: &account.email,
                role: account.role,
                password_hash: &password_hash,
            };
            Ok::<_, AppError>(create(conn, &new, &by))
        })
        .await
    }
}

/// A new account as a form gave it, before its password is hashed.
pub struct Account {
    pub username: String,
    pub email: String,
    pub role: Role,
    pub password: Secret,
}

/// Registers every area's routes, and turns malformed forms and query strings
/// into 400 pages that say what is wrong.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, _| {
                AppError::BadRequest(format!("The form could not be read: {e}.")).into()
            }),
    )
    .app_data(web::QueryConfig::default().error_handler(|e, _| {
        AppError::BadRequest(format!("The address has a malformed query string: {e}.")).into()
    }));
    health::configure(cfg);
    assets::configure(cfg);
    auth::configure(cfg);
    audit::configure(cfg);
    users::configure(cfg);
    streams::configure(cfg);
    api::configure(cfg);
}

/// Every request that no route matched: a page, or a problem under `/api/`.
pub async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    if http_rules::is_api(req.path()) {
        api::Problem::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "Not Found",
            format!("the API has nothing at {}", req.path()),
        )
        .error_response()
    } else {
        AppError::NotFound.error_response()
    }
}

/// Security headers on every response. `Cache-Control: no-store` keeps
/// authenticated pages out of caches and the browser's Back button; the
/// embedded assets set their own. Over https (`https` true: the public URL
/// is https) browsers are told to use nothing else for two years.
pub fn security_headers(https: bool) -> DefaultHeaders {
    security_header_list(https)
        .into_iter()
        .fold(DefaultHeaders::new(), |headers, pair| headers.add(pair))
}

/// The headers of [`security_headers`], for a response built outside the
/// middleware that adds them (see [`session::store_outage_is_503`]).
pub fn security_header_list(https: bool) -> Vec<(header::HeaderName, HeaderValue)> {
    let mut list = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Filtered URLs name users and resources: never send them to another site.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if https {
        list.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000"),
        ));
    }
    list
}
