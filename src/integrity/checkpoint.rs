//! Making signed checkpoints of the log, and the key that signs them.
//!
//! A checkpoint signs the tree head over positions `0..size`. Each is made
//! from the one before: its stored right edge plus the leaf hashes added
//! since, so the cost is the new leaves only. One checkpointer at a time
//! across instances (`db::checkpoints::lock`). The signing key lives in a
//! file, never in the database it protects.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::db::checkpoints::CheckpointRow;
use crate::db::{self, DbConn, DbError, write_transaction};

use super::merkle::{Frontier, Hash};
use super::note::{Checkpoint, KeyError, SigningKey};

/// The name of a key this server makes, and so the origin line of its
/// checkpoints.
pub const KEY_NAME: &str = "auditdesk";

/// Leaf hashes read per query while extending the tree.
const PAGE: i64 = 10_000;

/// The smallest perfect subtrees whose heads are stored: 2^8 = 256 leaves.
/// A proof reads at most a few hundred leaf hashes below them; the stored
/// heads are about n/128 rows.
pub const STORED_LEVEL: u32 = 8;

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What went wrong with the signing key's file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("signing key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key {path}: {source}")]
    Key { path: PathBuf, source: KeyError },
}

/// The signing key in `path` (it must exist).
pub fn load_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    SigningKey::parse(&text).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// The signing key in `path`, or a new one named `name` written there
/// (mode 0600, never overwriting a file that appeared meanwhile).
pub fn load_or_create_key(path: &Path, name: &str) -> Result<SigningKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(_) => load_key(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(name).map_err(|source| KeyFileError::Key {
                path: path.to_owned(),
                source,
            })?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    writeln!(file, "{}", key.encode()).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    Ok(key)
                }
                // Another process made it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_key(path, name)
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// Why no checkpoint could be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored log is not whole; `verify` says more.
    #[error("the log cannot be checkpointed: {0}")]
    Broken(String),
}

/// Signs the log as it is now, if it grew since the last checkpoint:
/// returns the stored checkpoint, or `None` when there was nothing new (or
/// another instance signed it meanwhile).
///
/// The new leaves are read and the tree built before the write transaction:
/// positions below the next one never change, and holding SQLite's write
/// lock while a million leaves are read would stall ingest. The transaction
/// only checks that no checkpoint was made meanwhile and stores this one.
pub fn make(conn: &mut DbConn, key: &SigningKey) -> Result<Option<CheckpointRow>, CheckpointError> {
    let latest = db::checkpoints::latest(conn)?;
    let mut tree = match &latest {
        Some(last) => frontier_of(last)?,
        None => Frontier::default(),
    };
    let size = u64::try_from(db::log::next_position(conn)?).unwrap_or(0);
    if size < tree.size() {
        return Err(CheckpointError::Broken(format!(
            "the log has {size} positions, fewer than the {} its last checkpoint signed",
            tree.size()
        )));
    }
    if size == tree.size() {
        return Ok(None);
    }
    // The perfect subtrees this checkpoint completes, for proofs (`proof`).
    let completed = extend(conn, &mut tree, size)?;
    let checkpoint = Checkpoint {
        origin: key.verifier().name().to_owned(),
        size: tree.size(),
        root: tree.root(),
    };
    let note = key
        .sign(&checkpoint.body())
        .map_err(|e| CheckpointError::Broken(e.to_string()))?;
    let row = CheckpointRow {
        size: i64::try_from(tree.size()).unwrap_or(i64::MAX),
        root: BASE64.encode(checkpoint.root),
        note,
        frontier: frontier_text(&tree),
        created_at: chrono::Utc::now().naive_utc(),
    };
    let base = latest.map(|l| l.size);
    write_transaction(conn, |conn| {
        db::checkpoints::lock(conn)?;
        // Another checkpointer was quicker: its checkpoint stands.
        if db::checkpoints::latest(conn)?.map(|l| l.size) != base {
            return Ok(None);
        }
        db::log::insert_subtrees(conn, &completed)?;
        db::checkpoints::insert(conn, &row)?;
        Ok(Some(row))
    })
}

