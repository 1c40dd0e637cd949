//! Manage > Audit: the audit log page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::AppState;
use super::auth::AuditReader;
use super::views::{Nav, html};
use crate::audit::{Event, store};
use crate::error::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/manage/audit", web::get().to(page));
}

/// One value of a diff: as shown (long opaque values shortened) and in full.
pub struct ShownValue {
    pub shown: String,
    pub full: String,
}

/// One row of the Field / Diff table.
pub struct DiffRow {
    pub field: String,
    pub old: Option<ShownValue>,
    pub new: Option<ShownValue>,
    pub secret: bool,
}

/// One event as the page shows it.
pub struct EventView {
    pub time_utc: String,
    pub time_iso: String,
    pub username: String,
    pub email: String,
    pub ip: String,
    pub action: &'static str,
    pub action_help: &'static str,
    pub resource_type: String,
    pub resource_target: String,
    pub resource_id: String,
    pub status_code: u16,
    pub success: bool,
    pub diff: Vec<DiffRow>,
}

/// Shortens a long opaque value (no spaces, over 24 characters) the way the
/// seed shows a client id: `0fb2...7a4a`.
pub fn shorten(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() > 24 && !value.contains(char::is_whitespace) {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}...{tail}")
    } else {
        value.to_owned()
    }
}

fn shown(value: &serde_json::Value) -> ShownValue {
    let full = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    ShownValue {
        shown: shorten(&full),
        full,
    }
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            time_utc: e.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            time_iso: crate::audit::event::format_time(e.time),
            username: e.user.username,
            email: e.user.email,
            ip: e.ip,
            action: e.action.as_str(),
            action_help: e.action.description(),
            resource_type: e.resource_type,
            resource_target: e.resource_target,
            resource_id: e.resource_id,
            status_code: e.status_code,
            success: e.status_code < 400,
            diff: e
                .diff
                .into_iter()
                .map(|(field, c)| DiffRow {
                    field,
                    old: c.old.as_ref().map(shown),
                    new: c.new.as_ref().map(shown),
                    secret: c.secret,
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    summary: String,
    rows: Vec<EventView>,
}

async fn page(reader: AuditReader, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let events = state
        .db(|conn| store::latest(conn, 50).map_err(|e| AppError::Internal(e.to_string())))
        .await?;
    let summary = match events.len() {
        0 => "no events".to_owned(),
        n => format!("the newest {n} events"),
    };
    Ok(html(
        StatusCode::OK,
        &AuditPage {
            nav: Some(reader.0.nav()?),
            active: "audit",
            summary,
            rows: events.into_iter().map(EventView::from).collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_opaque_values_are_shortened_like_the_seed() {
        assert_eq!(shorten("0fb2c1d3e4f5a6b7c8d9e0f1a2b37a4a"), "0fb2...7a4a");
        assert_eq!(shorten("GitHub"), "GitHub");
        assert_eq!(
            shorten("Maintenance tonight from 9:01PM until 11:30PM"),
            "Maintenance tonight from 9:01PM until 11:30PM"
        );
    }
}
