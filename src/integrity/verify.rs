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
}

impl Report {
    fn problem(&mut self, line: String) {
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

/// The tree heads the log must have at given sizes, from the stored
/// checkpoints and the copies, each with the name a problem gives it.
fn expected_heads(
    conn: &mut DbConn,
    checks: &Checks<'_>,
    report: &mut Report,
) -> Result<BTreeMap<u64, Vec<(String, Hash)>>, DbError> {
    let mut heads: BTreeMap<u64, Vec<(String, Hash)>> = BTreeMap::new();
    let stored = db::checkpoints::all(conn)?;
    report.checkpoints = stored.len() as u64;
    let mut in_database: BTreeMap<u64, Hash> = BTreeMap::new();
    for row in &stored {
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
    Ok(heads)
}

/// Reads the whole log in position order, `progress` told the positions
/// read so far after each page.
pub fn verify(
    conn: &mut DbConn,
    checks: &Checks<'_>,
    mut progress: impl FnMut(u64),
) -> Result<Report, DbError> {
    const PAGE: i64 = 10_000;
    let mut tree = Frontier::default();
    let mut report = Report {
        size: 0,
        root: tree.root(),
        problems: Vec::new(),
        more_problems: 0,
        checkpoints: 0,
        latest_checkpoint: None,
    };
    let heads = expected_heads(conn, checks, &mut report)?;
    // The first checkpoint the log disagrees with is named, with how many
    // later ones disagree too: one change need not make a line per minute
    // of checkpoints since.
    let mut first_mismatch: Option<String> = None;
    let mut later_mismatches = 0u64;
    // After a gap the tree's size no longer says which position it ends at,
    // so no checkpoint is compared past it.
    let mut gap_at: Option<i64> = None;
    let mut expected: i64 = 0;
    loop {
        let page = db::log::entries(conn, expected, PAGE)?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            if entry.position != expected {
                report.problem(format!(
                    "positions {expected} to {} are missing",
                    entry.position - 1
                ));
                gap_at.get_or_insert(expected);
                expected = entry.position;
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
                    // The tree is over what was sealed: a change already named
                    // here does not also fail every checkpoint after it, while
                    // a rewrite of the recorded hash too does.
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
            tree.push(leaf);
            if gap_at.is_none() {
                for (name, root) in heads.get(&tree.size()).into_iter().flatten() {
                    if tree.root() != *root {
                        if first_mismatch.is_none() {
                            first_mismatch = Some(format!(
                                "{name}: the log's tree head at that size differs: the log was rewritten before position {}",
                                tree.size()
                            ));
                        } else {
                            later_mismatches += 1;
                        }
                    }
                }
            }
            expected += 1;
        }
        progress(tree.size());
    }
    if let Some(line) = first_mismatch {
        report.problem(if later_mismatches > 0 {
            format!("{line} (and {later_mismatches} later checkpoints differ too)")
        } else {
            line
        });
    }
    if let Some(position) = gap_at {
        let past: usize = heads
            .range(u64::try_from(position).unwrap_or(0) + 1..)
            .map(|(_, named)| named.len())
            .sum();
        if past > 0 {
            report.problem(format!(
                "{past} checkpoints past position {position} were not compared: the log has a gap there"
            ));
        }
    } else {
        for named in heads.range(tree.size() + 1..).map(|(_, named)| named) {
            for (name, _) in named {
                report.problem(format!(
                    "{name}: the log has only {} positions: it was cut short (or the checkpoint forged)",
                    tree.size()
                ));
            }
        }
    }
    let next = db::log::next_position(conn)?;
    if u64::try_from(next).ok() != Some(tree.size()) && gap_at.is_none() {
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
