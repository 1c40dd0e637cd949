//! The CSRF token of the forms shown before anyone has logged in (login and
//! setup), kept without a stored row: a visitor who only looks at the login
//! page must cost the database nothing.
//!
//! It is the OWASP "signed double-submit cookie": the visitor's browser holds
//! a random value in a cookie of its own (HttpOnly, SameSite=Lax, `__Host-`
//! on https), and the form carries an HMAC of that value under a server key
//! shared by every instance. A forged form from another site has neither the
//! cookie's value nor the key, so it cannot produce the matching token.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::AppState;
use super::forms::CsrfCheck;
use crate::error::AppError;

/// The cookie's name, with `__Host-` in front when cookies are Secure.
pub const COOKIE: &str = "auditdesk_form";

/// The key that signs pre-login tokens.
#[derive(Clone)]
pub struct FormKey([u8; 32]);

impl FormKey {
    /// A key of its own, derived from the shared cookie key.
    pub fn derive(master: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes any key length");
        mac.update(b"auditdesk pre-login form token v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self, nonce: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(nonce.as_bytes());
        mac
    }
}

/// A visitor's pre-login forms: the token to put in them and to check.
pub struct PreLogin {
    key: FormKey,
    nonce: String,
    /// The cookie to send, when the visitor had none (or a malformed one).
    new_cookie: Option<Cookie<'static>>,
}

impl PreLogin {
    /// The token for this visitor's forms.
    pub fn token(&self) -> String {
        hex::encode(self.key.mac(&self.nonce).finalize().into_bytes())
    }

    /// Sends the visitor its cookie if it is new.
    pub fn attach(&self, mut response: HttpResponse) -> HttpResponse {
        if let Some(cookie) = &self.new_cookie {
            // A cookie built here always encodes to a valid header.
            let _ = response.add_cookie(cookie);
        }
        response
    }
}

impl CsrfCheck for PreLogin {
    fn check_csrf(&self, given: &str) -> Result<(), AppError> {
        // A visitor without the cookie has no token to match.
        if self.new_cookie.is_some() {
            return Err(AppError::Csrf);
        }
        let given = hex::decode(given).map_err(|_| AppError::Csrf)?;
        self.key
            .mac(&self.nonce)
            .verify_slice(&given)
            .map_err(|_| AppError::Csrf)
    }
}

fn is_nonce(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn pre_login(req: &HttpRequest) -> Result<PreLogin, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::Internal("application state missing".into()))?;
    let name = state.config.cookie_name(COOKIE);
    if let Some(cookie) = req.cookie(&name).filter(|c| is_nonce(c.value())) {
        return Ok(PreLogin {
            key: state.form_key.clone(),
            nonce: cookie.value().to_owned(),
            new_cookie: None,
        });
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let nonce = hex::encode(bytes);
    let cookie = Cookie::build(name, nonce.clone())
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .finish();
    Ok(PreLogin {
        key: state.form_key.clone(),
        nonce,
        new_cookie: Some(cookie),
    })
}

impl FromRequest for PreLogin {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(pre_login(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitor(key: &FormKey, nonce: &str) -> PreLogin {
        PreLogin {
            key: key.clone(),
            nonce: nonce.into(),
            new_cookie: None,
        }
    }

    #[test]
    fn a_token_matches_only_its_own_cookie_and_key() {
        let key = FormKey::derive(b"one shared key");
        let a = visitor(&key, &"a".repeat(64));
        let b = visitor(&key, &"b".repeat(64));
        assert!(a.check_csrf(&a.token()).is_ok());
        assert!(b.check_csrf(&a.token()).is_err());
        assert!(a.check_csrf("").is_err());
        assert!(a.check_csrf("not hex").is_err());
        let other_key = visitor(&FormKey::derive(b"another key"), &"a".repeat(64));
        assert!(other_key.check_csrf(&a.token()).is_err());
        let no_cookie = PreLogin {
            new_cookie: Some(Cookie::new(COOKIE, "x")),
            ..visitor(&key, &"a".repeat(64))
        };
        assert!(no_cookie.check_csrf(&a.token()).is_err());
    }
}
