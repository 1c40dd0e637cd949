//! Signed notes (c2sp.org/signed-note) with Ed25519 keys, and the
//! checkpoints they carry (c2sp.org/tlog-checkpoint): the form in which the
//! log's tree heads are signed, so that anyone can check them with any
//! implementation of those specifications (Go's golang.org/x/mod/sumdb/note,
//! for one, whose test vectors the tests below reproduce).
//!
//! - A signer key is written `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`
//!   and its verifier key `<name>+<key id>+<base64(0x01 || public key)>`, where
//!   the key id is the first four bytes of SHA-256(name || "\n" || 0x01 || public key),
//!   in hex.
//! - A note is its text (lines ending in "\n", no other control characters),
//!   a blank line, then one line per signature:
//!   `— <name> <base64(key id || Ed25519 signature of the text)>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey as Ed25519Signing, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The algorithm byte of Ed25519 keys in signed notes.
const ED25519: u8 = 0x01;

/// What is wrong with a key's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not of the form the specification gives; the message says which part.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// The key id does not match the key and the name.
    #[error("the key id does not match the key")]
    WrongKeyId,
    /// A key of an algorithm other than Ed25519.
    #[error("not an Ed25519 key (algorithm byte {0:#04x})")]
    Algorithm(u8),
}

/// What is wrong with a note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The text cannot be signed as it is; the message says why.
    #[error("the note's text {0}")]
    Text(&'static str),
    /// The note is not text, a blank line and signature lines.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by this key (its name and key id).
    #[error("the note has no signature by {0}")]
    NotSigned(String),
    /// A signature by this key that does not verify.
    #[error("invalid signature by {0}")]
    BadSignature(String),
}

/// A name may be anything but empty, with no space and no '+'.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('+')
}

/// The key id of `name`'s key: the first four bytes of
/// SHA-256(name || "\n" || 0x01 || public key).
fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public.as_bytes());
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

/// A key that signs notes; its text never appears in a `Debug` or log line.
pub struct SigningKey {
    name: String,
    key: Ed25519Signing,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.verifier().encode())
    }
}

impl SigningKey {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_seed(name, seed)
    }

    /// The key named `name` with this Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::Malformed(
                "the name is empty or has a space or '+'",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            key: Ed25519Signing::from_bytes(&seed),
        })
    }

    /// Reads `PRIVATE+KEY+<name>+<key id>+<base64>` (surrounding white space
    /// allowed, as a key file ends with a line break).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Malformed("a signer key starts with PRIVATE+KEY+"))?;
        let (name, id, key) = three_parts(rest)?;
        let seed: [u8; 32] = algorithm_key(key)?
            .try_into()
            .map_err(|_| KeyError::Malformed("an Ed25519 seed is 32 bytes"))?;
        let signing = Self::from_seed(name, seed)?;
        if signing.verifier().key_id != id {
            return Err(KeyError::WrongKeyId);
        }
        Ok(signing)
    }

    /// The key's text, as [`Self::parse`] reads it.
    pub fn encode(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.verifier().key_id,
            BASE64.encode(key)
        )
    }

    /// The key that checks this key's signatures.
    pub fn verifier(&self) -> VerifierKey {
        let public = self.key.verifying_key();
        VerifierKey {
            key_id: key_id(&self.name, &public),
            name: self.name.clone(),
            key: public,
        }
    }

    /// Signs `text` (lines each ending in "\n", no other control character)
    /// and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(NoteError::Text("must end with a line break"));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Text("must not hold control characters"));
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.verifier().key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!("{text}\n— {} {}\n", self.name, BASE64.encode(blob)))
    }
}

/// A key that checks notes' signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Reads `<name>+<key id>+<base64>`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, id, key) = three_parts(text.trim())?;
        let public: [u8; 32] = algorithm_key(key)?
            .try_into()
            .map_err(|_| KeyError::Malformed("an Ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| KeyError::Malformed("not an Ed25519 public key"))?;
        if !valid_name(name) {
            return Err(KeyError::Malformed(
                "the name is empty or has a space or '+'",
            ));
        }
        if key_id(name, &key) != id {
            return Err(KeyError::WrongKeyId);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The key's text, as [`Self::parse`] reads it.
    pub fn encode(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(key))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, as the page shows it: eight hex digits.
    pub fn key_id(&self) -> String {
        format!("{:08x}", self.key_id)
    }

    /// The text of `note` when it carries a valid signature by this key.
    /// Signatures by other keys are passed over.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(NoteError::Malformed(
                "the signatures must end with a line break",
            ));
        }
        let who = format!("{}+{:08x}", self.name, self.key_id);
        let mut found = false;
        for line in signatures.lines() {
            let line = line
                .strip_prefix("— ")
                .ok_or(NoteError::Malformed("a signature line starts with '— '"))?;
            let (name, blob) = line.split_once(' ').ok_or(NoteError::Malformed(
                "a signature line has a name and a signature",
            ))?;
            let blob = BASE64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.key_id.to_be_bytes() {
                continue;
            }
            found = true;
            let signature = <[u8; 64]>::try_from(&blob[4..])
                .map(|b| Signature::from_bytes(&b))
                .map_err(|_| NoteError::BadSignature(who.clone()))?;
            if self.key.verify_strict(text.as_bytes(), &signature).is_ok() {
                return Ok(text);
            }
        }
        Err(if found {
            NoteError::BadSignature(who)
        } else {
            NoteError::NotSigned(who)
        })
    }
}

