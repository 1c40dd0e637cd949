//! Evidence that the log was not changed: every stored event is a leaf of an
//! RFC 6962 Merkle tree in log-position order, whose roots signed checkpoints
//! commit to (CONTRACT.md, "Integrity"). Domain code only: no actix, no diesel.

pub mod checkpoint;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod seal;
pub mod verify;
pub mod watch;
