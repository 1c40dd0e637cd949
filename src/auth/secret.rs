//! Passwords and token secrets: a type whose `Debug` prints `[redacted]` and
//! that has no `Display`, so that no log line, panic message or `{:?}` of a
//! form can show one; every read is a visible `expose()`.

use std::fmt;

use serde::Deserialize;

/// A password or an API token's secret.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must read it (hashing,
    /// verifying, showing a new token once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its length in bytes (for limits; says nothing else of it).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Form {
            username: String,
            password: Secret,
        }
        let form = Form {
            username: "alice".into(),
            password: Secret::new("hunter2"),
        };
        let printed = format!("{form:?} {:#?}", form);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert_eq!(form.password.expose(), "hunter2");
    }
}
