//! One place that maps failures to status codes and pages.
//!
//! Policy: handlers return `AppError`. Bad input is the user's to fix and gets a
//! 4xx page that says what is wrong; a failure of ours is logged with its cause
//! and answered with a 500 (or 503 when the database is away) that shows no
//! internals. Pages that re-render a form with its errors (login, setup, the
//! audit filters) build their own 400 response instead.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::db::DbError;
use crate::web::views::{ErrorPage, Nav};

/// The `Retry-After` of every 503, in seconds: about the time in which a
/// pool notices that the database is back (its connection wait, see
/// [`crate::db::CONNECTION_WAIT`]).
pub const RETRY_AFTER_SECONDS: u64 = 3;

/// A failure while serving a request.
#[derive(Debug)]
pub enum AppError {
    /// The request is malformed; the message names what is wrong.
    BadRequest(String),
    /// An anonymous visitor asked for a protected page; `next` is where to return.
    LoginRequired { next: String },
    /// Logged in, but the role does not allow this.
    Forbidden { nav: Option<Nav>, message: String },
    /// A form without this session's CSRF token.
    Csrf,
    /// No such page.
    NotFound,
    /// A known address, asked with a method it does not take; the message says which it takes.
    MethodNotAllowed(String),
    /// A state-changing request that another site started; the message says how it shows.
    CrossSite(String),
    /// The database did not answer.
    Unavailable(String),
    /// Too much of one kind of work is running; the message says what.
    Busy(String),
    /// The connection to the database broke while it committed: the change
    /// may or may not have been saved.
    OutcomeUnknown(String),
    /// Something of ours failed; the message is logged, not shown.
    Internal(String),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(m) => write!(f, "bad request: {m}"),
            Self::LoginRequired { next } => write!(f, "login required for {next}"),
            Self::Forbidden { message, .. } => write!(f, "forbidden: {message}"),
            Self::Csrf => f.write_str("missing or invalid CSRF token"),
            Self::NotFound => f.write_str("not found"),
            Self::MethodNotAllowed(m) => write!(f, "method not allowed: {m}"),
            Self::CrossSite(m) => write!(f, "cross-site request: {m}"),
            Self::Unavailable(m) => write!(f, "database unavailable: {m}"),
            Self::OutcomeUnknown(m) => write!(f, "outcome unknown: {m}"),
            Self::Busy(m) => write!(f, "busy: {m}"),
            Self::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl From<crate::audit::store::LoadError> for AppError {
    fn from(e: crate::audit::store::LoadError) -> Self {
        match e {
            crate::audit::store::LoadError::Db(db) => Self::from(db),
            corrupt => Self::Internal(corrupt.to_string()),
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        if matches!(e, DbError::OutcomeUnknown(_)) {
            Self::OutcomeUnknown(e.to_string())
        } else if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// `/login?next=<path>` for a page that needs a login.
pub fn login_url(next: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/login?next={encoded}")
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden { .. } | Self::Csrf | Self::CrossSite(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::OutcomeUnknown(_) | Self::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (nav, heading, message, link): (Option<Nav>, &str, String, Option<(String, String)>) = match self {
            Self::LoginRequired { next } => {
                return crate::web::views::see_other(&login_url(next));
            }
            Self::BadRequest(m) => (None, "Bad request", m.clone(), Some(("/".into(), "Go to the start page".into()))),
            Self::Forbidden { nav, message } => (nav.clone(), "Forbidden", message.clone(), None),
            Self::Csrf => (
                None,
                "Form expired",
                "This form has expired or did not come from this site, so nothing was changed. Go back, reload the page and try again.".into(),
                Some(("/".into(), "Go to the start page".into())),
            ),
            Self::CrossSite(m) => (
                None,
                "Refused: from another site",
                m.clone(),
                Some(("/".into(), "Go to the start page".into())),
            ),
            Self::MethodNotAllowed(m) => (
                None,
                "Method not allowed",
                m.clone(),
                Some(("/".into(), "Go to the start page".into())),
            ),
            Self::NotFound => (
                None,
                "Page not found",
                "There is no page at this address.".into(),
                Some(("/".into(), "Go to the start page".into())),
            ),
            Self::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                (
                    None,
                    "Temporarily unavailable",
                    "The database is not answering right now. Nothing was lost; please try again in a moment.".into(),
                    None,
                )
            }
            Self::Busy(m) => (
                None,
                "Busy",
                m.clone(),
                Some(("/manage/audit".into(), "Back to the audit log".into())),
            ),
            Self::OutcomeUnknown(cause) => {
                tracing::error!(%cause, "the outcome of a commit is unknown");
                (
                    None,
                    "Temporarily unavailable",
                    "The connection to the database was lost while your change was being saved, so it may or may not have been saved. Reload the page in a moment to see which before trying again.".into(),
                    None,
                )
            }
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    None,
                    "Something went wrong",
                    "An unexpected error occurred on our side and has been logged. Please try again.".into(),
                    None,
                )
            }
        };
        let page = ErrorPage {
            nav,
            active: "",
            status: status.as_u16(),
            heading,
            message: &message,
            link,
            request_id: status
                .is_server_error()
                .then(crate::web::request_id::current)
                .flatten(),
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {heading}: {message}", status.as_u16()));
        let mut response = HttpResponse::build(status);
        response.content_type("text/html; charset=utf-8");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        response.body(body)
    }
}
