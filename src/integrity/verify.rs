//! Checking the stored log against itself: every position from 0 on holds
//! its event, unchanged since it was sealed (its leaf is recomputed from the
//! stored row and compared with the leaf hash recorded at sealing), there are
//! no gaps, and no stored event is outside the log. The tree head over the
//! recomputed leaves is what signed checkpoints will be checked against.
//! Reads only; never writes.

use crate::db::{self, DbConn, DbError};

use super::leaf;
use super::merkle::{Frontier, Hash};

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

/// Reads the whole log in position order, `progress` told the positions
/// read so far after each page.
pub fn verify(conn: &mut DbConn, mut progress: impl FnMut(u64)) -> Result<Report, DbError> {
    const PAGE: i64 = 10_000;
    let mut tree = Frontier::default();
    let mut report = Report {
        size: 0,
        root: tree.root(),
        problems: Vec::new(),
        more_problems: 0,
    };
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
                expected = entry.position;
            }
            let recorded = stored_hash(&entry.leaf_hash);
            let leaf = match &entry.event {
                Some(row) => {
                    let now = leaf::hash_of(row);
                    if recorded != Some(now) {
                        report.problem(format!(
                            "event {} at position {} was changed: it is not the event sealed there",
                            row.event_uuid, entry.position
                        ));
                    }
                    now
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
            expected += 1;
        }
        progress(tree.size());
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

/// A recorded hex leaf hash, if it is one.
fn stored_hash(hex_hash: &str) -> Option<Hash> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}
