//! Manage > Users: the accounts, for Site Managers.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::AppState;
use super::auth::SiteManager;
use super::views::{Nav, html};
use crate::auth::users;
use crate::error::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/manage/users", web::get().to(page));
}

struct UserView {
    username: String,
    email: String,
    role: &'static str,
    suspended: bool,
    last_login: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    users: Vec<UserView>,
}

async fn page(manager: SiteManager, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let list = state
        .db(|conn| Ok::<_, AppError>(users::list(conn)?))
        .await?;
    let users = list
        .into_iter()
        .map(|u| UserView {
            username: u.username,
            email: u.email,
            role: u.role.label(),
            suspended: u.suspended,
            last_login: u.last_login_at.map_or_else(
                || "never".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M").to_string(),
            ),
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &UsersPage {
            nav: Some(manager.0.nav()?),
            active: "users",
            users,
        },
    ))
}
