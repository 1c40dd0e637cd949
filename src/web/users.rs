//! Manage > Users: accounts and API tokens, for Site Managers. Every change
//! goes through the same audited domain functions as the CLI, with the logged-in
//! Site Manager as the actor.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::auth::{SignedIn, SiteManager};
use super::forms;
use super::shown::Shown;
use super::views::{Nav, html, see_other, sentence};
use super::{Account, AppState};
use crate::auth::password::check_new_password;
use crate::auth::tokens::{self, Scope, TokenError};
use crate::auth::users::{self, User, UserError};
use crate::auth::{Role, Secret};
use crate::error::AppError;
use crate::ids::TokenId;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/manage/users").get(page).post(add_user))
        .service(web::resource("/manage/users/tokens").post(create_token))
        .service(web::resource("/manage/users/tokens/{id}/revoke").post(revoke_token))
        .service(web::resource("/manage/users/{username}/role").post(set_role))
        .service(
            web::resource("/manage/users/{username}/{change:suspend|reactivate}")
                .post(change_suspension),
        )
        .service(web::resource("/manage/users/{username}/password").post(reset_password));
}

struct UserView {
    username: String,
    email: Shown,
    role: &'static str,
    suspended: bool,
    last_login: String,
}

struct TokenView {
    id: TokenId,
    name: Shown,
    scope: &'static str,
    created_by: Shown,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    csrf_token: String,
    users: Vec<UserView>,
    tokens: Vec<TokenView>,
    roles: Vec<(&'static str, &'static str)>,
    flash: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    form_username: String,
    form_email: String,
}

/// What the page shows besides the lists.
#[derive(Default)]
struct Extras {
    flash: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    form_username: String,
    form_email: String,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            username: u.username,
            email: Shown::new(u.email),
            role: u.role.as_str(),
            suspended: u.suspended,
            last_login: u.last_login_at.map_or_else(|| "never".to_owned(), when),
        }
    }
}

impl From<tokens::Token> for TokenView {
    fn from(t: tokens::Token) -> Self {
        Self {
            id: t.id,
            name: Shown::new(t.name),
            scope: t.scope.as_str(),
            created_by: Shown::new(t.created_by),
            created: when(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), when),
            revoked: t.revoked_at.map(when),
        }
    }
}

async fn render(
    manager: &SignedIn,
    state: &AppState,
    status: StatusCode,
    extras: Extras,
) -> Result<HttpResponse, AppError> {
    let (user_list, token_list) = state
        .db(|conn| Ok::<_, AppError>((users::list(conn)?, tokens::list(conn)?)))
        .await?;
    Ok(html(
        status,
        &UsersPage {
            nav: Some(manager.nav()?),
            active: "users",
            csrf_token: manager.session.csrf_token()?,
            users: user_list.into_iter().map(UserView::from).collect(),
            tokens: token_list.into_iter().map(TokenView::from).collect(),
            roles: Role::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
            flash: extras.flash,
            error: extras.error,
            new_token: extras.new_token,
            form_username: extras.form_username,
            form_email: extras.form_email,
        },
    ))
}

async fn page(manager: SiteManager, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let flash = manager.0.session.take_flash();
    render(
        &manager.0,
        &state,
        StatusCode::OK,
        Extras {
            flash,
            ..Extras::default()
        },
    )
    .await
}

/// After a change: back to the page (POST, redirect, GET) with a note.
fn done(manager: &SignedIn, note: String) -> Result<HttpResponse, AppError> {
    manager.session.set_flash(&note)?;
    Ok(see_other("/manage/users"))
}

/// The page again with `message` as its error, answering `status`.
async fn show_error(
    manager: &SignedIn,
    state: &AppState,
    status: StatusCode,
    message: &str,
    extras: Extras,
) -> Result<HttpResponse, AppError> {
    let error = Some(sentence(message));
    render(manager, state, status, Extras { error, ..extras }).await
}

