//! Checking the stored log: every position from 0 on holds its event,
//! unchanged since it was sealed (its leaf is recomputed from the stored row
//! and compared with the leaf hash recorded at sealing), there are no gaps,
//! no stored event is outside the log, and the tree head over the recomputed
//! leaves at each checkpoint's size is the one the checkpoint signed, in the
//! database and in the copies outside it. Reads only; never writes.

use std::collections::BTreeMap;

use base64::Engine;

use crate::db::{self, DbConn, DbError};

use super::checkpoint::parse_hash;
use super::leaf;
use super::merkle::{Frontier, Hash};
use super::note::{Checkpoint, VerifierKey};

/// What to check the checkpoints with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks<'a> {
    /// The key every checkpoint must be signed by; `None`: signatures are
    /// not checked (the roots still are).
    pub key: Option<&'a VerifierKey>,
    /// Signed notes copied out of the database (`serve --checkpoint-log`).
    pub copies: Option<&'a [String]>,
}

/// Problems listed at most; past this they are counted.
const LISTED_PROBLEMS: usize = 1000;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Positions read.
    pub size: u64,
    /// The tree head over the leaves as recomputed from the stored events.
    pub root: Hash,
    /// One line per problem, naming the event or position and what is wrong.
    pub problems: Vec<String>,
    /// Problems found beyond those listed.
    pub more_problems: u64,
    /// Checkpoints stored.
    pub checkpoints: u64,
    /// The largest stored checkpoint's size and root.
    pub latest_checkpoint: Option<(u64, Hash)>,
    /// Whether coverage by checkpoints went unchecked (there are none).
    pub coverage_unchecked: bool,
}

impl Report {
    pub(super) fn new() -> Self {
        Self {
            size: 0,
            root: Frontier::default().root(),
            problems: Vec::new(),
            more_problems: 0,
            checkpoints: 0,
            latest_checkpoint: None,
            coverage_unchecked: false,
        }
    }

    pub(super) fn problem(&mut self, line: String) {
        if self.problems.len() < LISTED_PROBLEMS {
            self.problems.push(line);
        } else {
            self.more_problems += 1;
        }
    }
}

/// The checkpoint a note holds: its signature checked with `key` when given.
fn read_note(note: &str, key: Option<&VerifierKey>) -> Result<Checkpoint, String> {
    let text = match key {
        Some(key) => key.open(note).map_err(|e| e.to_string())?,
        None => note
            .rfind("\n\n")
            .map(|i| &note[..=i])
            .ok_or("it is not a signed note")?,
    };
    Checkpoint::parse(text).map_err(|e| e.to_string())
}

/// The tree heads the log must have at given sizes, each with the name a
/// problem gives it.
pub(super) type Heads = BTreeMap<u64, Vec<(String, Hash)>>;

/// The tree heads of `stored` checkpoints and of the copies, their
/// signatures checked.
pub(super) fn expected_heads(
    stored: &[db::checkpoints::CheckpointRow],
    checks: &Checks<'_>,
    report: &mut Report,
) -> Heads {
    let mut heads = Heads::new();
    report.checkpoints = stored.len() as u64;
    let mut in_database: BTreeMap<u64, Hash> = BTreeMap::new();
    for row in stored {
        let name = format!("checkpoint of size {}", row.size);
        match read_note(&row.note, checks.key) {
            Err(why) => report.problem(format!("{name}: {why}")),
            Ok(cp) if checks.key.is_some_and(|key| key.name() != cp.origin) => {
                report.problem(format!(
                    "{name}: its origin {:?} is not the key's name",
                    cp.origin
                ));
            }
            Ok(cp) => {
                let row_root = base64::engine::general_purpose::STANDARD
                    .decode(&row.root)
                    .ok();
                if i64::try_from(cp.size).ok() != Some(row.size)
                    || row_root.as_deref() != Some(&cp.root[..])
                {
                    report.problem(format!(
                        "{name}: its signed note says size {} root {}",
                        cp.size,
                        base64::engine::general_purpose::STANDARD.encode(cp.root)
                    ));
                }
                in_database.insert(cp.size, cp.root);
                heads.entry(cp.size).or_default().push((name, cp.root));
                report.latest_checkpoint = Some((cp.size, cp.root));
            }
        }
    }
    for note in checks.copies.unwrap_or_default() {
        match read_note(note, checks.key) {
            Err(why) => report.problem(format!("a copied checkpoint: {why}")),
            Ok(cp) => {
                let name = format!("copied checkpoint of size {}", cp.size);
                match in_database.get(&cp.size) {
                    None => report.problem(format!(
                        "{name} is not in the database: its checkpoints were rewritten or cut"
                    )),
                    Some(root) if *root != cp.root => report.problem(format!(
                        "{name} differs from the database's checkpoint of that size"
                    )),
                    Some(_) => {}
                }
                heads.entry(cp.size).or_default().push((name, cp.root));
            }
        }
    }
    heads
}

