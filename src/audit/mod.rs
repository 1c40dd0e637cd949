//! The audit domain: actions, events and their diffs, and storing them.
//! No HTTP and no SQL here: storage goes through `db`.

pub mod action;
pub mod demo;
pub mod event;
pub mod export;
pub mod filter;
pub mod free_text;
pub mod import;
pub mod param;
pub mod query;
pub mod search;
pub mod store;
pub mod visible;

pub use action::{Action, UnknownAction};
pub use event::{Actor, Diff, Event, EventInput, FieldChange, FieldError, NewEvent};
