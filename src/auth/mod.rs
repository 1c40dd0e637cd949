//! Who may get in and what they may do: passwords, roles, user accounts.

pub mod login;
pub mod password;
pub mod role;
pub mod secret;
pub mod tokens;
pub mod users;

pub use role::{Role, UnknownRole};
pub use secret::Secret;
pub use users::{ChangedBy, User, UserError};
