//! Loading events from the interchange format (NDJSON), in batches through the
//! one write path. A bad line is refused with its number and reason; it never
//! stops or corrupts the rest.

use std::io::BufRead;
use std::sync::mpsc;

use chrono::Utc;

use super::{EventInput, NewEvent, store};
use crate::db::events::{self as rows, OnConflict};
use crate::db::{self, DbConn, DbError};

/// Events per transaction.
pub const BATCH: usize = 20_000;

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based line number in the input.
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Non-empty lines read.
    pub read: u64,
    pub stored: u64,
    pub already_present: u64,
    pub refused: Vec<Refusal>,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} events: {} stored, {} already present, {} refused",
            self.read,
            self.stored,
            self.already_present,
            self.refused.len()
        )
    }
}

/// Progress reports: bytes read so far and the running summary.
pub trait Progress {
    fn update(&mut self, bytes_read: u64, summary: &ImportSummary);
    /// Every line is read; the indexes are being built (a load into an empty table).
    fn building_indexes(&mut self) {}
}

impl Progress for () {
    fn update(&mut self, _: u64, _: &ImportSummary) {}
}

struct Parsed {
    events: Vec<NewEvent>,
    lines: Vec<u64>,
    refused: Vec<Refusal>,
    read: u64,
    bytes: u64,
}

/// Reads NDJSON from `input` and stores it, then refreshes the planner's
/// statistics. Into an empty table it loads first and builds the secondary indexes
/// afterwards, several times faster than keeping them current row by row (an
/// import killed midway leaves them to the next start, which builds what is missing).
pub fn import(
    conn: &mut DbConn,
    input: impl BufRead + Send,
    progress: &mut dyn Progress,
) -> Result<ImportSummary, ImportError> {
    db::prepare_bulk_load(conn)?;
    let bulk = rows::is_empty(conn)?;
    if bulk {
        rows::drop_secondary_indexes(conn)?;
    }
    let loaded = load(conn, input, progress);
    if bulk {
        progress.building_indexes();
        // The load's own error comes first; then whether the indexes came back.
        if let (Ok(summary), Err(e)) = (&loaded, rows::ensure_secondary_indexes(conn)) {
            return Err(ImportError::Indexes {
                stored: summary.stored,
                cause: e,
            });
        }
    }
    let summary = loaded?;
    rows::optimize(conn)?;
    Ok(summary)
}

/// Parsing runs on its own thread while the previous batch is written, so both
/// cores are busy.
fn load(
    conn: &mut DbConn,
    input: impl BufRead + Send,
    progress: &mut dyn Progress,
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Parsed, std::io::Error>>(2);
        scope.spawn(move || parse_batches(input, tx));
        for batch in rx {
            let batch = batch.map_err(ImportError::Read)?;
            summary.read += batch.read;
            summary.refused.extend(batch.refused);
            let outcome = store::store_batch(conn, &batch.events, OnConflict::SkipEvent)?;
            summary.stored += outcome.stored.len() as u64;
            summary.already_present += outcome.already_present.len() as u64;
            for i in outcome.conflicts {
                summary.refused.push(Refusal {
                    line: batch.lines[i],
                    reason: format!(
                        "id {} is already stored with different content",
                        batch.events[i].event.id
                    ),
                });
            }
            progress.update(batch.bytes, &summary);
        }
        summary.refused.sort_by_key(|r| r.line);
        Ok(summary)
    })
}

