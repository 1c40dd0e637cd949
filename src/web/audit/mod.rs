//! Manage > Audit: the audit log page, its export and its suggestions.

mod view;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::AppState;
use super::auth::AuditReader;
use super::views::html;
use crate::audit::export::{ExportRequest, export as run_export, record_export};
use crate::audit::filter::{AuditQuery, QueryParams, SuggestionQuery, encode_query};
use crate::audit::query::fetch_page;
use crate::error::AppError;
use view::{AuditPage, Loaded, PageRequest};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/manage/audit").get(page))
        .service(web::resource("/manage/audit/export").get(export))
        .service(web::resource("/manage/audit/suggestions").get(suggestions));
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
    let params = QueryParams::parse_taking(req.query_string(), &[], &["field", "q"]);
    let mut problems = params.problem_lines("suggestions take only field and q");
    let query = SuggestionQuery::parse(params.extra("field"), params.extra("q"))
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let Some(query) = query.filter(|_| problems.is_empty()) else {
        return Err(bad_request(&problems));
    };
    let field = query.field.name();
    let values = state
        .db(move |conn| crate::audit::query::suggestions(conn, &query))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "field": field, "values": values })))
}

/// `GET /manage/audit/export?format=csv|ndjson|coder-json&<filters>`: every
/// matching event, streamed as it is read.
///
/// A bounded number of exports run at once (`serve --max-exports`); one more
/// is answered 503 with `Retry-After` before any byte. Each holds its turn
/// and a database connection of its own from before the 200 until its last
/// byte, so a started export is never cut off for want of a connection, and
/// the pages keep the pool's.
async fn export(
    reader: AuditReader,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let request =
        ExportRequest::parse(req.query_string()).map_err(|problems| bad_request(&problems))?;
    let (format, bom) = (request.format, request.bom);
    let download = || {
        let mut response = HttpResponse::Ok();
        response.content_type(format.content_type()).insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}\"",
                format.file_name(chrono::Utc::now())
            ),
        ));
        response
    };
    // HEAD asks what a download would be, not for one: nothing is exported
    // or recorded.
    if req
        .extensions()
        .contains::<crate::web::http_rules::AskedWithHead>()
    {
        return Ok(download().finish());
    }
    let turn = export_turn(&state).await?;
    let who = reader.0.changed_by(&req);
    let filter_text = encode_query(&request.query.filter_pairs());
    let database = state.database.clone();
    // A connection of its own, beside the pool (sharing its queue of SQLite
    // writers); the export is on record before the first byte leaves.
    let conn = web::block(move || {
        let mut conn = database.connect_one()?;
        let (ip, ua) = (&who.ip, &who.user_agent);
        record_export(&mut conn, &who.actor, ip, ua, format, &filter_text)?;
        Ok::<_, AppError>(conn)
    })
    .await
    .map_err(|e| AppError::Internal(format!("the export task failed: {e}")))??;

    Ok(download().streaming(stream_export(conn, turn, request.query.filter, format, bom)))
}

/// A turn at exporting, waited for as long as a request waits for a
/// database connection; then a 503 that says when to come back.
async fn export_turn(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
    let waited = tokio::time::timeout(
        crate::db::CONNECTION_WAIT,
        state.exports.clone().acquire_owned(),
    )
    .await;
    match waited {
        Ok(Ok(turn)) => Ok(turn),
        Ok(Err(closed)) => Err(AppError::Internal(format!("export limiter: {closed}"))),
        Err(_) => Err(AppError::Busy(match state.config.max_exports {
            1 => "This server runs one export at a time, and one is running now. Nothing was exported; try again in a few seconds.".into(),
            n => format!("This server runs at most {n} exports at once, and {n} are running now. Nothing was exported; try again in a few seconds."),
        })),
    }
}

/// How long an export waits for its client to take the next page before
/// it gives up its turn and its connection: a client that stops reading
/// without closing must not hold them for ever.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Every event of `filter`, read on a blocking thread page by page and sent
/// as it is encoded; the reading stops when the client goes away or reads
/// nothing for [`EXPORT_STALL`]. `conn` and `turn` are held until then.
fn stream_export(
    mut conn: crate::db::DbConn,
    turn: tokio::sync::OwnedSemaphorePermit,
    filter: crate::audit::filter::Filter,
    format: crate::audit::export::Format,
    bom: bool,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    // The worker's runtime drives the timer of the wait below.
    let runtime = tokio::runtime::Handle::current();
    actix_web::rt::task::spawn_blocking(move || {
        let _turn = turn;
        // Sending fails once the client has gone: that stops the work.
        let sent = run_export(&mut conn, &filter, format, bom, |chunk| {
            let send = tx.send(Ok(web::Bytes::from(chunk)));
            match runtime.block_on(tokio::time::timeout(EXPORT_STALL, send)) {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    tracing::warn!("export stopped: its client read nothing for 60 s");
                    false
                }
            }
        });
        if let Err(e) = sent {
            tracing::error!(error = %e, "export failed part-way");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        drop(conn);
        crate::memory::release_freed();
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// `GET /manage/audit`: parse the address, load the page, render it.
async fn page(
    reader: AuditReader,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let request = PageRequest::parse(req.query_string());
    let loaded = load(&state, request.query().cloned()).await?;
    let page = AuditPage::new(reader.0.nav()?, request, loaded);
    Ok(html(page.status(), &page))
}

/// The form's choices and, when the query is good, its page and count, in
/// one trip to the database.
async fn load(state: &AppState, query: Option<AuditQuery>) -> Result<Loaded, AppError> {
    let cache = state.page_cache.clone();
    state
        .db(move |conn| {
            let mark = cache.mark(conn)?;
            let choices = cache.choices(conn, &mark)?;
            let page = match &query {
                Some(q) => Some((fetch_page(conn, q)?, cache.count(conn, &q.filter, &mark)?)),
                None => None,
            };
            let checkpoint = crate::db::checkpoints::latest(conn)?;
            let check = crate::db::log_checks::read(conn)?;
            let streams = crate::streams::unhealthy(conn)?;
            Ok::<_, AppError>(Loaded {
                choices,
                page,
                checkpoint,
                check,
                streams,
            })
        })
        .await
}

/// A 400 that lists every problem of the address, in one sentence.
fn bad_request(problems: &[String]) -> AppError {
    AppError::BadRequest(format!("{}.", problems.join("; ")))
}
