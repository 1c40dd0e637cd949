//! The server's background check of the log. Every checkpoint interval the
//! positions added since the last check are read: each is compared with its
//! recorded leaf hash, the tree, extended from the stored right edge, is
//! compared with every checkpoint signed meanwhile (signature and root), and
//! an event received more than two intervals ago must be in a checkpoint.
//! The cost is the new positions only; older ones are `auditdesk verify`'s.
//!
//! A result is stored for Manage > Audit, which shows a failure to every
//! reader. A failed check does not move on, so the next one looks again; a
//! new finding, and a pass after a failure, are recorded as our own `verify`
//! event.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::event::{FieldChange, truncate_to_micros};
use crate::audit::{Action, Actor, Diff, Event};
use crate::db::log_checks::LogCheck;
use crate::db::{self, DbConn, DbError, write_transaction};

use super::checkpoint::{frontier_from_text, frontier_text};
use super::merkle::Frontier;
use super::note::VerifierKey;
use super::verify::{Checks, Report, Walk, expected_heads, must_be_covered_before};

/// Problems a `verify` event lists; more are counted.
const RECORDED_PROBLEMS: usize = 20;

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The positions read: `from..to` (the check moves on only to the
    /// latest checkpoint among them).
    pub from: u64,
    pub to: u64,
    /// What was found wrong; empty when the check passed.
    pub problems: Vec<String>,
    /// Whether this check's result was stored (another instance's check
    /// that ended meanwhile stands instead).
    pub stored: bool,
    /// Whether a `verify` event was recorded.
    pub recorded: bool,
}

/// Checks the positions added since the last check, stores the result and
/// records a `verify` event when the finding changed. `key` checks the new
/// checkpoints' signatures; `interval` is the checkpoint interval.
///
/// The check reads up to the log's end, but it moves on only to the latest
/// checkpoint it read (first, before the end): a checkpoint another instance
/// commits meanwhile is larger, and so is compared by the next check. The
/// positions past the latest checkpoint are read again next time, so a check
/// costs the events of about one interval, and never the old log.
pub fn check_new(
    conn: &mut DbConn,
    key: Option<&VerifierKey>,
    interval: std::time::Duration,
) -> Result<Outcome, DbError> {
    let now = Utc::now().naive_utc();
    let last = db::log_checks::read(conn)?;
    let tree = match frontier_from_text(last.verified_size, &last.frontier) {
        Some(tree) => tree,
        None => {
            tracing::warn!(
                verified_size = last.verified_size,
                "the background check's stored tree edge is unreadable: checking the log from position 0"
            );
            Frontier::default()
        }
    };
    let from = tree.size();
    let latest = db::checkpoints::latest(conn)?;
    let end = db::log::next_position(conn)?;
    let to = u64::try_from(end).unwrap_or(0);
    let mut report = Report::new();
    if end < 0 {
        report.problem(format!(
            "the log's next position is {end}: it is not a position"
        ));
    } else if to < from {
        report.problem(format!(
            "the log has {to} positions, fewer than the {from} found at the last check: it was cut short"
        ));
    } else {
        let covered = latest.map_or(0, |c| u64::try_from(c.size).unwrap_or(0));
        let signed = db::checkpoints::between(conn, as_i64(from), as_i64(covered))?;
        let checks = Checks { key, copies: None };
        let heads = expected_heads(&signed, &checks, &mut report);
        let mut walk = Walk::new(
            tree.clone(),
            &heads,
            covered,
            must_be_covered_before(now, interval),
        );
        walk.keep_at(covered);
        walk.read(conn, Some(end), &mut report, |_| {})?;
        let kept = walk.kept().cloned();
        walk.finish(&mut report);
        if report.problems.is_empty() {
            let verified = kept.filter(|k| k.size() > from).unwrap_or(tree);
            let check = LogCheck {
                verified_size: as_i64(verified.size()),
                frontier: frontier_text(&verified),
                checked_at: Some(now),
                problems: String::new(),
            };
            return store(conn, &last, check, from, to, Vec::new());
        }
    }
    if report.more_problems > 0 {
        report
            .problems
            .push(format!("... and {} more problems", report.more_problems));
    }
    let check = LogCheck {
        checked_at: Some(now),
        problems: report.problems.join("\n"),
        ..last.clone()
    };
    store(conn, &last, check, from, to, report.problems)
}

