//! Manage > Audit: the audit log page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::auth::AuditReader;
use super::shown::Shown;
use super::views::{Nav, html};
use crate::audit::export::{ExportRequest, export as run_export, record_export};
use crate::audit::filter::{
    AuditQuery, DEFAULT_LIMIT, Direction, PAGE_SIZES, ParamError, QueryParams, RawQuery,
    SuggestionQuery, encode_query,
};
use crate::audit::query::{FormChoices, MatchCount, Page, fetch_page};
use crate::audit::{Action, Event};
use crate::error::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/manage/audit", web::get().to(page))
        .route("/manage/audit/export", web::get().to(export))
        .route("/manage/audit/suggestions", web::get().to(suggestions));
}

/// `GET /manage/audit/suggestions?field=user|resource_target&q=TEXT`: the most
/// used users or resource targets whose name contains the text (ignoring case),
/// as `{"field": …, "values": [...]}`. The page's script fills the inputs'
/// suggestion lists from it as the viewer types, so that any of tens of
/// thousands of values can be found while the page carries only a few.
async fn suggestions(
    _reader: AuditReader,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let params = QueryParams::parse(req.query_string(), &["field"]);
    let q = params.raw.q.clone();
    let mut problems: Vec<String> = params
        .unknown
        .iter()
        .cloned()
        .chain(
            crate::audit::filter::FILTER_PARAMS
                .iter()
                .filter(|name| **name != "q" && params.raw.get(name).is_some())
                .map(|name| (*name).to_owned()),
        )
        .map(|name| format!("{name}: suggestions take only field and q"))
        .collect();
    problems.extend(params.errors.iter().map(ToString::to_string));
    let query = SuggestionQuery::parse(params.extra("field"), q.as_deref())
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let Some(query) = query.filter(|_| problems.is_empty()) else {
        return Err(AppError::BadRequest(format!("{}.", problems.join("; "))));
    };
    let field = query.field.name();
    let values = state
        .db(move |conn| crate::audit::query::suggestions(conn, &query))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "field": field, "values": values })))
}

/// `GET /manage/audit/export?format=csv|ndjson|coder-json&<filters>`: every
/// matching event, streamed as it is read.
async fn export(
    reader: AuditReader,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let ExportRequest { format, bom, query } = ExportRequest::parse(req.query_string())
        .map_err(|problems| AppError::BadRequest(format!("{}.", problems.join("; "))))?;
    let who = reader.0.changed_by(&req);
    let filter_text = encode_query(&query.filter_pairs());
    // The export is on record before the first byte leaves.
    state
        .db(move |conn| {
            Ok::<_, AppError>(record_export(
                conn,
                &who.actor,
                &who.ip,
                &who.user_agent,
                format,
                &filter_text,
            )?)
        })
        .await?;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    let pool = state.pool.clone();
    let filter = query.filter;
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn = match pool.get() {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(format!(
                    "database unavailable: {e}"
                ))));
                return;
            }
        };
        // blocking_send fails once the client has gone: that stops the work.
        let sent = run_export(&mut conn, &filter, format, bom, |chunk| {
            tx.blocking_send(Ok(web::Bytes::from(chunk))).is_ok()
        });
        if let Err(e) = sent {
            tracing::error!(error = %e, "export failed part-way");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}\"",
                format.file_name(chrono::Utc::now())
            ),
        ))
        .streaming(body))
}

/// One value of a diff: as shown (long opaque values shortened) and in full.
pub struct ShownValue {
    pub shown: Shown,
    pub full: Shown,
}

/// One row of the Field / Diff table.
pub struct DiffRow {
    pub field: Shown,
    pub old: Option<ShownValue>,
    pub new: Option<ShownValue>,
    pub secret: bool,
    /// A value was shortened for display: the full one is shown beneath.
    pub shortened: bool,
}

