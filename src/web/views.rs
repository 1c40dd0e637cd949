//! The askama view structs: each holds exactly what its page shows.

use askama::Template;

/// The logged-in part of the header: who, their role, the Manage links, and the
/// logout form's CSRF token.
#[derive(Debug, Clone)]
pub struct Nav {
    pub username: String,
    pub role_label: &'static str,
    pub can_read_audit: bool,
    pub can_manage_users: bool,
    pub csrf_token: String,
}

/// 400, 403, 404, 500 and 503 pages, inside the layout.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub nav: Option<Nav>,
    pub active: &'a str,
    pub status: u16,
    pub heading: &'a str,
    pub message: &'a str,
    pub link: Option<(String, String)>,
    /// Shown on a failure of ours (500, 503), for the person to quote.
    pub request_id: Option<String>,
}

/// The login form.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub nav: Option<Nav>,
    pub active: &'a str,
    pub csrf_token: String,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
}

/// The first-run form that creates the first Site Manager.
#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage<'a> {
    pub nav: Option<Nav>,
    pub active: &'a str,
    pub csrf_token: String,
    pub username: String,
    pub email: String,
    pub errors: Vec<String>,
}

/// Renders a page as an HTML response with `status`.
pub fn html(status: actix_web::http::StatusCode, page: &impl Template) -> actix_web::HttpResponse {
    match page.render() {
        Ok(body) => actix_web::HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        // Templates are checked when compiled; should one still fail, a plain
        // 500 (the error page is a template too).
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            actix_web::HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("500 Internal Server Error: the page could not be drawn; this was logged.")
        }
    }
}

/// A message as a sentence on a page: capital first letter, full stop.
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// A 303 to `location`: after a POST, or to the login page.
pub fn see_other(location: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}