/// What a finding is, without the counts that grow while it stands (later
/// checkpoints that differ too, later events not covered, checkpoints past a
/// gap): a standing finding is recorded once, not at every check.
fn finding(problems: &str) -> Vec<&str> {
    problems
        .lines()
        .map(|line| match line.rfind(" (and ") {
            Some(i) if line.ends_with(')') => &line[..i],
            _ => line,
        })
        .map(|line| match line.find(" checkpoints past position ") {
            Some(i) => &line[i..],
            None => line,
        })
        .filter(|line| !line.starts_with("... and "))
        .collect()
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Stores `check` unless another check ended since `last` was read, and
/// records a `verify` event when what is found wrong changed.
fn store(
    conn: &mut DbConn,
    last: &LogCheck,
    check: LogCheck,
    from: u64,
    to: u64,
    problems: Vec<String>,
) -> Result<Outcome, DbError> {
    write_transaction(conn, |conn| {
        let current = db::log_checks::read_for_update(conn)?;
        let mut outcome = Outcome {
            from,
            to,
            problems,
            stored: false,
            recorded: false,
        };
        if current.checked_at != last.checked_at {
            return Ok(outcome);
        }
        db::log_checks::write(conn, &check)?;
        outcome.stored = true;
        if finding(&check.problems) != finding(&current.problems) {
            crate::audit::store::record(conn, verify_event(&current, &outcome))?;
            outcome.recorded = true;
        }
        Ok(outcome)
    })
}

/// Our own `verify` event: a failure (409) with each problem in its diff, or
/// a pass after a failure (200).
fn verify_event(before: &LogCheck, outcome: &Outcome) -> Event {
    let text = |s: &str| Some(Value::String(s.to_owned()));
    let result = |failed: bool| if failed { "failed" } else { "verified" };
    let mut diff = Diff::new();
    diff.insert(
        "result".into(),
        FieldChange::values(
            before
                .checked_at
                .map(|_| Value::String(result(!before.problems.is_empty()).into())),
            text(result(!outcome.problems.is_empty())),
        ),
    );
    diff.insert(
        "checked".into(),
        FieldChange::values(None, text(&checked_range(outcome.from, outcome.to))),
    );
    for (i, problem) in outcome.problems.iter().take(RECORDED_PROBLEMS).enumerate() {
        diff.insert(
            format!("problem {}", i + 1),
            FieldChange::values(None, text(problem)),
        );
    }
    if outcome.problems.len() > RECORDED_PROBLEMS {
        diff.insert(
            "more problems".into(),
            FieldChange::values(
                None,
                Some(Value::from(outcome.problems.len() - RECORDED_PROBLEMS)),
            ),
        );
    }
    Event {
        id: Uuid::new_v4(),
        time: truncate_to_micros(Utc::now()),
        user: Actor {
            username: "auditdesk".into(),
            email: String::new(),
        },
        action: Action::Verify,
        resource_type: "audit_log".into(),
        resource_id: "log".into(),
        resource_target: "Audit log".into(),
        diff,
        ip: String::new(),
        user_agent: "auditdesk background check".into(),
        status_code: if outcome.problems.is_empty() {
            200
        } else {
            409
        },
        request_id: Uuid::new_v4().to_string(),
    }
}

/// "positions 120 to 339", or that there were none new.
pub fn checked_range(from: u64, to: u64) -> String {
    match to.checked_sub(1) {
        Some(last) if last >= from => format!("positions {from} to {last}"),
        _ => format!("no new positions (log size {to})"),
    }
}