/// Events received before this must be in a checkpoint: the interval
/// checkpoints are made at, twice (one to wait for the tick, one of grace).
pub fn must_be_covered_before(
    now: chrono::NaiveDateTime,
    interval: std::time::Duration,
) -> chrono::NaiveDateTime {
    let twice = chrono::Duration::from_std(interval * 2).unwrap_or(chrono::Duration::MAX);
    now.checked_sub_signed(twice)
        .unwrap_or(chrono::NaiveDateTime::MIN)
}

/// Positions read in order, each checked against its recorded leaf hash and
/// pushed on the tree, which is compared with every checkpoint of its size.
/// The whole check walks from position 0; the server's background check
/// walks only the positions added since its last one.
pub(super) struct Walk<'h> {
    tree: Frontier,
    heads: &'h Heads,
    expected: i64,
    /// After a gap the tree's size no longer says which position it ends
    /// at, so no checkpoint is compared past it.
    gap_at: Option<i64>,
    /// The first checkpoint the log disagrees with is named, with how many
    /// later ones disagree too: one change need not make a line per minute
    /// of checkpoints since.
    first_mismatch: Option<String>,
    later_mismatches: u64,
    /// Positions below this are in a signed checkpoint.
    covered: u64,
    /// Events received before this must be covered.
    covered_before: chrono::NaiveDateTime,
    /// Events that should be covered and are not: how many, and the first.
    uncovered: u64,
    first_uncovered: Option<(String, i64, chrono::NaiveDateTime)>,
    /// The tree as it was at this size, kept when the walk passes it.
    keep_at: Option<u64>,
    kept: Option<Frontier>,
}

/// Positions read per query.
const PAGE: i64 = 10_000;

impl<'h> Walk<'h> {
    /// A walk on from `tree` (the tree over the positions below its size).
    pub(super) fn new(
        tree: Frontier,
        heads: &'h Heads,
        covered: u64,
        covered_before: chrono::NaiveDateTime,
    ) -> Self {
        let expected = i64::try_from(tree.size()).unwrap_or(i64::MAX);
        Self {
            tree,
            heads,
            expected,
            gap_at: None,
            first_mismatch: None,
            later_mismatches: 0,
            covered,
            covered_before,
            uncovered: 0,
            first_uncovered: None,
            keep_at: None,
            kept: None,
        }
    }

    /// Keeps the tree as it is when it reaches `size` leaves ([`Walk::kept`]).
    pub(super) fn keep_at(&mut self, size: u64) {
        if self.tree.size() == size {
            self.kept = Some(self.tree.clone());
        }
        self.keep_at = Some(size);
    }

    /// The tree kept by [`Walk::keep_at`], if the walk reached that size.
    pub(super) fn kept(&self) -> Option<&Frontier> {
        self.kept.as_ref()
    }

    /// Reads and checks the positions from the next one up to (not
    /// including) `end`, or all there are when `None`; `progress` is told the
    /// positions read so far after each page.
    pub(super) fn read(
        &mut self,
        conn: &mut DbConn,
        end: Option<i64>,
        report: &mut Report,
        mut progress: impl FnMut(u64),
    ) -> Result<(), DbError> {
        loop {
            let limit = match end {
                Some(end) if end <= self.expected => break,
                Some(end) => (end - self.expected).min(PAGE),
                None => PAGE,
            };
            let page = db::log::entries(conn, self.expected, limit)?;
            let below_end: Vec<_> = page
                .into_iter()
                .take_while(|entry| end.is_none_or(|end| entry.position < end))
                .collect();
            // Nothing left before the end: later positions (committed since
            // the end was read) are the next walk's.
            if below_end.is_empty() {
                break;
            }
            for entry in below_end {
                self.entry(entry, report);
            }
            progress(self.tree.size());
        }
        if let Some(end) = end
            && self.expected < end
        {
            report.problem(format!(
                "positions {} to {} are missing",
                self.expected,
                end - 1
            ));
            self.gap_at.get_or_insert(self.expected);
        }
        Ok(())
    }

