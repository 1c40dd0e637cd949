//! The JSON API for programs (CONTRACT.md): `POST /api/v1/audit-logs` with an
//! `ingest` token, `GET /api/v1/audit-logs` with a `read` token. Every error is
//! `application/problem+json` (RFC 9457) with a `detail` that names what is wrong.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use crate::audit::filter::{AuditQuery, ParamError, QueryParams};
use crate::audit::query::fetch_page;
use crate::audit::{EventInput, FieldError, NewEvent, store};
use crate::auth::tokens::{self, Scope, Token};
use crate::db::{DbConn, DbError};

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 10_000;
/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Problems listed per refused request, at most.
const MAX_LISTED_ERRORS: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/audit-logs").post(ingest).get(read))
        .service(web::resource("/api/v1/audit-logs/{id}/proof").get(proof))
        .service(web::resource("/api/v1/checkpoints/latest").get(latest_checkpoint));
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    errors: Vec<Value>,
}

impl Problem {
    /// A problem with no list of errors.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}

impl From<DbError> for Problem {
    fn from(e: DbError) -> Self {
        if !e.is_unavailable() {
            tracing::error!(error = %e, "API request failed");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "an unexpected error occurred and was logged; nothing was stored",
            );
        }
        tracing::error!(error = %e, "database unavailable");
        let detail = match e {
            // The event writer says what became of the request.
            DbError::Unavailable(detail) => detail,
            DbError::OutcomeUnknown(_) => "the connection to the database was lost while it committed: this request may or may not have been stored; send the same request again: a replay stores nothing twice (an event sent without an id gets a new one each time, so give each event its id to make replays safe)".to_owned(),
            DbError::Lost(_) => "the connection to the database was lost before anything was committed; nothing of this request was stored, send it again".to_owned(),
            _ => "the database is not answering; nothing was stored, retry later".to_owned(),
        };
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            detail,
        )
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors.clone());
        }
        if let Some(id) = super::request_id::current() {
            body["request_id"] = Value::String(id);
        }
        let mut response = HttpResponse::build(self.status);
        response.content_type("application/problem+json");
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, crate::error::RETRY_AFTER_SECONDS));
        }
        response.body(body.to_string())
    }
}

/// The live token of the request, with the scope it needs.
async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    needed: Scope,
) -> Result<Token, Problem> {
    let presented = bearer(req)?;
    state
        .db(move |conn| token_for(conn, &presented, needed))
        .await
}

/// The token the request presents (`Authorization: Bearer <token>`).
fn bearer(req: &HttpRequest) -> Result<String, Problem> {
    req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "missing header 'Authorization: Bearer <token>' (a browser session does not count here)",
            )
        })
}

/// The stored, unrevoked token `presented` with the scope `needed`, or the
/// 401 or 403 that says why not.
fn token_for(conn: &mut DbConn, presented: &str, needed: Scope) -> Result<Token, Problem> {
    let token = tokens::authenticate(conn, presented)
        .map_err(Problem::from)?
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the API token is unknown or revoked",
            )
        })?;
    if token.scope != needed {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "this token has scope '{}'; this request needs a token with scope '{}'",
                token.scope, needed
            ),
        ));
    }
    Ok(token)
}

async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
                format!(
                    "the body is larger than {MAX_BODY_BYTES} bytes; send fewer events per request"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_many(n: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Payload Too Large",
        format!("{n} events in one request; send at most {MAX_EVENTS}"),
    )
}

/// Splits the body into event objects: one object, a JSON array, or NDJSON.
fn parse_events(body: &[u8], ndjson: bool) -> Result<Vec<Result<EventInput, FieldError>>, Problem> {
    let bad = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "Bad Request", detail);
    if ndjson {
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8".into()))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() > MAX_EVENTS {
            return Err(too_many(lines.len()));
        }
        return Ok(lines.into_iter().map(EventInput::from_json).collect());
    }
    // Each event is read from its own text, as NDJSON lines and imports are:
    // going through a parsed `Value` first would rewrite some numbers (`-0`).
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let items: Vec<&RawValue> = match raw.get().trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str(raw.get())
            .map_err(|e| bad(format!("the body is not a JSON array of events: {e}")))?,
        Some(b'{') => vec![raw],
        _ => return Err(bad("the body must be an event object, a JSON array of events, or NDJSON (Content-Type: application/x-ndjson)".into())),
    };
    if items.len() > MAX_EVENTS {
        return Err(too_many(items.len()));
    }
    Ok(items
        .iter()
        .map(|item| EventInput::from_json(item.get()))
        .collect())
}

/// Where a bad field is, as the problem names it: `events[56].status_code`
/// (`events[56]` for the event as a whole).
fn field_path(index: usize, e: &FieldError) -> String {
    if e.field == "event" {
        format!("events[{index}]")
    } else {
        format!("events[{index}].{}", e.field)
    }
}

/// `POST /api/v1/audit-logs`: validates the whole request first; stores all of
/// it in one transaction or none of it; answers 201 only after the commit.
async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    authenticate(&req, &state, Scope::Ingest).await?;
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson"));
    let body = read_body(payload).await?;
    let events = validated(parse_events(&body, ndjson)?)?;
    let ids: Vec<String> = events.iter().map(|e| e.event.id.to_string()).collect();
    let outcome = store::store_sent(&state.events, events)
        .await
        .map_err(Problem::from)?;
    if !outcome.conflicts.is_empty() {
        return Err(conflict(&outcome.conflicts, &ids));
    }
    Ok(HttpResponse::Created().json(json!({
        "ids": ids,
        "stored": outcome.stored.len(),
        "already_present": outcome.already_present.len(),
    })))
}