/// One event as the page shows it.
pub struct EventView {
    pub time_utc: String,
    pub time_iso: String,
    pub username: Shown,
    pub email: Shown,
    pub ip: String,
    pub action: &'static str,
    pub action_help: &'static str,
    pub resource_type: Shown,
    pub resource_target: Shown,
    pub resource_id: Shown,
    pub status_code: u16,
    pub success: bool,
    pub request_id: Shown,
    pub request_short: Shown,
    pub diff: Vec<DiffRow>,
    /// Links that filter the current view by this row's user, target or request.
    pub user_href: String,
    pub target_href: String,
    pub request_href: String,
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
    let full = crate::audit::visible::value_text(value);
    ShownValue {
        shown: Shown::new(shorten(&full)),
        full: Shown::new(full),
    }
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            time_utc: e.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            time_iso: crate::audit::event::format_time(e.time),
            username: Shown::new(e.user.username),
            email: Shown::new(e.user.email),
            ip: e.ip,
            action: e.action.as_str(),
            action_help: e.action.description(),
            resource_type: Shown::new(e.resource_type),
            resource_target: Shown::new(e.resource_target),
            resource_id: Shown::new(e.resource_id),
            status_code: e.status_code,
            success: e.status_code < 400,
            request_short: Shown::new(e.request_id.chars().take(8).collect::<String>()),
            request_id: Shown::new(e.request_id),
            diff: e
                .diff
                .into_iter()
                .map(|(field, c)| {
                    let old = c.old.as_ref().map(shown);
                    let new = c.new.as_ref().map(shown);
                    let shortened = [&old, &new]
                        .into_iter()
                        .flatten()
                        .any(|v| v.shown.exact != v.full.exact);
                    DiffRow {
                        field: Shown::new(field),
                        old,
                        new,
                        secret: c.is_secret(),
                        shortened,
                    }
                })
                .collect(),
            user_href: String::new(),
            target_href: String::new(),
            request_href: String::new(),
        }
    }
}

/// A choice in a dropdown.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub help: &'static str,
    pub selected: bool,
}

/// The text fields of the form, as the URL gave them.
#[derive(Default)]
pub struct FormState {
    pub resource_target: String,
    pub user: String,
    pub status: String,
    pub from: String,
    pub to: String,
    pub q: String,
    pub resource_id: String,
    pub request_id: String,
}