/// Stores the heads of the perfect subtrees (of [`STORED_LEVEL`] and more)
/// that the latest checkpoint covers, if some are missing: a log signed
/// before heads were kept gets them once, at the start, from its leaf
/// hashes (32 bytes per position read); returns how many were stored.
pub fn store_missing_subtrees(conn: &mut DbConn) -> Result<u64, CheckpointError> {
    let Some(latest) = db::checkpoints::latest(conn)? else {
        return Ok(0);
    };
    let size = u64::try_from(latest.size).unwrap_or(0);
    let expected: u64 = (STORED_LEVEL..64).map(|level| size >> level).sum();
    if db::log::subtree_count(conn)? >= as_i64(expected) {
        return Ok(0);
    }
    let heads = extend(conn, &mut Frontier::default(), size)?;
    for chunk in heads.chunks(1000) {
        write_transaction(conn, |conn| db::log::insert_subtrees(conn, chunk))?;
    }
    Ok(heads.len() as u64)
}

/// Pushes the stored leaf hashes from the tree's size up to `size` onto
/// it; returns the heads of the perfect subtrees of [`STORED_LEVEL`] and
/// more that they complete, as `db::log::insert_subtrees` takes them.
fn extend(
    conn: &mut DbConn,
    tree: &mut Frontier,
    size: u64,
) -> Result<Vec<(i32, i64, String)>, CheckpointError> {
    let mut heads = Vec::new();
    read_leaf_hashes(conn, tree.size(), size, |leaf| {
        tree.push_noting(leaf, |level, index, head| {
            if level >= STORED_LEVEL {
                heads.push((level as i32, as_i64(index), hex::encode(head)));
            }
        })
    })
    .map_err(|e| match e {
        LeafError::Db(db) => CheckpointError::Db(db),
        LeafError::Broken(why) => CheckpointError::Broken(why),
    })?;
    Ok(heads)
}

/// A tree's right edge as it is stored (checkpoints, the background check):
/// its subtree heads, hex, comma-separated.
pub fn frontier_text(tree: &Frontier) -> String {
    tree.subtrees()
        .iter()
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(",")
}

/// A tree's right edge read back from [`frontier_text`] at `size`; `None`
/// when it does not fit.
pub fn frontier_from_text(size: i64, text: &str) -> Option<Frontier> {
    let subtrees = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(parse_hash)
        .collect::<Option<Vec<_>>>()?;
    Frontier::from_parts(u64::try_from(size).ok()?, subtrees)
}

/// Why the stored leaf hashes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// A position is missing or its hash is not one.
    #[error("{0}")]
    Broken(String),
}

/// Hands `each` the stored leaf hashes of positions `from..to`, in order,
/// a page at a time; a missing position or an unreadable hash is an error.
pub fn read_leaf_hashes(
    conn: &mut DbConn,
    from: u64,
    to: u64,
    mut each: impl FnMut(Hash),
) -> Result<(), LeafError> {
    let mut next = from;
    while next < to {
        let page = db::log::leaf_hashes(conn, as_i64(next), as_i64(to - next).min(PAGE))?;
        if page.is_empty() {
            return Err(LeafError::Broken(format!("position {next} is missing")));
        }
        for (position, hash) in page {
            if position != as_i64(next) {
                return Err(LeafError::Broken(format!("position {next} is missing")));
            }
            each(parse_hash(&hash).ok_or_else(|| {
                LeafError::Broken(format!("position {position}: its leaf hash is not one"))
            })?);
            next += 1;
        }
    }
    Ok(())
}

/// The tree's right edge as a checkpoint stored it.
fn frontier_of(row: &CheckpointRow) -> Result<Frontier, CheckpointError> {
    frontier_from_text(row.size, &row.frontier).ok_or_else(|| {
        CheckpointError::Broken(format!(
            "the checkpoint of size {} has an unreadable frontier",
            row.size
        ))
    })
}

/// A hex SHA-256 hash.
pub fn parse_hash(hex_hash: &str) -> Option<Hash> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}

/// Appends a checkpoint's note to `path` (the copy outside the database),
/// followed by a blank line, and makes it durable.
pub fn append_to_log(path: &Path, note: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // A write cut short by a crash left a piece of a note: blank lines after
    // it keep it apart from this one (the reader passes over it).
    let length = file.metadata()?.len();
    let mut end = Vec::new();
    if length > 0 {
        use std::io::{Read, Seek, SeekFrom};
        file.seek(SeekFrom::Start(length.saturating_sub(2)))?;
        file.read_to_end(&mut end)?;
    }
    let separator = if length == 0 || end == b"\n\n" {
        ""
    } else {
        "\n\n"
    };
    file.write_all(format!("{separator}{note}\n").as_bytes())?;
    file.sync_data()
}

