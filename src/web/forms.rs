//! POST forms: the CSRF token is checked before anything else of the form is
//! read, so a forged or token-less request is a 403 whatever its other fields
//! hold (CONTRACT.md), and only then are the fields parsed (a 400 naming what
//! is malformed).

use serde::de::DeserializeOwned;

use super::session::TypedSession;
use crate::error::AppError;

/// The form's `csrf_token` field, checked against the session's.
pub fn check_csrf(session: &TypedSession, body: &[u8]) -> Result<(), AppError> {
    let token = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "csrf_token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    session.check_csrf(&token)
}

/// A form with this session's CSRF token, read as `T` (other names, such as
/// `csrf_token` itself, are passed over).
pub fn read<T: DeserializeOwned>(session: &TypedSession, body: &[u8]) -> Result<T, AppError> {
    check_csrf(session, body)?;
    serde_urlencoded::from_bytes(body)
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))
}
