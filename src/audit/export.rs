//! Exports: CSV for spreadsheets, NDJSON in the interchange format, and Coder's
//! log-export shape. Events are read page by page along the keyset index and
//! written as they are read, so memory stays flat for any size.

use std::str::FromStr;

use super::Event;
use super::event::format_time;
use super::filter::{AuditQuery, Cursor, Direction, Filter, Param, QueryParams};
use super::query::fetch_page;
use super::store::LoadError;
use super::visible::{escaped, value_text};
use crate::db::DbConn;

/// Events read per page while exporting.
pub const EXPORT_PAGE: u32 = 1_000;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    CoderJson,
}

impl Format {
    /// Every format, in the order the page offers them.
    pub const ALL: [Format; 3] = [Format::Csv, Format::Ndjson, Format::CoderJson];

    /// What the page's Export menu calls it.
    pub fn label(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Ndjson => "JSON lines",
            Format::CoderJson => "Coder JSON",
        }
    }

    /// The name used in `format=` and `--format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::CoderJson => "coder-json",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson | Format::CoderJson => "application/x-ndjson",
        }
    }

    /// A file name that says what it is: `auditdesk-audit-2026-11-25T101500Z.csv`.
    pub fn file_name(self, at: chrono::DateTime<chrono::Utc>) -> String {
        let ext = match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::CoderJson => "coder.ndjson",
        };
        format!("auditdesk-audit-{}.{ext}", at.format("%Y-%m-%dT%H%M%SZ"))
    }
}

/// A format name that is not one of csv, ndjson, coder-json.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format '{0}' (expected csv, ndjson or coder-json)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            "coder-json" => Ok(Format::CoderJson),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// What an export asks for: the format, whether a CSV starts with a
/// byte-order mark, and the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub format: Format,
    pub bom: bool,
    pub query: AuditQuery,
}

impl ExportRequest {
    /// Reads an export's query string: `format` (default csv), `bom` (0 or 1,
    /// default 1; CSV only) and the filters, without `limit` or `cursor`.
    /// Every problem is named.
    pub fn parse(query_string: &str) -> Result<Self, Vec<String>> {
        let params = QueryParams::parse(query_string, &["format", "bom"]);
        let mut problems = params.problem_lines("exports do not take this parameter");
        let format = params
            .extra("format")
            .map(str::trim)
            .unwrap_or("csv")
            .parse::<Format>()
            .map_err(|e| problems.push(format!("format: {e}")))
            .ok();
        let bom = match params.extra("bom").map(str::trim) {
            None | Some("" | "1") => true,
            Some("0") => false,
            Some(other) => {
                problems.push(format!(
                    "bom: '{}' is not 0 (no byte-order mark) or 1",
                    super::visible::escaped(other)
                ));
                true
            }
        };
        let asked = params.extra("bom").is_some_and(|b| b.trim() == "1");
        if asked && format.is_some_and(|f| f != Format::Csv) {
            problems.push("bom: only a CSV export starts with a byte-order mark".into());
        }
        for param in [Param::Limit, Param::Cursor] {
            if params.raw.get(param).is_some_and(|v| !v.trim().is_empty()) {
                problems.push(format!(
                    "{param}: an export holds every matching event; remove {param} from the address"
                ));
            }
        }
        let query = AuditQuery::parse(&params.raw)
            .map_err(|errors| problems.extend(errors.iter().map(ToString::to_string)))
            .ok();
        match (format, query) {
            (Some(format), Some(query)) if problems.is_empty() => Ok(Self { format, bom, query }),
            _ => Err(problems),
        }
    }
}

/// The CSV header row.
pub const CSV_HEADER: &str = "time,id,user,email,action,resource_type,resource_id,resource_target,status_code,ip,user_agent,request_id,diff\r\n";

/// One CSV cell: quoted when it holds a comma, quote or line break (RFC 4180),
/// and prefixed with `'` when a spreadsheet would run it as a formula.
fn csv_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']);
    let quote = formula || value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// A diff value on its line of the diff cell: hidden characters escaped, so
/// that a value holding a line break cannot pass for another field's line.
fn shown(v: &serde_json::Value) -> String {
    escaped(&value_text(v))
}

/// The diff as readable text: one `field: old → new` per line, secrets as
/// `******`; field names and values escaped (`\n`), one line each.
pub fn diff_text(event: &Event) -> String {
    let mut lines = Vec::with_capacity(event.diff.len());
    for (field, change) in &event.diff {
        let field = escaped(field);
        let line = if change.is_secret() {
            format!("{field}: ******")
        } else {
            match (&change.old, &change.new) {
                (Some(old), Some(new)) => format!("{field}: {} → {}", shown(old), shown(new)),
                (None, Some(new)) => format!("{field}: → {}", shown(new)),
                (Some(old), None) => format!("{field}: {} →", shown(old)),
                (None, None) => format!("{field}: (changed)"),
            }
        };
        lines.push(line);
    }
    lines.join("\n")
}

/// Appends one event in `format` to `out`.
pub fn encode(out: &mut String, event: &Event, format: Format) {
    match format {
        Format::Csv => {
            let status = event.status_code.to_string();
            let cells = [
                format_time(event.time),
                event.id.to_string(),
                event.user.username.clone(),
                event.user.email.clone(),
                event.action.as_str().to_owned(),
                event.resource_type.clone(),
                event.resource_id.clone(),
                event.resource_target.clone(),
                status,
                event.ip.clone(),
                event.user_agent.clone(),
                event.request_id.clone(),
                diff_text(event),
            ];
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_cell(out, cell);
            }
            out.push_str("\r\n");
        }
        Format::Ndjson => {
            out.push_str(&event.to_json());
            out.push('\n');
        }
        Format::CoderJson => {
            out.push_str(&event.to_coder_line());
            out.push('\n');
        }
    }
}

