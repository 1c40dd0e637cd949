//! `/healthz` (the process is up) and `/readyz` (the database answers).

use std::time::Duration;

use actix_web::{HttpResponse, web};

use super::AppState;
use crate::db;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.events.is_running() {
        tracing::error!("readiness check failed: the event writer has stopped");
        return not_ready("event writer stopped\n");
    }
    let pool = state.pool.clone();
    // A short wait: a load balancer asks often and must get an answer quickly.
    let ready = web::block(move || {
        let mut conn = pool
            .get_timeout(Duration::from_secs(2))
            .map_err(db::DbError::from)?;
        db::ping(&mut conn)
    })
    .await;
    match ready {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            not_ready("database unavailable\n")
        }
        Err(_) => not_ready("database check failed\n"),
    }
}

/// A 503 for the load balancer, saying when to ask again like every 503.
fn not_ready(why: &'static str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((
            actix_web::http::header::RETRY_AFTER,
            crate::error::RETRY_AFTER_SECONDS,
        ))
        .content_type("text/plain; charset=utf-8")
        .body(why)
}