/// The signers a note names, as `name+keyid` (not checked: for showing).
pub fn signers(note: &str) -> Vec<String> {
    let Some(split) = note.rfind("\n\n") else {
        return Vec::new();
    };
    note[split + 2..]
        .lines()
        .filter_map(|line| {
            let (name, blob) = line.strip_prefix("— ")?.split_once(' ')?;
            let blob = BASE64.decode(blob).ok()?;
            let id: [u8; 4] = blob.get(..4)?.try_into().ok()?;
            Some(format!("{name}+{}", hex::encode(id)))
        })
        .collect()
}

/// `<name>+<key id in hex>+<base64 key>` split into its parts.
fn three_parts(text: &str) -> Result<(&str, u32, &str), KeyError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Malformed("a key is <name>+<key id>+<key>"));
    };
    if id.len() != 8 {
        return Err(KeyError::Malformed("a key id is eight hex digits"));
    }
    let id = u32::from_str_radix(id, 16)
        .map_err(|_| KeyError::Malformed("a key id is eight hex digits"))?;
    Ok((name, id, key))
}

/// The key bytes of a base64 `0x01 || key`.
fn algorithm_key(key: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = BASE64
        .decode(key)
        .map_err(|_| KeyError::Malformed("the key is not base64"))?;
    match bytes.split_first() {
        Some((&ED25519, rest)) => Ok(rest.to_vec()),
        Some((&other, _)) => Err(KeyError::Algorithm(other)),
        None => Err(KeyError::Malformed("the key is empty")),
    }
}

/// A checkpoint: the log named `origin` had `size` leaves with tree head
/// `root` (c2sp.org/tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: origin, size and base64 root, one line each.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Reads a checkpoint's note text (extension lines after the root are
    /// allowed and passed over, as the specification says).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty());
        let size = lines.next().filter(|s| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s.len() == 1 || !s.starts_with('0'))
        });
        let root = lines.next();
        let (Some(origin), Some(size), Some(root)) = (origin, size, root) else {
            return Err(NoteError::Malformed(
                "a checkpoint is origin, size and root lines",
            ));
        };
        let size = size
            .parse()
            .map_err(|_| NoteError::Malformed("the size is too large"))?;
        let root: Hash = BASE64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Malformed(
                "the root is not a base64 SHA-256 hash",
            ))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note's test vectors (note_test.go).
    const GO_SIGNER: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn keys_and_signatures_match_gos_note_package() {
        let signer = SigningKey::parse(GO_SIGNER).unwrap();
        assert_eq!(signer.encode(), GO_SIGNER);
        assert_eq!(signer.verifier().encode(), GO_VERIFIER);
        assert_eq!(signer.verifier().key_id(), "c74f20a3");
        assert_eq!(signer.sign(GO_TEXT).unwrap(), GO_NOTE);
        let verifier = VerifierKey::parse(GO_VERIFIER).unwrap();
        assert_eq!(verifier, signer.verifier());
        assert_eq!(verifier.open(GO_NOTE).unwrap(), GO_TEXT);
        assert_eq!(signers(GO_NOTE), ["PeterNeumann+c74f20a3"]);
        assert!(signers("no note").is_empty());
    }

    #[test]
    fn a_changed_note_or_another_key_fails() {
        let verifier = VerifierKey::parse(GO_VERIFIER).unwrap();
        let changed = GO_NOTE.replacen("cryptography", "cryptograph!", 1);
        assert_eq!(
            verifier.open(&changed),
            Err(NoteError::BadSignature("PeterNeumann+c74f20a3".into()))
        );
        let other = SigningKey::generate("PeterNeumann").unwrap();
        assert_eq!(
            other.verifier().open(GO_NOTE),
            Err(NoteError::NotSigned(format!(
                "PeterNeumann+{}",
                other.verifier().key_id()
            )))
        );
        // Its own signature added beside, the note opens with either key.
        let both = format!(
            "{GO_NOTE}{}",
            other.sign(GO_TEXT).unwrap().split("\n\n").nth(1).unwrap()
        );
        assert_eq!(verifier.open(&both).unwrap(), GO_TEXT);
        assert_eq!(other.verifier().open(&both).unwrap(), GO_TEXT);
        assert!(verifier.open("no signatures\n").is_err());
    }

    #[test]
    fn malformed_keys_are_refused_with_the_reason() {
        // Every truncation and every changed character of the signer key.
        let bytes = GO_SIGNER.as_bytes();
        for end in 1..bytes.len() {
            assert!(
                SigningKey::parse(&GO_SIGNER[..end]).is_err(),
                "{}",
                &GO_SIGNER[..end]
            );
        }
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = changed[i].wrapping_add(1);
            if let Ok(text) = String::from_utf8(changed) {
                assert!(SigningKey::parse(&text).is_err(), "{text}");
            }
        }
        assert_eq!(
            VerifierKey::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::WrongKeyId)
        );
        assert_eq!(
            VerifierKey::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::Algorithm(0x65))
        );
        assert!(SigningKey::generate("two words").is_err());
        assert!(SigningKey::generate("a+b").is_err());
    }

    #[test]
    fn generated_keys_round_trip_and_sign_checkpoints() {
        let key = SigningKey::generate("auditdesk.example/log").unwrap();
        let again = SigningKey::parse(&format!("{}\n", key.encode())).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        let checkpoint = Checkpoint {
            origin: "auditdesk.example/log".into(),
            size: 1234,
            root: [7; 32],
        };
        let note = key.sign(&checkpoint.body()).unwrap();
        let text = key.verifier().open(&note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), checkpoint);
        assert_eq!(
            checkpoint.body(),
            "auditdesk.example/log\n1234\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        assert!(key.sign("no line break").is_err());
        assert!(key.sign("a tab\there\n").is_err());
        for bad in [
            "",
            "origin\n",
            "origin\n012\nBwc=\n",
            "origin\n-1\nBwc=\n",
            "origin\n12\nnot base64\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
