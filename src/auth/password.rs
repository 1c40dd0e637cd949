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

/// How many characters of a new password the strength estimate reads: its
/// cost grows fast with length, and a prefix that is hard to guess makes the
/// whole hard to guess.
const ESTIMATED_CHARS: usize = 100;

/// Checks a new password against the rules: its length, and how easily it
/// is guessed (zxcvbn, with its dictionaries of common passwords, names and
/// words, keyboard patterns, dates and repeats, and `context`: the account's
/// own username and email, which an attacker knows too). A password an
/// attacker would find in under about 10^8 guesses (zxcvbn's score below 3)
/// is refused, with zxcvbn's reason.
pub fn check_new_password(password: &str, context: &[&str]) -> Result<(), WeakPassword> {
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
    let prefix: String = password.chars().take(ESTIMATED_CHARS).collect();
    let mut inputs: Vec<&str> = context.iter().copied().filter(|c| !c.is_empty()).collect();
    // The parts of an email address are guesses too.
    for c in context {
        if let Some((local, domain)) = c.split_once('@') {
            inputs.extend([local, domain]);
        }
    }
    let estimate = zxcvbn::zxcvbn(&prefix, &inputs);
    if estimate.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    let mut why = String::from("the password is too easy to guess");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            let warning = warning.to_string();
            let mut chars = warning.trim_end_matches('.').chars();
            let lowered: String = chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default();
            why.push_str(&format!(" ({lowered})"));
        }
        let tips: Vec<String> = feedback
            .suggestions()
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !tips.is_empty() {
            // The pages end the message with a full stop of their own.
            why.push_str(&format!(": {}", tips.join(" ").trim_end_matches('.')));
        } else {
            why.push_str(": add another word or two that are not common together");
        }
    }
    Err(WeakPassword(why))
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
            check_new_password("", &[]).unwrap_err().to_string(),
            "the password is empty"
        );
        assert!(check_new_password("short", &[]).is_err());
        for common in [
            "password",
            "12345678",
            "123456789012",
            "          ",
            "qwertyuiop",
            "P@ssw0rd1",
        ] {
            let why = check_new_password(common, &[]).unwrap_err().to_string();
            assert!(
                why.starts_with("the password is too easy to guess"),
                "{common:?}: {why}"
            );
        }
        assert!(check_new_password("correct horse battery", &[]).is_ok());
        assert_eq!(
            check_new_password("password1234", &[])
                .unwrap_err()
                .to_string(),
            "the password is too easy to guess (this is a very common password): Add another word or two. Uncommon words are better",
        );
    }

    #[test]
    fn the_accounts_own_name_and_email_count_as_guesses() {
        let strong_elsewhere = "vanderwaals-1984";
        assert!(check_new_password(strong_elsewhere, &[]).is_ok());
        // The integration tests' account names, strong but for the context.
        assert!(check_new_password("wintergreen-1987", &[]).is_ok());
        let why = check_new_password(strong_elsewhere, &["jdoe", "vanderwaals-1984@example.com"]);
        assert!(why.is_err(), "the email's local part is no secret");
    }

    #[test]
    fn a_long_password_is_estimated_by_its_start() {
        let long = "z".repeat(MAX_PASSWORD_BYTES);
        assert!(
            check_new_password(&long, &[]).is_err(),
            "a repeat, whatever its length"
        );
    }
}