fn parse_batches(mut input: impl BufRead, tx: mpsc::SyncSender<Result<Parsed, std::io::Error>>) {
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut batch = Parsed {
            events: Vec::with_capacity(BATCH),
            lines: Vec::with_capacity(BATCH),
            refused: Vec::new(),
            read: 0,
            bytes: 0,
        };
        let now = Utc::now();
        let mut eof = false;
        while batch.events.len() < BATCH {
            buf.clear();
            // Bytes, not read_line: a line that is not UTF-8 is refused alone,
            // with its number, instead of ending the import.
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => bytes += n as u64,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
            line_no += 1;
            let Ok(text) = std::str::from_utf8(&buf) else {
                batch.read += 1;
                batch.refused.push(Refusal {
                    line: line_no,
                    reason: "the line is not UTF-8 text".into(),
                });
                continue;
            };
            let line = text.trim();
            if line.is_empty() {
                continue;
            }
            batch.read += 1;
            match EventInput::from_json(line).and_then(|e| e.validate(now)) {
                Ok(event) => {
                    batch.events.push(event);
                    batch.lines.push(line_no);
                }
                Err(e) => batch.refused.push(Refusal {
                    line: line_no,
                    reason: e.to_string(),
                }),
            }
        }
        batch.bytes = bytes;
        if tx.send(Ok(batch)).is_err() || eof {
            return;
        }
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the input: {0}")]
    Read(std::io::Error),
    #[error("{0} (every batch before this one is stored; running the import again skips them)")]
    Db(#[from] DbError),
    /// Every event was stored, but the indexes dropped for the load were not rebuilt.
    #[error(
        "{stored} events stored, but rebuilding the indexes failed: {cause} (the next `auditdesk` command rebuilds them)"
    )]
    Indexes { stored: u64, cause: DbError },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every line the reader hands on, for `input`.
    fn read_all(input: &[u8]) -> (u64, usize, Vec<Refusal>) {
        let (tx, rx) = mpsc::sync_channel(2);
        parse_batches(input, tx);
        let (mut read, mut events, mut refused) = (0, 0, Vec::new());
        for batch in rx {
            let batch = batch.unwrap();
            read += batch.read;
            events += batch.events.len();
            refused.extend(batch.refused);
        }
        (read, events, refused)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes: every non-empty line is stored or refused with its
        /// number; nothing panics and nothing is lost.
        #[test]
        fn arbitrary_bytes_are_read_line_by_line(
            lines in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    Just(br#"{"user":{"username":"a"},"action":"login","resource_type":"user"}"#.to_vec()),
                    Just(br#"{"user":{"username":"a\u0000"},"action":"login","resource_type":"user"}"#.to_vec()),
                ],
                0..20)
        ) {
            let input: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
            let (read, events, refused) = read_all(&input);
            prop_assert_eq!(read as usize, events + refused.len());
            let numbers = input.split(|b| *b == b'\n').count() as u64;
            prop_assert!(refused.iter().all(|r| r.line >= 1 && r.line <= numbers));
        }

        /// A valid event with one field replaced by any JSON-ish text is an
        /// event or a named problem: never a panic.
        #[test]
        fn any_field_value_is_an_event_or_a_named_problem(
            field in proptest::sample::select(&["id", "time", "user", "action", "resource_type",
                "resource_id", "resource_target", "diff", "ip", "user_agent", "status_code",
                "request_id", "colour"][..]),
            value in prop_oneof![
                Just("null".to_owned()), Just("-1".to_owned()), Just("1e999".to_owned()),
                Just("[]".to_owned()), Just("{}".to_owned()), Just("\"\"".to_owned()),
                Just(r#"{"a":{"old":1,"x":2}}"#.to_owned()), Just(r#"{"username":""}"#.to_owned()),
                any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
                ".{0,12}",
            ],
        ) {
            let base = [("user", r#"{"username":"a"}"#), ("action", r#""login""#), ("resource_type", r#""user""#)];
            let body: Vec<String> = base
                .iter()
                .filter(|(k, _)| *k != field)
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .chain([format!("\"{field}\":{value}")])
                .collect();
            let text = format!("{{{}}}", body.join(","));
            match EventInput::from_json(&text) {
                Ok(input) => { let _ = input.validate(Utc::now()); }
                Err(e) => prop_assert!(!e.field.is_empty() && !e.message.is_empty()),
            }
        }
    }
}
