//! HTTP as clients expect it, and as an attacker cannot bend it: `HEAD` for
//! every `GET`, 405 with `Allow` for a known address and a wrong method,
//! problem+json for every error under `/api/`, and no state-changing request
//! that another site started (OWASP CSRF cheat sheet: Fetch Metadata and
//! `Origin`, as a second line behind the CSRF token).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};

use super::AppState;
use super::api::Problem;
use crate::error::AppError;

/// Whether a path belongs to the JSON API, whose errors are problem+json.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Marks a request that came as `HEAD` and is served as `GET`: a handler
/// whose GET does work beyond answering (an export) checks for it.
#[derive(Debug, Clone, Copy)]
pub struct AskedWithHead;

/// Serves `HEAD` as `GET` (the server sends the headers without the body),
/// and gives a 405 its page or problem, with `HEAD` named in `Allow`
/// wherever `GET` is.
pub async fn methods(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let method = req.method().clone();
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(AskedWithHead);
    }
    let api = is_api(req.path());
    let res = next.call(req).await?;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED {
        return Ok(res.map_into_boxed_body());
    }
    let mut allowed: Vec<String> = res
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    if allowed.iter().any(|m| m == "GET") && !allowed.iter().any(|m| m == "HEAD") {
        allowed.push("HEAD".into());
    }
    let allow = allowed.join(", ");
    let message = format!("This address does not take {method} requests; it takes {allow}.");
    let mut response = if api {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            message,
        )
        .error_response()
    } else {
        AppError::MethodNotAllowed(message).error_response()
    };
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, response))
}

/// Why a state-changing request is taken to come from another site, if it is.
///
/// A browser that sends `Sec-Fetch-Site` (every current one) is believed on
/// it alone: it knows where the request began, even behind a proxy that
/// rewrites `Host`. Only without it is `Origin` compared with this site.
fn cross_site(req: &ServiceRequest) -> Option<String> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        // `none`: the user typed or bookmarked it; `same-origin`: our own page.
        return (!matches!(site, "same-origin" | "none"))
            .then(|| format!("the browser says it came from a {site} page"));
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("?");
    let expected = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.config.public_url.as_deref().and_then(origin_of));
    let same = match expected {
        Some(ours) => origin.eq_ignore_ascii_case(&ours),
        // Without a configured public URL, this host as the client named it.
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| Some(authority) == host)
        }
    };
    (!same).then(|| format!("it came from {origin}"))
}

/// `scheme://host[:port]` of a URL, the form of an `Origin` header.
fn origin_of(public_url: &str) -> Option<String> {
    let url = url::Url::parse(public_url).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Refuses, with a 403 whatever its token, a state-changing request that a
/// browser says another site started. Requests without `Origin` and
/// `Sec-Fetch-Site` (older browsers, scripts, the API's services) go on to
/// the CSRF token or the bearer token.
pub async fn same_origin_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let Some(why) = (!safe).then(|| cross_site(&req)).flatten() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    tracing::warn!(reason = %why, "refused a cross-site request");
    let message = format!("This request was refused because {why}; nothing was changed.");
    let response: HttpResponse = if is_api(req.path()) {
        Problem::new(StatusCode::FORBIDDEN, "Forbidden", message).error_response()
    } else {
        AppError::CrossSite(message).error_response()
    };
    Ok(req.into_response(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_has_the_origin_a_browser_sends() {
        assert_eq!(
            origin_of("https://Audit.Example.com/base/").as_deref(),
            Some("https://audit.example.com")
        );
        assert_eq!(
            origin_of("https://audit.example.com:443").as_deref(),
            Some("https://audit.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
