//! Row ids with a meaning: a user's id cannot be passed where a token's is
//! wanted (both are BIGINT in the database, and were both a bare `i64`).

use std::fmt;

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

row_id!(
    /// A user account's row id.
    UserId
);
row_id!(
    /// An API token's row id (what `token list` shows and `token revoke` takes).
    TokenId
);