/// The notes of a checkpoint log written by [`append_to_log`]: each is its
/// text lines, a blank line, its signature lines (`— ...`), and a blank
/// line. A piece of a note whose write was cut short by a crash, at the end
/// or (the server went on appending) before later notes, is passed over:
/// see [`torn_pieces`].
pub fn notes_in_log(text: &str) -> Vec<String> {
    split_log(text).0
}

/// How many pieces of a checkpoint log are not whole notes.
pub fn torn_pieces(text: &str) -> usize {
    split_log(text).1
}

/// The whole notes, and how many pieces were not.
fn split_log(text: &str) -> (Vec<String>, usize) {
    let mut notes = Vec::new();
    let mut torn = 0;
    let mut body = String::new();
    let mut signatures = String::new();
    let mut body_ended = false;
    for line in text.split_inclusive('\n') {
        // The file's last line, cut short: one piece, with any body before
        // it that has no signature yet.
        if !line.ends_with('\n') {
            if whole_signatures(&signatures) {
                notes.push(format!("{body}\n{signatures}"));
            }
            return (notes, torn + 1);
        }
        if line == "\n" {
            if !signatures.is_empty() {
                if whole_signatures(&signatures) {
                    notes.push(format!("{body}\n{signatures}"));
                } else {
                    torn += 1;
                }
                signatures.clear();
                body.clear();
                body_ended = false;
            } else if !body.is_empty() {
                body_ended = true;
            }
            continue;
        }
        if body_ended && line.starts_with("— ") {
            signatures.push_str(line);
            continue;
        }
        // A text line after a body that ended without a signature, or after
        // signatures with no blank line: what came before was cut short.
        if body_ended || !signatures.is_empty() {
            torn += 1;
            body.clear();
            signatures.clear();
            body_ended = false;
        }
        body.push_str(line);
    }
    if whole_signatures(&signatures) {
        // Only its closing blank line missing: whole.
        notes.push(format!("{body}\n{signatures}"));
    } else if !body.trim().is_empty() || !signatures.is_empty() {
        torn += 1;
    }
    (notes, torn)
}

/// Whether signature lines are whole: each `— name base64`, its base64 the
/// 4-byte key id and a 64-byte Ed25519 signature. A line cut short by a
/// crash (and completed by the next write's line break) is not; a whole but
/// wrong signature is, and `verify` names it.
fn whole_signatures(lines: &str) -> bool {
    !lines.is_empty()
        && lines.lines().all(|line| {
            line.strip_prefix("— ")
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(_, blob)| BASE64.decode(blob).ok())
                .is_some_and(|blob| blob.len() == 4 + 64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_log_reads_back_note_by_note() {
        let key = SigningKey::generate("auditdesk").unwrap();
        let notes: Vec<String> = (1..=3)
            .map(|n| {
                let body = Checkpoint {
                    origin: "auditdesk".into(),
                    size: n,
                    root: [n as u8; 32],
                }
                .body();
                key.sign(&body).unwrap()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.log");
        for note in &notes {
            append_to_log(&path, note).unwrap();
        }
        let read = notes_in_log(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(read, notes);
        for note in &read {
            key.verifier().open(note).unwrap();
        }
        assert_eq!(torn_pieces(&std::fs::read_to_string(&path).unwrap()), 0);
        // A crash in the middle of the last write: the whole notes are read,
        // and the piece counted.
        let whole = std::fs::read_to_string(&path).unwrap();
        let cut = &whole[..whole.len() - 30];
        assert_eq!(notes_in_log(cut), notes[..2].to_vec());
        assert_eq!(torn_pieces(cut), 1);
        // Only its closing blank line lost: still whole.
        let no_blank = &whole[..whole.len() - 1];
        assert_eq!(notes_in_log(no_blank), notes);
        assert_eq!(torn_pieces(no_blank), 0);
        // The server started again and went on appending after the piece.
        for at in [
            whole.len() - 30,
            whole.len() - notes[2].len() + 12,
            whole.len() - 3,
        ] {
            std::fs::write(&path, &whole[..at]).unwrap();
            append_to_log(&path, &notes[2]).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(notes_in_log(&text), notes, "cut at {at}: {text:?}");
            assert_eq!(torn_pieces(&text), 1, "cut at {at}");
        }
    }

    #[test]
    fn a_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db.signing-key");
        let made = load_or_create_key(&path, "auditdesk").unwrap();
        let again = load_or_create_key(&path, "another-name").unwrap();
        assert_eq!(again.verifier(), made.verifier(), "kept, not made anew");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let err = load_or_create_key(&path, "auditdesk")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("signing key {}: malformed key", path.display())),
            "{err}"
        );
    }
}