/// The UTF-8 byte-order mark. A spreadsheet opening a CSV file without it
/// (Excel, LibreOffice's default import) reads the bytes as a legacy code page
/// and shows `Ünïcødé` as `ÃœnÃ¯cÃ¸dÃ©`.
pub const BOM: &str = "\u{feff}";

/// Writes every event matching `filter`, newest first, handing each encoded page
/// to `sink`; stops early when `sink` returns false (the reader went away).
/// A CSV starts with [`BOM`] when `bom` is set. Returns how many events were written.
pub fn export(
    conn: &mut DbConn,
    filter: &Filter,
    format: Format,
    bom: bool,
    mut sink: impl FnMut(String) -> bool,
) -> Result<u64, LoadError> {
    if format == Format::Csv {
        let header = if bom {
            format!("{BOM}{CSV_HEADER}")
        } else {
            CSV_HEADER.to_owned()
        };
        if !sink(header) {
            return Ok(0);
        }
    }
    let mut query = AuditQuery {
        filter: filter.clone(),
        limit: EXPORT_PAGE,
        cursor: None,
    };
    let mut written = 0u64;
    loop {
        let page = fetch_page(conn, &query)?;
        let mut out = String::with_capacity(page.events.len() * 400);
        for event in &page.events {
            encode(&mut out, event, format);
        }
        written += page.events.len() as u64;
        if !out.is_empty() && !sink(out) {
            return Ok(written);
        }
        match page.older {
            Some(Cursor { time, id, .. }) => {
                query.cursor = Some(Cursor {
                    direction: Direction::Older,
                    time,
                    id,
                })
            }
            None => return Ok(written),
        }
    }
}

/// Records who exported what: an `export` event whose Field/Diff holds the
/// format and the filters, in the query-string form the page uses.
pub fn record_export(
    conn: &mut DbConn,
    by: &super::Actor,
    ip: &str,
    user_agent: &str,
    format: Format,
    filters: &str,
) -> Result<(), crate::db::DbError> {
    let mut diff = super::Diff::new();
    let value =
        |v: &str| super::FieldChange::values(None, Some(serde_json::Value::String(v.to_owned())));
    diff.insert("format".into(), value(format.as_str()));
    diff.insert(
        "filters".into(),
        value(if filters.is_empty() {
            "(none: every event)"
        } else {
            filters
        }),
    );
    super::store::record(
        conn,
        Event {
            id: uuid::Uuid::new_v4(),
            time: super::event::truncate_to_micros(chrono::Utc::now()),
            user: by.clone(),
            action: super::Action::Export,
            resource_type: "audit_log".into(),
            resource_id: String::new(),
            resource_target: "audit log".into(),
            diff,
            ip: ip.to_owned(),
            user_agent: user_agent.to_owned(),
            status_code: 200,
            request_id: uuid::Uuid::new_v4().to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventInput;

    fn event(json: &str) -> Event {
        EventInput::from_json(json)
            .unwrap()
            .validate(chrono::Utc::now())
            .unwrap()
            .event
    }

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let mut out = String::new();
        for v in [
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "=SUM(A1)",
            "+1",
            "-1",
            "@cmd",
            "\tx",
        ] {
            out.clear();
            csv_cell(&mut out, v);
            let expected = match v {
                "plain" => "plain",
                "a,b" => "\"a,b\"",
                "say \"hi\"" => "\"say \"\"hi\"\"\"",
                "two\nlines" => "\"two\nlines\"",
                "=SUM(A1)" => "\"'=SUM(A1)\"",
                "+1" => "\"'+1\"",
                "-1" => "\"'-1\"",
                "@cmd" => "\"'@cmd\"",
                _ => "\"'\tx\"",
            };
            assert_eq!(out, expected, "{v:?}");
        }
    }

    #[test]
    fn the_diff_reads_as_field_old_new_with_secrets_starred() {
        let e = event(
            r#"{"user":{"username":"a"},"action":"write","resource_type":"oauth_configs",
            "diff":{"client_secret":{"old":"x","new":"y","secret":true},"description":{"old":"old","new":"example","secret":false},"enabled":{"new":true,"secret":false}}}"#,
        );
        assert_eq!(
            diff_text(&e),
            "client_secret: ******\ndescription: old → example\nenabled: → true"
        );
    }

    #[test]
    fn coder_shape_puts_the_action_where_coder_does() {
        let e = event(
            r#"{"user":{"username":"a"},"action":"ssh","resource_type":"workspace","time":"2026-03-01T12:00:00.5Z"}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&e.to_coder_line()).unwrap();
        assert_eq!(v["message"]["fields"]["audit_log"]["action"], "ssh");
        assert_eq!(v["msg"], "audit_log");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["ts"], "2026-03-01T12:00:00.500Z");
    }

    #[test]
    fn formats_parse_and_name_files() {
        assert_eq!("coder-json".parse(), Ok(Format::CoderJson));
        assert!(
            "xml"
                .parse::<Format>()
                .unwrap_err()
                .to_string()
                .contains("unknown export format 'xml'")
        );
        let at = "2026-11-25T10:15:00Z".parse().unwrap();
        assert_eq!(
            Format::Csv.file_name(at),
            "auditdesk-audit-2026-11-25T101500Z.csv"
        );
    }
}
