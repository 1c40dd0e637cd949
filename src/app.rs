//! Builds the running server: pool, migrations, middleware, routes.

use std::net::TcpListener;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web as aweb};
use rand::RngCore;

use crate::config::Config;
use crate::db::{self, DbError, Pool};
use crate::web::session::DbSessionStore;

/// The key that encrypts session cookies, shared by every instance through the
/// database so that any instance can read any instance's cookie.
fn cookie_key(pool: &Pool) -> Result<Key, DbError> {
    let mut conn = pool.get()?;
    let stored = db::settings::get_or_insert(&mut conn, "session_cookie_key", || {
        let mut bytes = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    })?;
    let bytes = hex::decode(&stored)
        .ok()
        .filter(|b| b.len() >= 64)
        .ok_or_else(|| {
            DbError::Config(
                "the stored session_cookie_key setting is not 64+ hex-encoded bytes".into(),
            )
        })?;
    Ok(Key::from(&bytes))
}

/// A server that is bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    pool: Pool,
    config: Config,
    /// Signs checkpoints; `None`: checkpoints are off (PostgreSQL without a key).
    signing_key: Option<std::sync::Arc<crate::integrity::note::SigningKey>>,
    /// SQLite's free-text index, kept behind the log while the server runs.
    _text_index: Option<db::text_index::Indexer>,
    /// The threads delivering streams.
    _streams: crate::streams::deliver::Streams,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error(transparent)]
    SigningKey(#[from] crate::integrity::checkpoint::KeyFileError),
    #[error(
        "signing key {0} does not exist: on PostgreSQL every instance must be given the same key file; make it once with `auditdesk key public --signing-key FILE`"
    )]
    NoSigningKey(std::path::PathBuf),
}

impl Application {
    /// Connects to the database (running migrations), binds the listener and
    /// prepares the server. Binding here, not in `run`, lets tests use port 0
    /// and learn the port before any request.
    pub fn build(config: Config) -> Result<Self, StartError> {
        let database = db::Database::with_echo(config.database_url.clone(), config.log_audit_json);
        let pool = database.pool()?;
        crate::audit::store::fill_search_docs(&mut *pool.get().map_err(DbError::from)?)?;
        crate::integrity::seal::seal_earlier_events(&mut *pool.get().map_err(DbError::from)?)?;
        // Proofs of a log signed before subtree heads were kept: read from the
        // leaves until this is done, so a failure here is logged, not fatal.
        match crate::integrity::checkpoint::store_missing_subtrees(
            &mut *pool.get().map_err(DbError::from)?,
        ) {
            Ok(0) => {}
            Ok(n) => tracing::info!(heads = n, "subtree heads of the signed log stored"),
            Err(e) => {
                tracing::error!(error = %e, "the signed log's subtree heads could not be stored")
            }
        }
        let signing_key = match config.signing_key_path() {
            // Several instances making a key each would sign with different keys.
            Some(path) if config.database_url.is_postgres() && !path.exists() => {
                return Err(StartError::NoSigningKey(path));
            }
            Some(path) => Some(std::sync::Arc::new(
                crate::integrity::checkpoint::load_or_create_key(
                    &path,
                    crate::integrity::checkpoint::KEY_NAME,
                )?,
            )),
            None => {
                tracing::warn!(
                    "checkpoints are off: no --signing-key (on PostgreSQL there is no default)"
                );
                None
            }
        };
        let listener = TcpListener::bind(&config.bind)
            .map_err(|e| StartError::Bind(config.bind.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::Bind(config.bind.clone(), e))?
            .port();
        let key = cookie_key(&pool)?;
        let events = db::event_writer::EventWriter::start(&database, pool.clone())?;
        let text_index = db::text_index::Indexer::start(&database)?;
        let streams = crate::streams::deliver::Streams::start(&database, config.streams.clone())?;
        let form_key = crate::web::pre_login::FormKey::derive(key.signing());
        let device_key = crate::web::pre_login::DeviceKey::derive(key.signing());
        let state = crate::web::AppState::new(
            database.clone(),
            pool.clone(),
            config.clone(),
            events,
            form_key,
            device_key,
        );
        let store = DbSessionStore::new(pool.clone(), config.idle_timeout, config.absolute_timeout);
        let secure = config.secure_cookies();
        let cookie_name = config.cookie_name("auditdesk_session");
        let absolute = CookieDuration::seconds(
            i64::try_from(config.absolute_timeout.as_secs()).unwrap_or(i64::MAX),
        );
        let mut server = HttpServer::new(move || {
            let sessions = SessionMiddleware::builder(store.clone(), key.clone())
                .cookie_name(cookie_name.clone())
                .cookie_secure(secure)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_content_security(CookieContentSecurity::Private)
                // A browser-session cookie; the server enforces idle and absolute timeouts.
                .session_lifecycle(BrowserSession::default().state_ttl(absolute))
                .build();
            App::new()
                .app_data(aweb::Data::new(state.clone()))
                .wrap(sessions)
                .wrap(actix_web::middleware::from_fn(
                    crate::web::session::store_outage_is_503,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::web::http_rules::same_origin_writes,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::web::http_rules::methods,
                ))
                .wrap(crate::web::security_headers(secure))
                .wrap(actix_web::middleware::from_fn(crate::web::request_id::tag))
                .configure(crate::web::configure)
                .default_service(aweb::to(crate::web::not_found))
        })
        .listen(listener)
        .map_err(|e| StartError::Bind(config.bind.clone(), e))?;
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            pool,
            config,
            signing_key,
            _text_index: text_index,
            _streams: streams,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection pool (tests inspect the database through it).
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Serves until the process is told to stop (SIGINT/SIGTERM drain in-flight
    /// requests first).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let purge = actix_web::rt::spawn(crate::web::session::purge_expired(
            self.pool.clone(),
            self.config.idle_timeout,
            self.config.purge_sessions_every,
        ));
        let checkpoints = self.signing_key.clone().map(|key| {
            actix_web::rt::spawn(make_checkpoints(
                self.pool.clone(),
                key,
                self.config.checkpoint_interval,
                self.config.checkpoint_log.clone(),
            ))
        });
        let served = self.server.await;
        purge.abort();
        if let Some(task) = checkpoints {
            task.abort();
            // The events of the last interval signed too: a log checked
            // after the server stopped is covered to its end.
            if let Some(key) = self.signing_key.clone() {
                sign(self.pool.clone(), key, self.config.checkpoint_log.clone()).await;
            }
        }
        served
    }
}

