//! The proof that one event is in the signed log: its leaf's place in the
//! tree of the latest checkpoint and the RFC 6962 audit path to that
//! checkpoint's head, which any RFC 6962 implementation can check (see the
//! README, "Checking the log yourself").
//!
//! The path is built from the heads of perfect subtrees: those of 256
//! positions and more as the checkpointer stored them (`log_subtrees`), the
//! smaller ones from the leaf hashes; O(log n) stored heads and a few hundred
//! leaf hashes per proof. A head not stored (the log was checkpointed before
//! heads were kept, until the start fills them in) is computed from the
//! leaves. Every
//! proof is checked against the checkpoint's signed head before it is served;
//! one that fails is built again from the leaf hashes alone.

use crate::db::{self, DbConn, DbError};

use super::checkpoint::{LeafError, STORED_LEVEL, parse_hash, read_leaf_hashes};
use super::merkle::{Frontier, Hash, inclusion_path, verify_inclusion};
use super::note::Checkpoint;

/// An event's inclusion proof against the latest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    pub audit_path: Vec<Hash>,
    /// The signed note of the checkpoint the path leads to.
    pub checkpoint: String,
}

/// Why there is no proof.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// No event has this id.
    #[error("no event has the id {0}")]
    NoSuchEvent(String),
    /// The event is newer than the latest checkpoint.
    #[error("event {0} is not in a signed checkpoint yet; ask again after the next one")]
    NotYetSigned(String),
    /// The stored log is broken; `auditdesk verify` says how.
    #[error("the log cannot prove it: {0}")]
    Broken(String),
}

/// The proof for the event whose id (uuid) is `event_id`.
pub fn for_event(conn: &mut DbConn, event_id: &str) -> Result<Proof, ProofError> {
    let row = db::events::find_by_uuid(conn, event_id)?
        .ok_or_else(|| ProofError::NoSuchEvent(event_id.to_owned()))?;
    let not_yet = || ProofError::NotYetSigned(event_id.to_owned());
    let position = db::log::position_of(conn, row.id)?.ok_or_else(not_yet)?;
    let checkpoint = db::checkpoints::latest(conn)?.ok_or_else(not_yet)?;
    if position >= checkpoint.size {
        return Err(not_yet());
    }
    let index = u64::try_from(position)
        .map_err(|_| ProofError::Broken(format!("the event's position {position} is not one")))?;
    // The size and head as the served note signs them.
    let signed = checkpoint
        .note
        .find("\n\n")
        .and_then(|end| Checkpoint::parse(&checkpoint.note[..=end]).ok())
        .ok_or_else(|| ProofError::Broken("the latest checkpoint's note is unreadable".into()))?;
    let (size, signed_root) = (signed.size, signed.root);
    if i64::try_from(size).ok() != Some(checkpoint.size) {
        return Err(ProofError::Broken(format!(
            "the latest checkpoint's note signs size {size}, its row says {}",
            checkpoint.size
        )));
    }
    let leaf_hash = subtree_head(conn, 0, index, false)?;
    let mut path = audit_path(conn, index, size, true)?;
    if !verify_inclusion(&leaf_hash, index, size, &path, &signed_root) {
        tracing::error!(
            position,
            size,
            "the stored subtree heads disagree with the signed checkpoint: the proof is built from the leaf hashes"
        );
        path = audit_path(conn, index, size, false)?;
        if !verify_inclusion(&leaf_hash, index, size, &path, &signed_root) {
            return Err(ProofError::Broken(format!(
                "the stored leaf hashes do not lead to the signed tree head of size {size}; run `auditdesk verify`"
            )));
        }
    }
    Ok(Proof {
        leaf_index: index,
        tree_size: size,
        leaf_hash,
        audit_path: path,
        checkpoint: checkpoint.note,
    })
}

fn audit_path(
    conn: &mut DbConn,
    index: u64,
    size: u64,
    stored: bool,
) -> Result<Vec<Hash>, ProofError> {
    inclusion_path(index, size, &mut |level, i| {
        subtree_head(conn, level, i, stored)
    })?
    .ok_or_else(|| ProofError::Broken(format!("position {index} is not in the tree")))
}

/// The head of the perfect subtree of `level` and `index`: stored (when
/// `stored` and it is one of those kept), else from the leaf hashes.
fn subtree_head(
    conn: &mut DbConn,
    level: u32,
    index: u64,
    stored: bool,
) -> Result<Hash, ProofError> {
    let broken = |why: String| ProofError::Broken(why);
    if stored && level >= STORED_LEVEL {
        let (l, i) = (level as i32, i64::try_from(index).unwrap_or(i64::MAX));
        if let Some(head) = db::log::subtree(conn, l, i)? {
            return parse_hash(&head)
                .ok_or_else(|| broken(format!("subtree {level}/{index}: its head is not a hash")));
        }
    }
    // Not stored (the log was signed before heads were kept, and the start
    // that fills them in has not finished): from the leaf hashes, one pass.
    let leaves = 1u64.checked_shl(level).unwrap_or(u64::MAX);
    let from = index
        .checked_mul(leaves)
        .ok_or_else(|| broken(format!("subtree {level}/{index} is past any position")))?;
    let mut tree = Frontier::default();
    read_leaf_hashes(conn, from, from.saturating_add(leaves), |leaf| {
        tree.push(leaf)
    })
    .map_err(|e| match e {
        LeafError::Db(db) => ProofError::Db(db),
        LeafError::Broken(why) => ProofError::Broken(why),
    })?;
    Ok(tree.root())
}
