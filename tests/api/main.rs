//! The one integration-test binary: the real application over real databases.

mod audit_page;
mod auth;
mod browser;
mod cli;
mod durability;
mod exactness;
mod export;
mod health;
mod helpers;
mod ingest;
mod request_id;
mod statuses;
mod storage;
mod users;
mod webdriver;
