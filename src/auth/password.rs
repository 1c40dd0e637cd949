//! Password hashing with argon2id (OWASP's parameters, the argon2 crate's
//! defaults: m=19456 KiB, t=2, p=1). These calls are slow on purpose and
//! use ~19 MiB each: run them on a blocking thread, a few at a time.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A password that does not meet the rules, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(pub String);

/// Checks a new password against the rules.
pub fn check_new_password(password: &str) -> Result<(), WeakPassword> {
    if password.is_empty() {
        return Err(WeakPassword("the password is empty".into()));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(WeakPassword(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters long"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(WeakPassword(format!(
            "the password must be at most {MAX_PASSWORD_BYTES} bytes long"
        )));
    }
    Ok(())
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password up to the length limit")
        .to_string()
}

/// A hash to check against when the account does not exist, so that an unknown
/// user costs the same time as a wrong password and timing reveals nothing.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("no such user: dummy password"));

/// Checks `password` against `stored_hash`, or against a dummy hash when there is
/// no account (always false then). A malformed stored hash never matches.
pub fn verify_password(stored_hash: Option<&str>, password: &str) -> bool {
    let (hash, real) = match stored_hash {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(Some(&h), "correct horse battery"));
        assert!(!verify_password(Some(&h), "wrong horse battery"));
    }

    #[test]
    fn unknown_user_and_broken_hash_never_verify() {
        assert!(!verify_password(None, "no such user: dummy password"));
        assert!(!verify_password(Some("not a hash"), "x"));
    }

    #[test]
    fn weak_passwords_are_named() {
        assert_eq!(
            check_new_password("").unwrap_err().to_string(),
            "the password is empty"
        );
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
    }
}
