//! The proof that one event is in the signed log: its leaf's place in the
//! tree of the latest checkpoint and the RFC 6962 audit path to that
//! checkpoint's head, which any RFC 6962 implementation can check (see the
//! README, "Checking the log yourself").
//!
//! The path is computed from the stored leaf hashes of the whole checkpoint
//! (32 bytes each read per request); stored subtree hashes would make it
//! O(log n) and are still to come.

use crate::db::{self, DbConn, DbError};

use super::checkpoint::{LeafError, read_leaf_hashes};
use super::merkle::{Hash, inclusion_proof};

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
    let size = usize::try_from(checkpoint.size)
        .map_err(|_| ProofError::Broken("the checkpoint's size".into()))?;
    let mut leaves: Vec<Hash> = Vec::with_capacity(size);
    read_leaf_hashes(conn, 0, size as u64, |leaf| leaves.push(leaf)).map_err(|e| match e {
        LeafError::Db(db) => ProofError::Db(db),
        LeafError::Broken(why) => ProofError::Broken(why),
    })?;
    let index = usize::try_from(position).unwrap_or(usize::MAX);
    let audit_path = inclusion_proof(index, &leaves)
        .ok_or_else(|| ProofError::Broken(format!("position {position} is not in the tree")))?;
    Ok(Proof {
        leaf_index: index as u64,
        tree_size: size as u64,
        leaf_hash: leaves[index],
        audit_path,
        checkpoint: checkpoint.note,
    })
}
