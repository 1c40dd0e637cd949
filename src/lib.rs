//! Auditdesk: an audit log that Site Managers and Auditors read in a browser.
//! The module list only; `main.rs` is the CLI and `tests/` use this crate.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod ids;
pub mod integrity;
pub mod memory;
pub mod net;
pub mod streams;
pub mod web;
