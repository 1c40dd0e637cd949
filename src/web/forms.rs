//! POST forms: the CSRF token is checked before anything else of the form is
//! read, so a forged or token-less request is a 403 whatever its other fields
//! hold (CONTRACT.md), and only then are the fields parsed (a 400 naming what
//! is malformed).

use serde::de::DeserializeOwned;

use crate::error::AppError;

/// What knows the CSRF token a form must carry: the session after login
/// ([`super::session::TypedSession`]), a signed cookie before
/// ([`super::pre_login::PreLogin`]).
pub trait CsrfCheck {
    /// Refuses a token that is missing or not the expected one.
    fn check_csrf(&self, given: &str) -> Result<(), AppError>;
}

/// The form's `csrf_token` field, checked.
pub fn check_csrf(expected: &impl CsrfCheck, body: &[u8]) -> Result<(), AppError> {
    let token = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "csrf_token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    expected.check_csrf(&token)
}

/// A form with the expected CSRF token, read as `T` (other names, such as
/// `csrf_token` itself, are passed over).
pub fn read<T: DeserializeOwned>(expected: &impl CsrfCheck, body: &[u8]) -> Result<T, AppError> {
    check_csrf(expected, body)?;
    serde_urlencoded::from_bytes(body)
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))
}
