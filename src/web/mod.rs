//! HTTP only: extractors, handlers, views. No SQL here; database work runs on
//! the blocking pool through [`AppState::db`].

mod health;

use actix_web::{HttpResponse, web};

use crate::config::Config;
use crate::db::{DbConn, DbError, Pool};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Config,
}

impl AppState {
    /// Wraps the pool and configuration.
    pub fn new(pool: Pool, config: Config) -> Self {
        Self { pool, config }
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
        let joined = web::block(move || {
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
}

/// Registers every area's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    cfg.route("/", web::get().to(placeholder));
}

async fn placeholder() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>Auditdesk</title><h1>Auditdesk</h1><p>The audit log is coming.</p>")
}
