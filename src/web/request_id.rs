//! A request id for every request: in each log line written while serving it
//! (a tracing span), returned as `X-Request-Id`, and shown on error pages and
//! in problem+json so that a person can quote it and an operator find the lines.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The header that carries the id, in and out.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An id a proxy in front already gave the request is kept when it is a
/// plain token (so that both logs share it); anything else is replaced.
fn given(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(HEADER)?.to_str().ok()?;
    let plain = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| value.to_owned())
}

/// Middleware: gives the request its id, serves it inside a span that
/// carries the id, and answers with `X-Request-Id`.
pub async fn tag(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = given(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    // The path without its query: a filtered address names users and targets.
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    let served = async {
        let res = next.call(req).await;
        let status = match &res {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        tracing::info!(status, ms = started.elapsed().as_millis() as u64, "served");
        res
    };
    let mut res = REQUEST_ID
        .scope(id.clone(), served.instrument(span))
        .await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}
