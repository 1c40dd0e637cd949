//! Login, logout, first-run setup, and the guards that decide who sees what.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use chrono::Utc;
use futures_util::TryFutureExt;
use serde::Deserialize;

use super::client_address::client_ip;
use super::forms;
use super::pre_login::PreLogin;
use super::session::TypedSession;
use super::views::{LoginPage, Nav, SetupPage, html, see_other, sentence};
use super::{Account, AppState};
use crate::audit::Actor;
use crate::auth::login::{self, LoginAttempt, LoginOutcome};
use crate::auth::users::{self, ChangedBy, User, UserError};
use crate::auth::{Role, Secret, password};
use crate::error::AppError;
use crate::ids::UserId;

/// Where a login lands when it has nowhere better to go.
pub const DEFAULT_PAGE: &str = "/manage/audit";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(start))
        .service(web::resource("/login").get(login_form).post(login_submit))
        .service(web::resource("/logout").post(logout))
        .service(web::resource("/setup").get(setup_form).post(setup_submit));
}

/// A logged-in, active user, read fresh from the database on every request.
pub struct SignedIn {
    pub user: User,
    pub session: TypedSession,
}

impl SignedIn {
    /// The header's logged-in part.
    pub fn nav(&self) -> Result<Nav, AppError> {
        Ok(Nav {
            username: self.user.username.clone(),
            role_label: self.user.role.label(),
            can_read_audit: self.user.role.can_read_audit(),
            can_manage_users: self.user.role.can_manage_users(),
            csrf_token: self.session.csrf_token()?,
        })
    }

    /// Who made a change, for the audit log.
    pub fn changed_by(&self, req: &HttpRequest) -> ChangedBy {
        ChangedBy {
            actor: Actor {
                username: self.user.username.clone(),
                email: self.user.email.clone(),
            },
            ip: client_ip(req),
            user_agent: user_agent(req),
        }
    }
}

/// The path and query of the request, for `?next=`.
fn requested_path(req: &HttpRequest) -> String {
    match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => req.path().to_owned(),
    }
}

async fn signed_in(req: HttpRequest) -> Result<SignedIn, AppError> {
    let session = TypedSession::extract(&req)
        .await
        .map_err(|e| AppError::Internal(format!("session: {e}")))?;
    let next = requested_path(&req);
    let Some(user_id) = session.user_id() else {
        return Err(AppError::LoginRequired { next });
    };
    let state = state(&req)?;
    let user = state
        .db(move |conn| Ok::<_, AppError>(users::find_by_id(conn, user_id)?))
        .await?;
    match user {
        Some(user) if !user.suspended => Ok(SignedIn { user, session }),
        _ => {
            session.log_out();
            Err(AppError::LoginRequired { next })
        }
    }
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal("application state missing".into()))
}

impl FromRequest for SignedIn {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(signed_in(req.clone()))
    }
}

/// The signed-in user, if their role passes `allowed`; else a readable 403.
async fn signed_in_as(
    req: HttpRequest,
    allowed: fn(Role) -> bool,
    refusal: &'static str,
) -> Result<SignedIn, AppError> {
    let who = signed_in(req).await?;
    if allowed(who.user.role) {
        Ok(who)
    } else {
        Err(AppError::Forbidden {
            nav: who.nav().ok(),
            message: refusal.into(),
        })
    }
}

/// A logged-in Site Manager or Auditor: may read Manage > Audit.
pub struct AuditReader(pub SignedIn);

impl FromRequest for AuditReader {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(
            signed_in_as(
                req.clone(),
                Role::can_read_audit,
                "The audit log is open to Site Managers and Auditors only. Ask a Site Manager if you need access.",
            )
            .map_ok(AuditReader),
        )
    }
}

/// A logged-in Site Manager: may manage users and API tokens.
pub struct SiteManager(pub SignedIn);

impl FromRequest for SiteManager {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(
            signed_in_as(
                req.clone(),
                Role::can_manage_users,
                "Managing users, API tokens and streams is open to Site Managers only.",
            )
            .map_ok(SiteManager),
        )
    }
}

/// The request's User-Agent header, or empty. Our own record of a header, so a
/// freakishly long one is cut to the event's limit rather than failing the event.
pub fn user_agent(req: &HttpRequest) -> String {
    // As sent, control characters and non-ASCII included (`to_str` would drop
    // a header with any byte outside visible ASCII); bytes that are not UTF-8
    // cannot be text and become U+FFFD. Cut to the event's limit, since a
    // recorded login must not fail on its header; NUL (which no event can
    // hold) becomes U+FFFD too.
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).replace('\0', "\u{fffd}"))
        .unwrap_or_default();
    let mut end = ua.len().min(crate::audit::event::limits::USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    ua[..end].to_owned()
}