/// A refused change: the page again, with the reason, as a 400 (or 404).
async fn refused(
    manager: &SignedIn,
    state: &AppState,
    e: UserError,
    extras: Extras,
) -> Result<HttpResponse, AppError> {
    let status = match e {
        UserError::Db(db) => return Err(db.into()),
        UserError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    show_error(manager, state, status, &e.to_string(), extras).await
}

/// A refused token change, like [`refused`].
async fn token_refused(
    manager: &SignedIn,
    state: &AppState,
    e: TokenError,
) -> Result<HttpResponse, AppError> {
    let status = match e {
        TokenError::Db(db) => return Err(db.into()),
        TokenError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    show_error(manager, state, status, &e.to_string(), Extras::default()).await
}

#[derive(Deserialize)]
struct AddUserForm {
    username: String,
    email: String,
    role: String,
    password: Secret,
}

async fn add_user(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    let form: AddUserForm = forms::read(&m.session, &body)?;
    let extras = || Extras {
        form_username: form.username.clone(),
        form_email: form.email.clone(),
        ..Extras::default()
    };
    let role: Role = match form.role.parse() {
        Ok(r) => r,
        Err(e) => {
            return show_error(m, &state, StatusCode::BAD_REQUEST, &e.to_string(), extras()).await;
        }
    };
    let username = form.username.trim().to_owned();
    if let Err(e) = users::check_new_user(&username, &form.email, form.password.expose()) {
        return refused(m, &state, e, extras()).await;
    }
    let account = Account {
        username,
        email: form.email.clone(),
        role,
        password: form.password.clone(),
    };
    match state
        .create_account(account, m.changed_by(&req), users::create)
        .await?
    {
        Ok(user) => done(
            m,
            format!(
                "Created {} ({}) as {}.",
                user.username,
                user.email,
                user.role.label()
            ),
        ),
        Err(e) => refused(m, &state, e, extras()).await,
    }
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

async fn set_role(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    let form: RoleForm = forms::read(&m.session, &body)?;
    let role: Role = match form.role.parse() {
        Ok(r) => r,
        Err(e) => {
            return show_error(
                m,
                &state,
                StatusCode::BAD_REQUEST,
                &e.to_string(),
                Extras::default(),
            )
            .await;
        }
    };
    let username = path.into_inner();
    let by = m.changed_by(&req);
    let name = username.clone();
    let result = state
        .db(move |conn| Ok::<_, AppError>(users::set_role(conn, &name, role, &by)))
        .await?;
    match result {
        Ok(before) if before.role == role => {
            done(m, format!("{username} already is {}.", role.label()))
        }
        Ok(before) => done(
            m,
            format!(
                "{username}: {} → {}; their sessions have ended.",
                before.role.label(),
                role.label()
            ),
        ),
        Err(e) => refused(m, &state, e, Extras::default()).await,
    }
}

/// `POST /manage/users/{username}/suspend` and `.../reactivate`.
async fn change_suspension(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    forms::check_csrf(&m.session, &body)?;
    let (username, verb) = path.into_inner();
    let suspend = match verb.as_str() {
        "suspend" => true,
        "reactivate" => false,
        _ => return Err(AppError::NotFound),
    };
    let by = m.changed_by(&req);
    let name = username.clone();
    let result = state
        .db(move |conn| Ok::<_, AppError>(users::set_suspended(conn, &name, suspend, &by)))
        .await?;
    match result {
        Ok(_) if suspend => done(
            m,
            format!("{username} is suspended; their sessions have ended."),
        ),
        Ok(_) => done(m, format!("{username} is active again.")),
        Err(e) => refused(m, &state, e, Extras::default()).await,
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    password: Secret,
}

async fn reset_password(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    let form: PasswordForm = forms::read(&m.session, &body)?;
    let username = path.into_inner();
    let name = username.clone();
    let found = state
        .db(move |conn| Ok::<_, AppError>(users::load(conn, &name)))
        .await?;
    let checked = found.and_then(|user| {
        check_new_password(form.password.expose(), &[&user.username, &user.email])
            .map_err(UserError::WeakPassword)
    });
    if let Err(e) = checked {
        return refused(m, &state, e, Extras::default()).await;
    }
    let hash = state.hash_password(form.password).await?;
    let by = m.changed_by(&req);
    let name = username.clone();
    let result = state
        .db(move |conn| Ok::<_, AppError>(users::reset_password(conn, &name, &hash, &by)))
        .await?;
    match result {
        Ok(_) => done(
            m,
            format!("{username} has a new password; their sessions have ended."),
        ),
        Err(e) => refused(m, &state, e, Extras::default()).await,
    }
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
    scope: String,
}

async fn create_token(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    let form: TokenForm = forms::read(&m.session, &body)?;
    let scope: Scope = match form.scope.parse() {
        Ok(s) => s,
        Err(e) => {
            return show_error(m, &state, StatusCode::BAD_REQUEST, &e, Extras::default()).await;
        }
    };
    let by = m.changed_by(&req);
    let name = form.name.clone();
    let created = state
        .db(move |conn| Ok::<_, AppError>(tokens::create(conn, &name, scope, &by)))
        .await?;
    match created {
        // Shown on this response only: the secret is not stored anywhere.
        Ok((_, secret)) => {
            render(
                m,
                &state,
                StatusCode::OK,
                Extras {
                    new_token: Some(secret.expose().to_owned()),
                    ..Extras::default()
                },
            )
            .await
        }
        Err(e) => token_refused(m, &state, e).await,
    }
}

async fn revoke_token(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    forms::check_csrf(&m.session, &body)?;
    let Ok(id) = path.into_inner().parse::<i64>().map(TokenId) else {
        return Err(AppError::NotFound);
    };
    let by = m.changed_by(&req);
    let result = state
        .db(move |conn| Ok::<_, AppError>(tokens::revoke(conn, id, &by)))
        .await?;
    match result {
        Ok(t) => done(
            m,
            format!(
                "Revoked API token {} '{}'; it no longer works.",
                t.id, t.name
            ),
        ),
        Err(e) => token_refused(m, &state, e).await,
    }
}
