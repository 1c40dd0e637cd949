//! Manage > Streams: where events are forwarded, and how each stream is
//! doing. Site Managers add, pause, resume and remove streams; Auditors see
//! them. Every change goes through the same audited domain functions as
//! `auditdesk stream ...`, with the logged-in Site Manager as the actor.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::auth::{AuditReader, SignedIn, SiteManager};
use super::forms;
use super::shown::Shown;
use super::views::{Nav, html, see_other, sentence};
use crate::audit::filter::{Param, RawQuery};
use crate::auth::Secret;
use crate::error::AppError;
use crate::streams::{self, Health, NewStream, Stream, StreamError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/manage/streams").get(page).post(add))
        .service(web::resource("/manage/streams/{id}/{change:pause|resume|remove}").post(change));
}

struct StreamView {
    id: i64,
    name: Shown,
    kind: &'static str,
    target: Shown,
    signed: bool,
    filter: Shown,
    state: &'static str,
    badge: &'static str,
    detail: Option<Shown>,
    /// Paused or failing: offered Resume rather than Pause.
    resumable: bool,
    delivered: i64,
    last_delivered: String,
    behind: i64,
}

/// A time as the page shows it: to the second, UTC.
fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A stored filter as `key: value` pairs (`search: action:delete`), its
/// query-string encoding undone.
fn readable(filter: &str) -> String {
    url::form_urlencoded::parse(filter.as_bytes())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn view(s: Stream, log_end: i64) -> StreamView {
    let (badge, detail) = match &s.health {
        Health::Delivering => ("ok", None),
        Health::Paused => ("muted", None),
        Health::Retrying { since, error } => {
            ("warn", Some(format!("since {} UTC: {error}", when(*since))))
        }
        Health::Failing { since, error } => (
            "bad",
            Some(format!(
                "since {} UTC: {error}; resume to try again",
                when(*since)
            )),
        ),
    };
    StreamView {
        id: s.id,
        kind: s.destination.kind(),
        target: Shown::new(s.destination.shown()),
        signed: s.has_secret,
        filter: Shown::new(readable(&s.filter)),
        state: s.health.word(),
        badge,
        detail: detail.map(Shown::new),
        resumable: matches!(s.health, Health::Paused | Health::Failing { .. }),
        delivered: s.delivered,
        last_delivered: s
            .last_delivered_time
            .map_or_else(|| "never".to_owned(), when),
        behind: s.behind(log_end),
        name: Shown::new(s.name),
    }
}

/// What the add form held, shown again with an error.
#[derive(Default)]
struct FormValues {
    name: String,
    kind: String,
    target: String,
    search: String,
}

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    csrf_token: String,
    can_manage: bool,
    streams: Vec<StreamView>,
    flash: Option<String>,
    error: Option<String>,
    form: FormValues,
}

async fn render(
    who: &SignedIn,
    state: &AppState,
    status: StatusCode,
    flash: Option<String>,
    error: Option<String>,
    form: FormValues,
) -> Result<HttpResponse, AppError> {
    let (list, end) = state
        .db(|conn| Ok::<_, StreamError>((streams::list(conn)?, streams::log_end(conn)?)))
        .await
        .map_err(internal)?;
    Ok(html(
        status,
        &StreamsPage {
            nav: Some(who.nav()?),
            active: "streams",
            csrf_token: who.session.csrf_token()?,
            can_manage: who.user.role.can_manage_users(),
            streams: list.into_iter().map(|s| view(s, end)).collect(),
            flash,
            error,
            form,
        },
    ))
}

/// A stream error that is not the user's doing.
fn internal(e: StreamError) -> AppError {
    match e {
        StreamError::Db(db) => db.into(),
        other => AppError::Internal(other.to_string()),
    }
}

async fn page(reader: AuditReader, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let flash = reader.0.session.take_flash();
    render(
        &reader.0,
        &state,
        StatusCode::OK,
        flash,
        None,
        FormValues::default(),
    )
    .await
}

/// A refused change: the page again, with the reason, as a 400 (or 404).
async fn refused(
    who: &SignedIn,
    state: &AppState,
    e: StreamError,
    form: FormValues,
) -> Result<HttpResponse, AppError> {
    let status = match e {
        StreamError::Db(db) => return Err(db.into()),
        StreamError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let error = Some(sentence(&e.to_string()));
    render(who, state, status, None, error, form).await
}

fn done(who: &SignedIn, note: String) -> Result<HttpResponse, AppError> {
    who.session.set_flash(&note)?;
    Ok(see_other("/manage/streams"))
}

#[derive(Deserialize)]
struct AddForm {
    name: String,
    kind: String,
    target: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    search: String,
}

async fn add(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    let form: AddForm = forms::read(&m.session, &body)?;
    let values = FormValues {
        name: form.name.clone(),
        kind: form.kind.clone(),
        target: form.target.clone(),
        search: form.search.clone(),
    };
    let by = m.changed_by(&req);
    let result = state
        .db(move |conn| {
            let mut filters = RawQuery::default();
            if !form.search.trim().is_empty() {
                filters.set(Param::Search, form.search.clone());
            }
            let secret = (!form.secret.is_empty()).then(|| Secret::new(form.secret.clone()));
            let new = NewStream {
                name: &form.name,
                kind: &form.kind,
                target: form.target.trim(),
                secret,
                filters: &filters,
            };
            Ok::<_, crate::db::DbError>(streams::add(conn, new, &by))
        })
        .await?;
    match result {
        Ok(s) => done(
            m,
            format!(
                "Added stream {} to {}; it starts from the first event.",
                s.name,
                s.destination.shown()
            ),
        ),
        Err(e) => refused(m, &state, e, values).await,
    }
}

async fn change(
    manager: SiteManager,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let m = &manager.0;
    forms::check_csrf(&m.session, &body)?;
    let (id, what) = path.into_inner();
    let by = m.changed_by(&req);
    let verb = what.clone();
    let result = state
        .db(move |conn| {
            Ok::<_, crate::db::DbError>(match verb.as_str() {
                "remove" => streams::remove(conn, id, &by),
                "pause" => streams::set_paused(conn, id, true, &by),
                _ => streams::set_paused(conn, id, false, &by),
            })
        })
        .await?;
    match result {
        Ok(s) => {
            let note = match what.as_str() {
                "remove" => format!("Removed stream {}.", s.name),
                _ => format!("Stream {} is {}.", s.name, s.health.word()),
            };
            done(m, note)
        }
        Err(e) => refused(m, &state, e, FormValues::default()).await,
    }
}