/// Problems to show next to their fields.
#[derive(Default)]
pub struct FieldErrors {
    pub resource_type: Option<String>,
    pub action: Option<String>,
    pub resource_target: Option<String>,
    pub user: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub q: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl FieldErrors {
    fn from_params(errors: &[ParamError]) -> Self {
        let mut f = FieldErrors::default();
        for e in errors {
            let slot = match e.param {
                "resource_type" => &mut f.resource_type,
                "action" => &mut f.action,
                "resource_target" => &mut f.resource_target,
                "user" => &mut f.user,
                "resource_id" => &mut f.resource_id,
                "request_id" => &mut f.request_id,
                "status" => &mut f.status,
                "from" => &mut f.from,
                "to" => &mut f.to,
                "q" => &mut f.q,
                "limit" => &mut f.limit,
                _ => &mut f.cursor,
            };
            *slot = Some(e.message.clone());
        }
        f
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    summary: String,
    exports: Vec<(&'static str, String)>,
    general_errors: Vec<String>,
    err: FieldErrors,
    has_errors: bool,
    form: FormState,
    resource_types: Vec<Choice>,
    actions: Vec<Choice>,
    targets: Vec<Shown>,
    users: Vec<Shown>,
    page_sizes: Vec<Choice>,
    from_type: &'static str,
    to_type: &'static str,
    more_open: bool,
    filtered: bool,
    rows: Vec<EventView>,
    newest_href: Option<String>,
    newer_href: Option<String>,
    older_href: Option<String>,
}

/// What the page reads from the database in one trip.
struct Loaded {
    choices: std::sync::Arc<FormChoices>,
    page: Option<(Page, MatchCount)>,
}

fn href(pairs: &[(&str, String)]) -> String {
    let qs = encode_query(pairs);
    if qs.is_empty() {
        "/manage/audit".to_owned()
    } else {
        format!("/manage/audit?{qs}")
    }
}

/// The current view's link with one filter set to `value` (and paging reset).
fn with_filter(base: &[(&'static str, String)], key: &'static str, value: &str) -> String {
    let mut pairs: Vec<(&str, String)> = base.iter().filter(|(k, _)| *k != key).cloned().collect();
    pairs.push((key, value.to_owned()));
    href(&pairs)
}

/// Formats 12345 as "12,345".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn summary(page: &Page, count: MatchCount, first_page: bool) -> String {
    let total = match count {
        MatchCount::Exactly(n) => {
            format!("{} event{}", thousands(n), if n == 1 { "" } else { "s" })
        }
        MatchCount::AtLeast(n) => format!("{}+ events", thousands(n)),
    };
    let shown = page.events.len();
    if shown == 0 {
        return format!("0 of {total}");
    }
    if first_page {
        format!("1–{} of {total}", thousands(shown as i64))
    } else {
        format!("{} shown, of {total}", thousands(shown as i64))
    }
}

fn is_plain_date(s: &str) -> bool {
    s.is_empty() || chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

async fn page(
    reader: AuditReader,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let params = QueryParams::parse(req.query_string(), &[]);
    let general_errors: Vec<String> = params
        .unknown
        .iter()
        .map(|name| {
            format!(
                "The audit page does not take the parameter '{name}'; remove it from the address."
            )
        })
        .collect();
    let raw = params.raw;
    let parsed = match (AuditQuery::parse(&raw), params.errors) {
        (Ok(q), errors) if errors.is_empty() && general_errors.is_empty() => Ok(q),
        (parsed, mut errors) => {
            errors.extend(parsed.err().unwrap_or_default());
            Err(errors)
        }
    };
    let query = parsed.as_ref().ok().cloned();
    let cache = state.page_cache.clone();
    let loaded = state
        .db(move |conn| {
            let mark = cache.mark(conn)?;
            let choices = cache.choices(conn, &mark)?;
            let page = match &query {
                Some(q) => Some((fetch_page(conn, q)?, cache.count(conn, &q.filter, &mark)?)),
                None => None,
            };
            Ok::<_, AppError>(Loaded { choices, page })
        })
        .await?;

    let errors = parsed.as_ref().err().cloned().unwrap_or_default();
    let has_errors = !errors.is_empty() || !general_errors.is_empty();
    let selected = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let exact = |v: &Option<String>| v.clone().unwrap_or_default();
    let chosen_type = exact(&raw.resource_type);
    let mut type_names = loaded.choices.resource_types.clone();
    if !chosen_type.is_empty() && !type_names.contains(&chosen_type) {
        type_names.insert(0, chosen_type.clone());
    }
    let chosen_action = selected(&raw.action);
    let mut actions: Vec<Choice> = Action::ALL
        .iter()
        .map(|a| Choice {
            value: a.as_str().to_owned(),
            label: a.as_str().to_owned(),
            help: a.description(),
            selected: a.as_str() == chosen_action,
        })
        .collect();
    if !chosen_action.is_empty() && !actions.iter().any(|c| c.selected) {
        // Keep an unknown action visible (and marked wrong) rather than dropping it.
        actions.insert(
            0,
            Choice {
                value: chosen_action.clone(),
                label: Shown::new(chosen_action.as_str()).plain(),
                help: "not an action",
                selected: true,
            },
        );
    }
    let limit = query_limit(&parsed, &raw);
    let mut page_sizes: Vec<Choice> = PAGE_SIZES
        .iter()
        .map(|n| Choice {
            value: n.to_string(),
            label: n.to_string(),
            help: "",
            selected: n.to_string() == limit,
        })
        .collect();
    if !page_sizes.iter().any(|c| c.selected) {
        page_sizes.insert(
            0,
            Choice {
                value: limit.clone(),
                label: limit.clone(),
                help: "",
                selected: true,
            },
        );
    }
    let form = FormState {
        resource_target: exact(&raw.resource_target),
        user: exact(&raw.user),
        status: selected(&raw.status),
        from: selected(&raw.from),
        to: selected(&raw.to),
        q: selected(&raw.q),
        resource_id: exact(&raw.resource_id),
        request_id: exact(&raw.request_id),
    };
    let err = FieldErrors::from_params(&errors);
    let more_open = !form.q.is_empty()
        || !form.resource_id.is_empty()
        || !form.request_id.is_empty()
        || err.q.is_some()
        || err.resource_id.is_some()
        || err.request_id.is_some();

    let base = parsed
        .as_ref()
        .map(|q| q.filter_pairs())
        .unwrap_or_default();
    let exports = ["csv", "ndjson", "coder-json"]
        .into_iter()
        .map(|format| {
            let mut pairs: Vec<(&str, String)> = vec![("format", format.to_owned())];
            pairs.extend(base.iter().filter(|(k, _)| *k != "limit").cloned());
            let label = match format {
                "csv" => "CSV",
                "ndjson" => "JSON lines",
                _ => "Coder JSON",
            };
            (
                label,
                format!("/manage/audit/export?{}", encode_query(&pairs)),
            )
        })
        .collect();

    let (rows, summary, newest_href, newer_href, older_href) = match (loaded.page, &parsed) {
        (Some((page, count)), Ok(q)) => {
            let first = q.cursor.is_none()
                || (page.newer.is_none()
                    && q.cursor.is_some_and(|c| c.direction == Direction::Newer));
            let summary = summary(&page, count, q.cursor.is_none());
            let link = |c: &crate::audit::filter::Cursor| {
                let mut pairs = base.clone();
                pairs.push(("cursor", c.to_string()));
                href(&pairs)
            };
            let newest = (!first).then(|| href(&base));
            let newer = page.newer.as_ref().map(link);
            let older = page.older.as_ref().map(link);
            let rows = page
                .events
                .into_iter()
                .map(|e| {
                    let mut view = EventView::from(e);
                    view.user_href = with_filter(&base, "user", &view.username.exact);
                    view.target_href =
                        with_filter(&base, "resource_target", &view.resource_target.exact);
                    view.request_href = with_filter(&base, "request_id", &view.request_id.exact);
                    view
                })
                .collect();
            (rows, summary, newest, newer, older)
        }
        _ => (
            Vec::new(),
            "filters need attention".to_owned(),
            None,
            None,
            None,
        ),
    };
    let filtered = parsed.as_ref().map(|q| q.is_filtered()).unwrap_or(true);
    let status = if has_errors {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(
        status,
        &AuditPage {
            nav: Some(reader.0.nav()?),
            active: "audit",
            summary,
            exports,
            general_errors,
            err,
            has_errors,
            from_type: if is_plain_date(&form.from) {
                "date"
            } else {
                "text"
            },
            to_type: if is_plain_date(&form.to) {
                "date"
            } else {
                "text"
            },
            form,
            resource_types: type_names
                .into_iter()
                .map(|t| Choice {
                    selected: t == chosen_type,
                    label: Shown::new(t.as_str()).plain(),
                    value: t,
                    help: "",
                })
                .collect(),
            actions,
            targets: loaded.choices.targets.iter().map(Shown::from).collect(),
            users: loaded.choices.users.iter().map(Shown::from).collect(),
            page_sizes,
            more_open,
            filtered,
            rows,
            newest_href,
            newer_href,
            older_href,
        },
    ))
}

/// The page size to show as chosen: the parsed one, or what the URL said.
fn query_limit(parsed: &Result<AuditQuery, Vec<ParamError>>, raw: &RawQuery) -> String {
    match parsed {
        Ok(q) => q.limit.to_string(),
        Err(_) => raw
            .limit
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map_or_else(|| DEFAULT_LIMIT.to_string(), str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::{shorten, thousands};

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

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
