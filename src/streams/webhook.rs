//! Webhook streams: a `POST` of an NDJSON body (one event a line) to the
//! stream's URL, `Content-Type: application/x-ndjson`, the delivery's id in
//! `X-Auditdesk-Delivery` (the same id when a batch is sent again, so that a
//! receiver can tell a repeat) and, with a secret, `X-Auditdesk-Signature:
//! sha256=<hex HMAC-SHA256 of the body>`. Any 2xx answer is a delivery;
//! redirects are not followed (a 3xx is a failure that names it).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Certificate authorities trusted for HTTPS webhooks besides the system's
/// (`serve --stream-ca-file`): a receiver with a certificate of a private CA.
#[derive(Debug, Clone)]
pub struct Roots(Vec<reqwest::Certificate>);

impl Roots {
    /// The certificates of a PEM file; `Err` says why there are none.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("not PEM certificates: {}", source_of(&e)))?;
        if certificates.is_empty() {
            return Err("no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into());
        }
        Ok(Self(certificates))
    }
}

/// A client for one stream's URL.
pub struct Sender {
    client: reqwest::blocking::Client,
    url: url::Url,
    secret: Option<String>,
}

impl Sender {
    /// `timeout` bounds each delivery, connecting and the answer included;
    /// `roots` are trusted besides the system's certificate authorities.
    pub fn new(
        url: url::Url,
        secret: Option<String>,
        timeout: Duration,
        roots: Option<&Roots>,
    ) -> Result<Self, String> {
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("auditdesk/", env!("CARGO_PKG_VERSION")));
        if let Some(Roots(certificates)) = roots {
            builder = builder.tls_certs_merge(certificates.iter().cloned());
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }

    /// Sends one batch: `Err` names what failed.
    pub fn send(&self, body: String, delivery: Uuid) -> Result<(), String> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header("X-Auditdesk-Delivery", delivery.to_string());
        if let Some(secret) = &self.secret {
            request = request.header("X-Auditdesk-Signature", signature(secret, body.as_bytes()));
        }
        match request.body(body).send() {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!("the webhook answered HTTP {}", answer.status())),
            Err(e) if e.is_timeout() => Err("the webhook did not answer in time".into()),
            Err(e) if e.is_connect() => {
                Err(format!("cannot connect to the webhook: {}", source_of(&e)))
            }
            Err(e) => Err(format!("the webhook request failed: {}", source_of(&e))),
        }
    }
}

/// The innermost cause of an error, which says what happened (reqwest's own
/// message only says which request failed).
fn source_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