/// Every event of the request, validated; or a problem naming each bad field.
fn validated(inputs: Vec<Result<EventInput, FieldError>>) -> Result<Vec<NewEvent>, Problem> {
    if inputs.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "the request holds no events",
        ));
    }
    let now = Utc::now();
    let mut events: Vec<NewEvent> = Vec::with_capacity(inputs.len());
    let mut errors: Vec<(usize, FieldError)> = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        match input.and_then(|e| e.validate(now)) {
            Ok(e) => events.push(e),
            Err(e) => errors.push((i, e)),
        }
    }
    let Some((first_index, first)) = errors.first() else {
        return Ok(events);
    };
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (and {} more problems)", n - 1),
    };
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "Bad Request",
        format!(
            "{}: {}{more}; nothing of this request was stored",
            field_path(*first_index, first),
            first.message,
        ),
    );
    problem.errors = errors
        .iter()
        .take(MAX_LISTED_ERRORS)
        .map(|(i, e)| json!({"index": i, "field": e.field, "path": field_path(*i, e), "message": e.message}))
        .collect();
    Err(problem)
}

/// 409: these events' ids are stored with other content.
fn conflict(conflicts: &[usize], ids: &[String]) -> Problem {
    let message = |i: usize| format!("{} is already stored with different content", ids[i]);
    let mut problem = Problem::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "events[{}].id: {}; nothing of this request was stored",
            conflicts[0],
            message(conflicts[0])
        ),
    );
    problem.errors = conflicts
        .iter()
        .take(MAX_LISTED_ERRORS)
        .map(|&i| json!({"index": i, "field": "id", "path": format!("events[{i}].id"), "message": message(i)}))
        .collect();
    problem
}

/// The filters of `GET /api/v1/audit-logs`, or a problem naming every bad one.
fn read_query(query_string: &str) -> Result<AuditQuery, Problem> {
    let params = QueryParams::parse(query_string, &[]);
    let mut problems = params.problems("the API does not take this parameter");
    let named = |e: ParamError| (e.param.to_owned(), e.message);
    let parsed = AuditQuery::parse(&params.raw);
    match parsed {
        Ok(query) if problems.is_empty() => return Ok(query),
        Ok(_) => {}
        Err(errors) => problems.extend(errors.into_iter().map(named)),
    }
    let detail = problems
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut p = Problem::new(StatusCode::BAD_REQUEST, "Bad Request", detail);
    p.errors = problems
        .iter()
        .map(|(field, message)| json!({"field": field, "message": message}))
        .collect();
    Err(p)
}

/// `GET /api/v1/audit-logs?<filters>`: one page, newest first, with `next_cursor`.
/// The token is checked (first: a 401 or 403 before any 400) and the page read
/// in one trip to the database.
async fn read(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let presented = bearer(&req)?;
    let query = read_query(req.query_string());
    let body = state
        .db(move |conn| {
            token_for(conn, &presented, Scope::Read)?;
            let page = fetch_page(conn, &query?).map_err(|e| match e {
                crate::audit::store::LoadError::Db(d) => Problem::from(d),
                other => Problem::from(DbError::Config(other.to_string())),
            })?;
            Ok::<_, Problem>(page_json(&page))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// `{"events":[...],"next_cursor":...}`, each event written straight from its
/// interchange form (not through a `serde_json::Value` tree first).
fn page_json(page: &crate::audit::query::Page) -> String {
    let mut out = String::from(r#"{"events":["#);
    for (i, event) in page.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&event.to_json());
    }
    out.push_str(r#"],"next_cursor":"#);
    match page.older {
        Some(c) => out.push_str(&Value::String(c.to_string()).to_string()),
        None => out.push_str("null"),
    }
    out.push('}');
    out
}

/// `GET /api/v1/checkpoints/latest` (read token): the latest signed
/// checkpoint, as its note (`text/plain`).
async fn latest_checkpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let presented = bearer(&req)?;
    let note = state
        .db(move |conn| {
            token_for(conn, &presented, Scope::Read)?;
            crate::db::checkpoints::latest(conn)
                .map_err(Problem::from)?
                .map(|c| c.note)
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::NOT_FOUND,
                        "Not Found",
                        "no checkpoint has been signed yet",
                    )
                })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(note))
}

/// `GET /api/v1/audit-logs/{id}/proof` (read token): the event's RFC 6962
/// inclusion proof against the latest checkpoint.
async fn proof(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    use crate::integrity::proof::{ProofError, for_event};
    let presented = bearer(&req)?;
    let id = id.into_inner();
    let proof = state
        .db(move |conn| {
            token_for(conn, &presented, Scope::Read)?;
            for_event(conn, &id).map_err(|e| match e {
                ProofError::Db(db) => Problem::from(db),
                not_found @ (ProofError::NoSuchEvent(_) | ProofError::NotYetSigned(_)) => {
                    Problem::new(StatusCode::NOT_FOUND, "Not Found", not_found.to_string())
                }
                broken @ ProofError::Broken(_) => {
                    tracing::error!(error = %broken, "no proof");
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                        broken.to_string(),
                    )
                }
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "leaf_hash": hex::encode(proof.leaf_hash),
        "audit_path": proof.audit_path.iter().map(hex::encode).collect::<Vec<_>>(),
        "checkpoint": proof.checkpoint,
    })))
}