    fn entry(&mut self, entry: db::log::Entry, report: &mut Report) {
        let expected = self.expected;
        if entry.position != expected {
            report.problem(format!(
                "positions {expected} to {} are missing",
                entry.position - 1
            ));
            self.gap_at.get_or_insert(expected);
            self.expected = entry.position;
        }
        let recorded = parse_hash(&entry.leaf_hash);
        let leaf = match &entry.event {
            Some(row) => {
                let now = leaf::hash_of(row);
                if recorded != Some(now) {
                    report.problem(format!(
                        "event {} at position {} was changed: it is not the event sealed there",
                        row.event_uuid, entry.position
                    ));
                }
                let position = u64::try_from(entry.position).unwrap_or(0);
                if position >= self.covered && row.received_at < self.covered_before {
                    self.uncovered += 1;
                    self.first_uncovered.get_or_insert((
                        row.event_uuid.clone(),
                        entry.position,
                        row.received_at,
                    ));
                }
                // The tree is over what was sealed: a change already named
                // here does not also fail every checkpoint after it, while a
                // rewrite of the recorded hash too does.
                recorded.unwrap_or(now)
            }
            None => {
                report.problem(format!(
                    "position {}: its event (row {}) is missing",
                    entry.position, entry.event_id
                ));
                recorded.unwrap_or_default()
            }
        };
        self.tree.push(leaf);
        if self.keep_at == Some(self.tree.size()) && self.gap_at.is_none() {
            self.kept = Some(self.tree.clone());
        }
        if self.gap_at.is_none() {
            for (name, root) in self.heads.get(&self.tree.size()).into_iter().flatten() {
                if self.tree.root() != *root {
                    if self.first_mismatch.is_none() {
                        self.first_mismatch = Some(format!(
                            "{name}: the log's tree head at that size differs: the log was rewritten before position {}",
                            self.tree.size()
                        ));
                    } else {
                        self.later_mismatches += 1;
                    }
                }
            }
        }
        self.expected += 1;
    }

    /// Whether a gap was met.
    pub(super) fn had_gap(&self) -> bool {
        self.gap_at.is_some()
    }

    /// Names what the walk found only as a whole (the checkpoints the log
    /// disagrees with, those past its end, the events no checkpoint
    /// covers), and gives back the tree.
    pub(super) fn finish(self, report: &mut Report) -> Frontier {
        if let Some(line) = self.first_mismatch {
            report.problem(if self.later_mismatches > 0 {
                format!(
                    "{line} (and {} later checkpoints differ too)",
                    self.later_mismatches
                )
            } else {
                line
            });
        }
        if let Some(position) = self.gap_at {
            let past: usize = self
                .heads
                .range(u64::try_from(position).unwrap_or(0) + 1..)
                .map(|(_, named)| named.len())
                .sum();
            if past > 0 {
                report.problem(format!(
                    "{past} checkpoints past position {position} were not compared: the log has a gap there"
                ));
            }
        } else {
            for named in self
                .heads
                .range(self.tree.size() + 1..)
                .map(|(_, named)| named)
            {
                for (name, _) in named {
                    report.problem(format!(
                        "{name}: the log has only {} positions: it was cut short (or the checkpoint forged)",
                        self.tree.size()
                    ));
                }
            }
        }
        if let Some((event, position, received)) = self.first_uncovered {
            let others = match self.uncovered - 1 {
                0 => String::new(),
                1 => " (and 1 later event)".to_owned(),
                n => format!(" (and {n} later events)"),
            };
            report.problem(format!(
                "event {event} at position {position} is not in any checkpoint, though received at {} UTC, more than two checkpoint intervals ago{others}",
                received.format("%Y-%m-%d %H:%M:%S")
            ));
        }
        self.tree
    }
}

/// Reads the whole log in position order, `progress` told the positions
/// read so far after each page. Events received before `covered_before`
/// must be in a checkpoint ([`must_be_covered_before`]).
pub fn verify(
    conn: &mut DbConn,
    checks: &Checks<'_>,
    covered_before: chrono::NaiveDateTime,
    progress: impl FnMut(u64),
) -> Result<Report, DbError> {
    let mut report = Report::new();
    let heads = expected_heads(&db::checkpoints::all(conn)?, checks, &mut report);
    let covered = report.latest_checkpoint.map_or(0, |(size, _)| size);
    // No checkpoint at all: checkpoints are off (no signing key), or no
    // server has run yet; there is nothing to be late for.
    let covered_before = if report.checkpoints == 0 {
        report.coverage_unchecked = true;
        chrono::NaiveDateTime::MIN
    } else {
        covered_before
    };
    let mut walk = Walk::new(Frontier::default(), &heads, covered, covered_before);
    walk.read(conn, None, &mut report, progress)?;
    let gap = walk.had_gap();
    let tree = walk.finish(&mut report);
    let next = db::log::next_position(conn)?;
    if u64::try_from(next).ok() != Some(tree.size()) && !gap {
        report.problem(format!(
            "the log's next position is {next}, but positions 0 to {} were found",
            tree.size().saturating_sub(1)
        ));
    }
    for row in db::log::without_position(conn, LISTED_PROBLEMS as i64)? {
        report.problem(format!(
            "event {} (row {}) is not in the log: it has no position",
            row.event_uuid, row.id
        ));
    }
    report.size = tree.size();
    report.root = tree.root();
    Ok(report)
}