/// A checkpoint of the log if it grew, appended to `copy` too when given;
/// what happened is logged.
async fn sign(
    pool: Pool,
    key: std::sync::Arc<crate::integrity::note::SigningKey>,
    copy: Option<std::path::PathBuf>,
) {
    let made = actix_web::web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let made = crate::integrity::checkpoint::make(&mut conn, &key)?;
        // A checkpoint stored but not copied is still made: said apart.
        let copied = match (&made, &copy) {
            (Some(row), Some(path)) => crate::integrity::checkpoint::append_to_log(path, &row.note)
                .map_err(|e| format!("{}: {e}", path.display())),
            _ => Ok(()),
        };
        Ok::<_, crate::integrity::checkpoint::CheckpointError>((made, copied))
    })
    .await;
    match made {
        Ok(Ok((Some(row), copied))) => {
            tracing::info!(size = row.size, root = %row.root, "checkpoint signed");
            if let Err(e) = copied {
                tracing::error!(size = row.size, error = %e, "the checkpoint is stored but could not be copied to the checkpoint log");
            }
        }
        Ok(Ok((None, _))) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "no checkpoint made"),
        Err(e) => tracing::error!(error = %e, "the checkpoint task failed"),
    }
}

/// Every `every`, while the server runs: a checkpoint of the log if it grew,
/// appended to `copy` too when given, then the background check of the
/// positions added since the last check (`integrity::watch`).
async fn make_checkpoints(
    pool: Pool,
    key: std::sync::Arc<crate::integrity::note::SigningKey>,
    every: std::time::Duration,
    copy: Option<std::path::PathBuf>,
) {
    // The first one interval after the start, like every other.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let verifier = std::sync::Arc::new(key.verifier());
    loop {
        ticks.tick().await;
        sign(pool.clone(), key.clone(), copy.clone()).await;
        let (checker, verifier) = (pool.clone(), verifier.clone());
        let started = std::time::Instant::now();
        let checked = actix_web::web::block(move || {
            let mut conn = checker.get().map_err(DbError::from)?;
            crate::integrity::watch::check_new(&mut conn, Some(&verifier), every)
        })
        .await;
        match checked {
            Ok(Ok(outcome)) if outcome.problems.is_empty() => {
                if outcome.to > outcome.from {
                    tracing::info!(
                        from = outcome.from,
                        to = outcome.to,
                        ms = started.elapsed().as_millis() as u64,
                        "the new part of the log checked"
                    );
                }
            }
            Ok(Ok(outcome)) => {
                for problem in &outcome.problems {
                    tracing::error!(problem = %problem, "the log failed its integrity check");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "the log could not be checked"),
            Err(e) => tracing::error!(error = %e, "the log check task failed"),
        }
    }
}