/// Accepts `next` only as a path on this site: `/x`, never `//host`, `/\host`,
/// `https://...` or anything with a backslash or control character.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2048 =>
        {
            n.to_owned()
        }
        _ => DEFAULT_PAGE.to_owned(),
    }
}

async fn start(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let any = state
        .db(|conn| Ok::<_, AppError>(users::any_exist(conn)?))
        .await?;
    Ok(see_other(if any { DEFAULT_PAGE } else { "/setup" }))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /login`. Writes nothing: its form's token lives in a signed cookie.
async fn login_form(
    req: HttpRequest,
    session: TypedSession,
    form: PreLogin,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(query.next.as_deref());
    if session.user_id().is_some() && signed_in(req).await.is_ok() {
        return Ok(see_other(&next));
    }
    Ok(form.attach(html(
        StatusCode::OK,
        &LoginPage {
            nav: None,
            active: "",
            csrf_token: form.token(),
            next,
            username: String::new(),
            error: None,
        },
    )))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: Secret,
    #[serde(default)]
    next: String,
}

/// Why the login form is shown again, and how.
struct LoginRefusal {
    status: StatusCode,
    message: String,
    /// Whether the form keeps the name that was typed.
    keep_name: bool,
    /// Seconds until the throttle lets this account and address try again.
    retry_after: Option<i64>,
}

impl LoginRefusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            keep_name: true,
            retry_after: None,
        }
    }
}

impl LoginForm {
    /// What is wrong with the form before anything is tried. Any other name
    /// is tried and its failure recorded: an odd name must not keep an
    /// attempt out of the log.
    fn refusal(&self) -> Option<LoginRefusal> {
        if self.username.trim().is_empty() || self.password.is_empty() {
            return Some(LoginRefusal::new(
                StatusCode::BAD_REQUEST,
                "Enter your username (or email) and your password.",
            ));
        }
        if self.username.len() > crate::audit::event::limits::USERNAME
            || self.username.contains('\0')
        {
            return Some(LoginRefusal {
                keep_name: false,
                ..LoginRefusal::new(
                    StatusCode::BAD_REQUEST,
                    "That username is not valid: at most 256 bytes, without NUL.",
                )
            });
        }
        if self.password.len() > password::MAX_PASSWORD_BYTES {
            return Some(LoginRefusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "That password is longer than {} bytes.",
                    password::MAX_PASSWORD_BYTES
                ),
            ));
        }
        None
    }
}

/// The user who logged in, or why not.
fn login_result(outcome: LoginOutcome) -> Result<UserId, LoginRefusal> {
    match outcome {
        LoginOutcome::Success(user) => Ok(user.id),
        LoginOutcome::BadCredentials => Err(LoginRefusal::new(
            StatusCode::UNAUTHORIZED,
            "Incorrect username or password.",
        )),
        LoginOutcome::Suspended => Err(LoginRefusal::new(
            StatusCode::FORBIDDEN,
            "This account is suspended. Ask a Site Manager to reactivate it.",
        )),
        LoginOutcome::Throttled { until } => {
            // Rounded up: a client that comes back exactly when told is let in.
            let wait = ((until - Utc::now()).num_milliseconds() + 999)
                .div_euclid(1000)
                .max(1);
            Err(LoginRefusal {
                retry_after: Some(wait),
                ..LoginRefusal::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed logins from this address. Try again after {} UTC (in {}).",
                        until.format("%H:%M:%S"),
                        in_words(wait)
                    ),
                )
            })
        }
    }
}

/// A wait as a person says it: "45 seconds", "about 3 minutes".
fn in_words(seconds: i64) -> String {
    let plural = |n: i64| if n == 1 { "" } else { "s" };
    if seconds < 90 {
        format!("{seconds} second{}", plural(seconds))
    } else {
        let minutes = (seconds + 59) / 60;
        format!("about {minutes} minute{}", plural(minutes))
    }
}

/// `POST /login`: check the form, try the credentials, log in or say why not.
async fn login_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    pre_login: PreLogin,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form: LoginForm = forms::read(&pre_login, &body)?;
    let next = safe_next(Some(&form.next));
    let typed = form.username.trim().to_owned();
    let result = match form.refusal() {
        Some(refusal) => Err(refusal),
        None => {
            let attempt = LoginAttempt {
                // As typed: the lookup ignores surrounding spaces, the record keeps them.
                login: form.username,
                password: form.password,
                ip: client_ip(&req),
                user_agent: user_agent(&req),
                known_device: state.device_key.known_device(&state.config, &req),
            };
            let _turn = state.password_turn().await?;
            let outcome = state
                .db({
                    let refusals = state.refusals.clone();
                    move |conn| {
                        Ok::<_, AppError>(login::attempt(conn, &attempt, &refusals, Utc::now())?)
                    }
                })
                .await?;
            login_result(outcome)
        }
    };
    match result {
        Ok(user_id) => {
            session.log_in(user_id)?;
            let mut response = see_other(&next);
            // This browser is now known for this account (see DeviceKey).
            let _ = response.add_cookie(&state.device_key.cookie(&state.config, user_id));
            Ok(response)
        }
        Err(refusal) => login_again(&pre_login, next, typed, refusal),
    }
}

/// The login form again, with what went wrong.
fn login_again(
    form: &PreLogin,
    next: String,
    typed: String,
    refusal: LoginRefusal,
) -> Result<HttpResponse, AppError> {
    let mut response = html(
        refusal.status,
        &LoginPage {
            nav: None,
            active: "",
            csrf_token: form.token(),
            next,
            username: if refusal.keep_name {
                typed
            } else {
                String::new()
            },
            error: Some(refusal.message),
        },
    );
    if let Some(wait) = refusal.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
    }
    Ok(response)
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    forms::check_csrf(&session, &body)?;
    if let Ok(who) = signed_in(req.clone()).await {
        let (ip, ua) = (client_ip(&req), user_agent(&req));
        let user = who.user.clone();
        state
            .db(move |conn| Ok::<_, AppError>(login::record_logout(conn, &user, &ip, &ua)?))
            .await?;
    }
    session.log_out();
    let mut response = see_other("/login");
    // The browser drops what it kept of the logged-in pages (the back/forward
    // cache included), so Back after logout cannot show them.
    response.headers_mut().insert(
        header::HeaderName::from_static("clear-site-data"),
        header::HeaderValue::from_static("\"cache\""),
    );
    Ok(response)
}

async fn setup_open(state: &AppState) -> Result<(), AppError> {
    let any = state
        .db(|conn| Ok::<_, AppError>(users::any_exist(conn)?))
        .await?;
    if any { Err(AppError::NotFound) } else { Ok(()) }
}

/// `GET /setup`. Writes nothing, like the login form.
async fn setup_form(state: web::Data<AppState>, form: PreLogin) -> Result<HttpResponse, AppError> {
    setup_open(&state).await?;
    Ok(form.attach(html(
        StatusCode::OK,
        &SetupPage {
            nav: None,
            active: "",
            csrf_token: form.token(),
            username: String::new(),
            email: String::new(),
            errors: Vec::new(),
        },
    )))
}

#[derive(Deserialize)]
struct SetupForm {
    username: String,
    email: String,
    password: Secret,
    password_confirm: Secret,
}

impl SetupForm {
    /// Every problem of the form, as sentences for the page.
    fn problems(&self, username: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = users::check_username(username) {
            errors.push(e.to_string());
        }
        if let Err(e) = users::normalize_email(&self.email) {
            errors.push(e.to_string());
        }
        if let Err(e) =
            password::check_new_password(self.password.expose(), &[username, &self.email])
        {
            errors.push(sentence(&e.to_string()));
        } else if self.password != self.password_confirm {
            errors.push("The two passwords differ.".into());
        }
        errors
    }
}

/// The setup form again, with its problems.
fn setup_again(
    form: &PreLogin,
    username: &str,
    email: &str,
    errors: Vec<String>,
) -> Result<HttpResponse, AppError> {
    Ok(html(
        StatusCode::BAD_REQUEST,
        &SetupPage {
            nav: None,
            active: "",
            csrf_token: form.token(),
            username: username.to_owned(),
            email: email.to_owned(),
            errors,
        },
    ))
}

/// `POST /setup`: the first Site Manager, while no user exists.
async fn setup_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    pre_login: PreLogin,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    setup_open(&state).await?;
    let form: SetupForm = forms::read(&pre_login, &body)?;
    let username = form.username.trim().to_owned();
    let again = |errors: Vec<String>| setup_again(&pre_login, &username, &form.email, errors);
    let errors = form.problems(&username);
    if !errors.is_empty() {
        return again(errors);
    }
    let by = ChangedBy {
        actor: Actor {
            username: username.clone(),
            email: form.email.trim().to_lowercase(),
        },
        ip: client_ip(&req),
        user_agent: user_agent(&req),
    };
    let account = Account {
        username: username.clone(),
        email: form.email.clone(),
        role: Role::SiteManager,
        password: form.password.clone(),
    };
    let created = state
        .create_account(account, by, users::create_first)
        .await?;
    match created {
        Ok(user) => {
            session.log_in(user.id)?;
            Ok(see_other(DEFAULT_PAGE))
        }
        Err(UserError::SetupDone) => Err(AppError::NotFound),
        Err(UserError::Db(e)) => Err(e.into()),
        Err(other) => again(vec![other.to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_only_paths_on_this_site() {
        assert_eq!(
            safe_next(Some("/manage/audit?action=login")),
            "/manage/audit?action=login"
        );
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/a b",
            "/\t/evil",
        ] {
            assert_eq!(safe_next(Some(bad)), DEFAULT_PAGE, "{bad:?}");
        }
        assert_eq!(safe_next(None), DEFAULT_PAGE);
    }
}
