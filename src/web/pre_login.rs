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
use crate::ids::UserId;

/// The cookie's name, with `__Host-` in front when cookies are Secure.
pub const COOKIE: &str = "auditdesk_form";

/// The key that signs pre-login tokens.
#[derive(Clone)]
pub struct FormKey([u8; 32]);

impl FormKey {
    /// A key of its own, derived from the shared cookie key.
    pub fn derive(master: &[u8]) -> Self {
        Self::derive_for(master, b"auditdesk pre-login form token v1")
    }

    /// A key for `purpose`, derived from the shared cookie key: each use of
    /// it gets one, so that a value signed for one use is no good for another.
    fn derive_for(master: &[u8], purpose: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes any key length");
        mac.update(purpose);
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

/// The device cookie's name, with `__Host-` in front when cookies are Secure.
pub const DEVICE_COOKIE: &str = "auditdesk_device";

/// How long a browser is known as an account's device after it logged in.
const DEVICE_DAYS: i64 = 365;

/// OWASP's device cookie ("Slow Down Online Guessing Attacks with Device
/// Cookies"): a browser that logged in to an account gets a signed cookie
/// naming it, and is then not slowed by the pacing that a distributed attack
/// on that account brings on (see [`crate::auth::login::policy`]), so that
/// its owner gets in while the account is under attack.
#[derive(Clone)]
pub struct DeviceKey(FormKey);

impl DeviceKey {
    /// The key, derived from the shared cookie key (every instance has it).
    pub fn derive(master: &[u8]) -> Self {
        Self(FormKey::derive_for(master, b"auditdesk device cookie v1"))
    }

    fn signature(&self, user: UserId, nonce: &str) -> Hmac<Sha256> {
        self.0.mac(&format!("{user}.{nonce}"))
    }

    /// The cookie for a browser that has just logged in to `user`.
    pub fn cookie(&self, config: &crate::config::Config, user: UserId) -> Cookie<'static> {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let signature = hex::encode(self.signature(user, &nonce).finalize().into_bytes());
        Cookie::build(
            config.cookie_name(DEVICE_COOKIE),
            format!("{user}.{nonce}.{signature}"),
        )
        .path("/")
        .http_only(true)
        .secure(config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(DEVICE_DAYS))
        .finish()
    }

    /// The account whose device cookie the request carries, if it carries a
    /// genuine one.
    pub fn known_device(
        &self,
        config: &crate::config::Config,
        req: &HttpRequest,
    ) -> Option<UserId> {
        let cookie = req.cookie(&config.cookie_name(DEVICE_COOKIE))?;
        self.check(cookie.value())
    }

    fn check(&self, value: &str) -> Option<UserId> {
        let mut parts = value.splitn(3, '.');
        let user = UserId(parts.next()?.parse().ok()?);
        let nonce = parts.next()?;
        let signature = hex::decode(parts.next()?).ok()?;
        self.signature(user, nonce)
            .verify_slice(&signature)
            .ok()
            .map(|()| user)
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
    fn a_device_cookie_names_only_the_account_it_was_signed_for() {
        let key = DeviceKey::derive(b"one shared key");
        let config = crate::config::Config::new(crate::db::DatabaseUrl::Sqlite("x.db".into()));
        let cookie = key.cookie(&config, UserId(7));
        assert_eq!(key.check(cookie.value()), Some(UserId(7)));
        let forged = cookie.value().replacen('7', "8", 1);
        assert_eq!(key.check(&forged), None, "another account's id");
        assert_eq!(
            DeviceKey::derive(b"another key").check(cookie.value()),
            None
        );
        // A form token's key does not make device cookies.
        let form = FormKey::derive(b"one shared key");
        let (_, rest) = cookie.value().split_once('.').unwrap();
        let nonce = rest.split_once('.').unwrap().0;
        let as_form = hex::encode(form.mac(&format!("7.{nonce}")).finalize().into_bytes());
        assert_eq!(key.check(&format!("7.{nonce}.{as_form}")), None);
        for junk in ["", "7", "7.x", "x.y.z", "7.abc.zz"] {
            assert_eq!(key.check(junk), None, "{junk:?}");
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
