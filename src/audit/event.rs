//! An audit event, and the interchange format it arrives and leaves in
//! (CONTRACT.md: import, NDJSON export, the JSON API).

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::action::Action;

/// Who performed the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub username: String,
    #[serde(default)]
    pub email: String,
}

/// One changed field: its old and new value, or, for a secret, only the fact
/// that it changed (secret values are never stored).
///
/// Kept exactly as received (CONTRACT.md, "Exactness"): `old` and `new` are
/// each absent (`None`) or any JSON value, `null` included (`Some(Value::Null)`),
/// and `secret` is absent, `true` or `false` as the sender wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub old: Option<Value>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub new: Option<Value>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret: Option<bool>,
}

/// A key that is present is `Some`, whatever its value (`null` too); a missing
/// key is `None` through `#[serde(default)]`. Plain `Option` would read `null`
/// as missing and lose it.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl FieldChange {
    /// A change the application records itself: the values, marked not secret.
    pub fn values(old: Option<Value>, new: Option<Value>) -> Self {
        Self {
            old,
            new,
            secret: Some(false),
        }
    }

    /// A change of a secret: only the fact that it changed.
    pub fn secret() -> Self {
        Self {
            old: None,
            new: None,
            secret: Some(true),
        }
    }

    /// Whether the field is a secret (its values are never stored or shown).
    pub fn is_secret(&self) -> bool {
        self.secret == Some(true)
    }
}

/// The changed fields of an event, by field name, in the order sent.
pub type Diff = IndexMap<String, FieldChange>;

/// Reads a diff, refusing a field name given twice (JSON keeps only one of
/// them, so storing the object would silently lose the other).
fn diff_without_repeats<'de, D>(deserializer: D) -> Result<Option<Diff>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct DiffVisitor;
    impl<'de> serde::de::Visitor<'de> for DiffVisitor {
        type Value = Diff;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of changed fields")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Diff, A::Error> {
            let mut diff = Diff::new();
            while let Some(name) = map.next_key::<String>()? {
                if diff.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "the field '{}' is given twice",
                        super::visible::escaped(&name)
                    )));
                }
                let change = map.next_value::<FieldChange>()?;
                diff.insert(name, change);
            }
            Ok(diff)
        }
    }
    struct Wrapped(Diff);
    impl<'de> Deserialize<'de> for Wrapped {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(DiffVisitor).map(Wrapped)
        }
    }
    Option::<Wrapped>::deserialize(deserializer).map(|w| w.map(|w| w.0))
}

/// A validated audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub user: Actor,
    pub action: Action,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_target: String,
    pub diff: Diff,
    pub ip: String,
    pub user_agent: String,
    pub status_code: u16,
    pub request_id: String,
}

/// An event as it arrives, before validation. Unknown keys are refused rather
/// than silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    pub id: Option<String>,
    pub time: Option<String>,
    pub user: Option<Actor>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub resource_target: Option<String>,
    #[serde(default, deserialize_with = "diff_without_repeats")]
    pub diff: Option<Diff>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(default, deserialize_with = "status_code")]
    pub status_code: Option<u16>,
    pub request_id: Option<String>,
}

/// `status_code`, with an error that says what is expected in the sender's
/// terms ("expected an integer", not "expected u16"); `null` is as if absent.
fn status_code<'de, D>(deserializer: D) -> Result<Option<u16>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Code(u16);
    struct CodeVisitor;
    impl serde::de::Visitor<'_> for CodeVisitor {
        type Value = Code;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer (an HTTP status code, 100-599)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Code, E> {
            u16::try_from(v)
                .map(Code)
                .map_err(|_| E::custom(format!("{v} is not an HTTP status code (100-599)")))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Code, E> {
            Err(E::custom(format!(
                "{v} is not an HTTP status code (100-599)"
            )))
        }
    }
    impl<'de> Deserialize<'de> for Code {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            // A u64 hint, not u16: a number out of u16's range then reaches
            // `visit_u64` and gets our message, from text and from a `Value`.
            d.deserialize_u64(CodeVisitor)
        }
    }
    Option::<Code>::deserialize(deserializer).map(|c| c.map(|c| c.0))
}

/// A field of an incoming event that is missing or wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name in the interchange format, e.g. `user.username` or `diff.color_bg`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Limits on incoming fields: an over-long value is refused, never cut.
pub mod limits {
    pub const USERNAME: usize = 256;
    pub const EMAIL: usize = 320;
    pub const RESOURCE_TYPE: usize = 100;
    pub const RESOURCE_ID: usize = 256;
    pub const RESOURCE_TARGET: usize = 1024;
    pub const USER_AGENT: usize = 1024;
    pub const REQUEST_ID: usize = 256;
    pub const DIFF_FIELDS: usize = 100;
    pub const DIFF_FIELD_NAME: usize = 200;
    /// Bytes of one old or new value, as JSON.
    pub const DIFF_VALUE: usize = 16 * 1024;
}

/// How far ahead of the server's clock an event's time may be (clock skew).
const MAX_FUTURE_SKEW_SECONDS: i64 = 300;

/// A validated event ready to be stored, with the fingerprint of its content that
/// makes retries idempotent.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Event,
    /// SHA-256 over what the sender supplied (the time only when the sender gave
    /// one), so that a retry of the same event matches even when the server
    /// assigned the time on first arrival.
    pub content_hash: String,
    /// The fingerprint the same event had when it was stored before diffs were
    /// kept exactly (null values dropped, numbers through f64, keys sorted),
    /// when that differs: a retry of an event stored then is no conflict.
    pub earlier_hash: Option<String>,
}

impl NewEvent {
    /// Wraps an event made inside the application (logins, user changes), whose
    /// time is always its own.
    pub fn new(event: Event) -> Self {
        let content_hash = content_hash(&event, true);
        Self {
            event,
            content_hash,
            earlier_hash: None,
        }
    }
}

impl EventInput {
    /// Parses one JSON object of the interchange format.
    ///
    /// A type error names the path of the field (`status_code`, `user.username`,
    /// `diff.color.old`). The path is tracked only when the fast parse fails, so
    /// that the write path pays nothing for it.
    pub fn from_json(text: &str) -> Result<Self, FieldError> {
        serde_json::from_str(text).map_err(|first| {
            let mut de = serde_json::Deserializer::from_str(text);
            located(serde_path_to_error::deserialize(&mut de), first)
        })
    }

    /// Checks every field and builds the event; `now` fills a missing time.
    /// Secret diff values are dropped here, before anything can store them.
    pub fn validate(self, now: DateTime<Utc>) -> Result<NewEvent, FieldError> {
        let time_given = self.time.is_some();
        let id = match self.id.as_deref() {
            Some(raw) => Uuid::parse_str(raw)
                .map_err(|_| FieldError::new("id", format!("'{}' is not a UUID", clip(raw))))?,
            None => Uuid::new_v4(),
        };
        let time = match self.time.as_deref() {
            Some(raw) => parse_time(raw)?,
            None => now,
        };
        let time = truncate_to_micros(time);
        if time > now + Duration::seconds(MAX_FUTURE_SKEW_SECONDS) {
            return Err(FieldError::new(
                "time",
                format!(
                    "{} is in the future",
                    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                ),
            ));
        }
        let user = self
            .user
            .ok_or_else(|| FieldError::new("user", "is required"))?;
        let username = text("user.username", user.username, limits::USERNAME, true)?;
        let email = text("user.email", user.email, limits::EMAIL, false)?;
        let action_name = self
            .action
            .ok_or_else(|| FieldError::new("action", "is required"))?;
        let action = action_name
            .parse::<Action>()
            .map_err(|e| FieldError::new("action", e.to_string()))?;
        let resource_type = text(
            "resource_type",
            self.resource_type.unwrap_or_default(),
            limits::RESOURCE_TYPE,
            true,
        )?;
        let resource_id = text(
            "resource_id",
            self.resource_id.unwrap_or_default(),
            limits::RESOURCE_ID,
            false,
        )?;
        let resource_target = text(
            "resource_target",
            self.resource_target.unwrap_or_default(),
            limits::RESOURCE_TARGET,
            false,
        )?;
        let ip = self.ip.unwrap_or_default();
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            return Err(FieldError::new(
                "ip",
                format!("'{}' is not an IP address", clip(&ip)),
            ));
        }
        let user_agent = text(
            "user_agent",
            self.user_agent.unwrap_or_default(),
            limits::USER_AGENT,
            false,
        )?;
        let status_code = self.status_code.unwrap_or(200);
        if !(100..=599).contains(&status_code) {
            return Err(FieldError::new(
                "status_code",
                format!("{status_code} is not an HTTP status code (100-599)"),
            ));
        }
        let request_id = text(
            "request_id",
            self.request_id.unwrap_or_default(),
            limits::REQUEST_ID,
            false,
        )?;
        let diff = validate_diff(self.diff.unwrap_or_default())?;
        let event = Event {
            id,
            time,
            user: Actor { username, email },
            action,
            resource_type,
            resource_id,
            resource_target,
            diff,
            ip,
            user_agent,
            status_code,
            request_id,
        };
        let content_hash = content_hash(&event, time_given);
        let earlier_hash = earlier_hash(&event, time_given).filter(|h| *h != content_hash);
        Ok(NewEvent {
            event,
            content_hash,
            earlier_hash,
        })
    }
}

/// The error of a parse that tracked the path, as a field error; `first` is
/// the error of the untracked parse (the same one, in every case we know).
fn located(
    tracked: Result<EventInput, serde_path_to_error::Error<serde_json::Error>>,
    first: serde_json::Error,
) -> FieldError {
    let (path, inner) = match tracked {
        Err(e) => (e.path().to_string(), e.into_inner()),
        Ok(_) => (".".to_owned(), first),
    };
    if inner.is_syntax() || inner.is_eof() {
        return FieldError::new(
            "event",
            format!(
                "is not valid JSON: {}",
                super::visible::escaped(&inner.to_string())
            ),
        );
    }
    // serde's messages name a missing or unknown key themselves; the path then
    // names the object that has (or lacks) it. Both may quote the sender's
    // text (a key), and are printed on terminals too: escaped.
    let field = if path == "." {
        "event".to_owned()
    } else {
        super::visible::escaped(&path)
    };
    FieldError::new(field, super::visible::escaped(&json_error_message(&inner)))
}

fn json_error_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// A received value quoted in an error message: hidden characters escaped
/// (it may be printed on a terminal), and long values cut.
fn clip(s: &str) -> String {
    let s = super::visible::escaped(s);
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn text(
    field: &str,
    value: String,
    max_bytes: usize,
    required: bool,
) -> Result<String, FieldError> {
    if required && value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if value.len() > max_bytes {
        return Err(FieldError::new(
            field,
            format!(
                "is {} bytes long, more than the limit of {max_bytes}",
                value.len()
            ),
        ));
    }
    refuse_nul(field, &value)?;
    Ok(value)
}

/// Text is kept byte for byte, control and bidi characters included; only NUL
/// is refused, since PostgreSQL's text cannot hold it (and SQLite then must
/// not hold it either, so that both backends keep the same events).
fn refuse_nul(field: &str, value: &str) -> Result<(), FieldError> {
    match value.find('\0') {
        Some(at) => Err(FieldError::new(
            field,
            format!("contains NUL (U+0000) at byte {at}, which cannot be stored"),
        )),
        None => Ok(()),
    }
}

/// Parses an RFC 3339 time (`2026-03-01T12:34:56.789Z`, any offset) into UTC.
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                "time",
                format!(
                    "'{}' is not an RFC 3339 time such as 2026-03-01T12:34:56.789Z",
                    clip(raw)
                ),
            )
        })
}

/// Times are kept at microsecond precision, the finer of what both databases hold.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

fn validate_diff(diff: Diff) -> Result<Diff, FieldError> {
    if diff.len() > limits::DIFF_FIELDS {
        return Err(FieldError::new(
            "diff",
            format!(
                "has {} fields, more than the limit of {}",
                diff.len(),
                limits::DIFF_FIELDS
            ),
        ));
    }
    let mut kept = Diff::new();
    for (name, change) in diff {
        let field = format!("diff.{}", clip(&name));
        if name.len() > limits::DIFF_FIELD_NAME {
            return Err(FieldError::new(
                field,
                format!(
                    "the field name is {} bytes long, more than the limit of {}",
                    name.len(),
                    limits::DIFF_FIELD_NAME
                ),
            ));
        }
        // The diff is stored as JSON text, where NUL is written `\u0000`: names
        // and values may hold it.
        let change = if change.is_secret() {
            FieldChange::secret()
        } else {
            for value in [&change.old, &change.new].into_iter().flatten() {
                let size = serde_json::to_string(value)
                    .map(|s| s.len())
                    .unwrap_or(usize::MAX);
                if size > limits::DIFF_VALUE {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "a value is {size} bytes long, more than the limit of {}",
                            limits::DIFF_VALUE
                        ),
                    ));
                }
            }
            change
        };
        kept.insert(name, change);
    }
    Ok(kept)
}

/// The event in the interchange format (`D`: the diff, or the diff as the
/// content hash reads it).
#[derive(Serialize)]
struct Interchange<'a, D: Serialize = &'a Diff> {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    user: &'a Actor,
    action: &'static str,
    resource_type: &'a str,
    resource_id: &'a str,
    resource_target: &'a str,
    diff: D,
    ip: &'a str,
    user_agent: &'a str,
    status_code: u16,
    request_id: &'a str,
}

impl Event {
    fn interchange(&self, with_time: bool) -> Interchange<'_> {
        self.interchange_with(with_time, &self.diff)
    }

    fn interchange_with<D: Serialize>(&self, with_time: bool, diff: D) -> Interchange<'_, D> {
        Interchange {
            id: self.id.to_string(),
            time: with_time.then(|| format_time(self.time)),
            user: &self.user,
            action: self.action.as_str(),
            resource_type: &self.resource_type,
            resource_id: &self.resource_id,
            resource_target: &self.resource_target,
            diff,
            ip: &self.ip,
            user_agent: &self.user_agent,
            status_code: self.status_code,
            request_id: &self.request_id,
        }
    }

    /// One line of NDJSON in the interchange format (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.interchange(true)).expect("an event always serializes")
    }

    /// The event as a JSON value in the interchange format.
    pub fn to_json_value(&self) -> Value {
        serde_json::to_value(self.interchange(true)).expect("an event always serializes")
    }

    /// One line of Coder's log-export shape (`--format coder-json`, the JSON
    /// log on stdout): the event under `message.fields.audit_log`.
    ///
    /// Always one line: JSON escapes C0 control characters, and NEL, U+2028
    /// and U+2029 (which JSON may leave raw, and some line readers split on,
    /// Python's `splitlines` among them) are written `\u0085`, `\u2028` and
    /// `\u2029` here.
    pub fn to_coder_line(&self) -> String {
        let line = serde_json::json!({
            "ts": format_time(self.time),
            "level": "INFO",
            "msg": "audit_log",
            "message": {"fields": {"audit_log": self.to_json_value()}},
        })
        .to_string();
        if line.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
            // Only inside strings can they stand, where the escape means the same.
            line.replace('\u{85}', "\\u0085")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029")
        } else {
            line
        }
    }

    /// The diff as stored: JSON text.
    pub fn diff_json(&self) -> String {
        serde_json::to_string(&self.diff).expect("a diff always serializes")
    }
}

/// RFC 3339 in UTC with as many fraction digits as needed: `2026-03-01T12:34:56.789Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn content_hash(event: &Event, time_given: bool) -> String {
    let canonical =
        serde_json::to_vec(&event.interchange_with(time_given, HashedDiff(&event.diff)))
            .expect("an event always serializes");
    hex::encode(Sha256::digest(&canonical))
}

/// The diff as the content hash reads it: `secret` always written, as every
/// diff was stored before `secret` was kept as sent, so that a retry of an
/// event stored then still matches it. (`secret` absent and `false` mean the
/// same; `old`/`new` absent and `null` do not, and hash apart.)
struct HashedDiff<'a>(&'a Diff);

#[derive(Serialize)]
struct HashedChange<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<&'a Value>,
    secret: bool,
}

/// The fingerprint as it was computed before diffs were kept exactly, for an
/// event whose diff reads differently now (`None` when it reads the same, or
/// when it holds a number that could not be stored then).
fn earlier_hash(event: &Event, time_given: bool) -> Option<String> {
    if !event.diff.values().any(EarlierChange::differs) && event.diff.keys().is_sorted() {
        return None;
    }
    let mut fields: Vec<(&String, &FieldChange)> = event.diff.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let diff: Vec<(&String, EarlierChange)> = fields
        .into_iter()
        .map(|(name, c)| (name, EarlierChange(c)))
        .collect();
    let earlier = EarlierDiff(diff);
    serde_json::to_vec(&event.interchange_with(time_given, earlier))
        .ok()
        .map(|canonical| hex::encode(Sha256::digest(&canonical)))
}

struct EarlierDiff<'a>(Vec<(&'a String, EarlierChange<'a>)>);

impl Serialize for EarlierDiff<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, c)| (*name, c)))
    }
}

/// A change as the earlier hash read it: a null `old`/`new` as absent.
struct EarlierChange<'a>(&'a FieldChange);

impl EarlierChange<'_> {
    /// Whether the change reads differently from how it was read then.
    fn differs(c: &FieldChange) -> bool {
        [&c.old, &c.new]
            .into_iter()
            .flatten()
            .any(|v| !matches!(v, Value::String(_) | Value::Bool(_)))
    }
}

impl Serialize for EarlierChange<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.0;
        let mut map = s.serialize_map(None)?;
        for (key, value) in [("old", &c.old), ("new", &c.new)] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_null()) {
                map.serialize_entry(key, &EarlierValue(v))?;
            }
        }
        map.serialize_entry("secret", &c.is_secret())?;
        map.end()
    }
}

/// A value as serde_json read it without arbitrary precision and order:
/// integers that fit 64 bits as integers, other numbers as f64, keys sorted.
struct EarlierValue<'a>(&'a Value);

impl Serialize for EarlierValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Number(n) => {
                let text = n.to_string();
                let integer = !text.contains(['.', 'e', 'E']);
                if integer && text != "-0" {
                    if let Ok(u) = text.parse::<u64>() {
                        return s.serialize_u64(u);
                    }
                    if let Ok(i) = text.parse::<i64>() {
                        return s.serialize_i64(i);
                    }
                }
                match text.parse::<f64>() {
                    Ok(f) if f.is_finite() => s.serialize_f64(f),
                    _ => Err(serde::ser::Error::custom("not a number then")),
                }
            }
            Value::Array(items) => s.collect_seq(items.iter().map(EarlierValue)),
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                s.collect_map(entries.into_iter().map(|(k, v)| (k, EarlierValue(v))))
            }
            other => other.serialize(s),
        }
    }
}

impl Serialize for HashedDiff<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, c)| {
            let hashed = HashedChange {
                old: c.old.as_ref(),
                new: c.new.as_ref(),
                secret: c.is_secret(),
            };
            (name, hashed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    const SAMPLE: &str = r#"{"id":"0bd4a990-0640-4e0f-a5b8-fd4b32fa2de8","time":"2026-06-01T15:19:34.258Z",
        "user":{"username":"frank","email":"frank@example.com"},"action":"write",
        "resource_type":"oauth_configs","resource_id":"oc-1","resource_target":"GitHub",
        "diff":{"client_secret":{"old":"s3cr3t-old","new":"s3cr3t-new","secret":true},
                "description":{"old":"old","new":"example","secret":false}},
        "ip":"198.51.100.72","user_agent":"Mozilla/5.0","status_code":200,
        "request_id":"9c7c7377-79a2-4903-bbe3-3b243eae0032"}"#;

    #[test]
    fn a_full_event_validates_and_round_trips() {
        let e = EventInput::from_json(SAMPLE)
            .unwrap()
            .validate(now())
            .unwrap()
            .event;
        assert_eq!(e.action, Action::Write);
        assert_eq!(
            e.time,
            "2026-06-01T15:19:34.258Z".parse::<DateTime<Utc>>().unwrap()
        );
        let again = EventInput::from_json(&e.to_json())
            .unwrap()
            .validate(now())
            .unwrap()
            .event;
        assert_eq!(again, e);
    }

    fn diff_of(json: &str) -> String {
        let e = EventInput::from_json(&format!(
            r#"{{"user":{{"username":"a"}},"action":"write","resource_type":"t","diff":{json}}}"#
        ))
        .unwrap()
        .validate(now())
        .unwrap()
        .event;
        e.diff_json()
    }

    #[test]
    fn diff_values_keep_null_absence_digits_and_key_order() {
        for diff in [
            r#"{"a":{"old":null,"new":5}}"#,
            r#"{"a":{"new":5}}"#,
            r#"{"a":{}}"#,
            r#"{"a":{"old":12345678901234567890123,"new":1.50}}"#,
            r#"{"a":{"new":{"z":1,"a":[null,true,"x"]},"secret":false}}"#,
        ] {
            assert_eq!(diff_of(diff), diff);
        }
    }

    #[test]
    fn numbers_keep_their_digits() {
        for n in ["-0", "1e+400", "-1.50e-7", "0.10", "-9223372036854775809"] {
            let diff = format!(r#"{{"a":{{"new":{n}}}}}"#);
            assert_eq!(diff_of(&diff), diff);
        }
        // Known: serde_json writes an exponent as `e` with its sign. Every
        // digit stays; the README states it.
        assert_eq!(diff_of(r#"{"a":{"new":1E5}}"#), r#"{"a":{"new":1e+5}}"#);
        assert_eq!(
            diff_of(r#"{"a":{"new":-1.5E-7}}"#),
            r#"{"a":{"new":-1.5e-7}}"#
        );
    }

    /// Fingerprints written by the release before diffs were kept exactly
    /// (`auditdesk import` of these two lines, content_hash read back).
    #[test]
    fn events_stored_before_keep_their_fingerprint() {
        let mixed = r#"{"id":"6a1f0e52-3c5e-4a8e-9d7b-2f1c0a9b8e77","time":"2026-06-01T12:00:00.5Z","user":{"username":"alice","email":"a@example.com"},"action":"write","resource_type":"template","resource_id":"t-1","resource_target":"Main","diff":{"b":{"old":null,"new":1.50},"a":{"new":{"z":1,"a":12345678901234567890123,"m":[1.0,-0,1E5]}},"c":{"old":"x","new":"y"}},"ip":"203.0.113.9","user_agent":"UA","status_code":200,"request_id":"r-1"}"#;
        let plain = r#"{"id":"7b2f1e63-4d6f-4b9f-8e8c-3a2d1b0c9f88","user":{"username":"bob"},"action":"create","resource_type":"workspace","diff":{"name":{"new":"ws"}}}"#;
        let read = |json: &str| {
            EventInput::from_json(json)
                .unwrap()
                .validate(now())
                .unwrap()
        };
        let mixed = read(mixed);
        assert_ne!(
            mixed.content_hash, "f97f1362d1fa77ec1c368c23cd45dfa419791e1b792e667d13e7382009bfd4dc",
            "kept exactly, it is new content"
        );
        assert_eq!(
            mixed.earlier_hash.as_deref(),
            Some("f97f1362d1fa77ec1c368c23cd45dfa419791e1b792e667d13e7382009bfd4dc")
        );
        let plain = read(plain);
        assert_eq!(
            plain.content_hash,
            "2eddee4bac35293ab4d275ca77bbd2a1b14d7c46ebe136d3263e9542711a3823"
        );
        assert_eq!(plain.earlier_hash, None);
    }

    #[test]
    fn a_diff_field_given_twice_is_refused_and_order_is_kept() {
        let e = EventInput::from_json(
            r#"{"user":{"username":"a"},"action":"write","resource_type":"t","diff":{"b":{},"a":{},"b":{"new":1}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "diff");
        assert!(e.message.contains("'b' is given twice"), "{e}");
        assert_eq!(
            diff_of(r#"{"z":{"new":1},"a":{"new":2}}"#),
            r#"{"z":{"new":1},"a":{"new":2}}"#
        );
    }

    #[test]
    fn the_coder_log_line_stays_one_line_whatever_the_text() {
        let e = EventInput::from_json(
            r#"{"user":{"username":"a\n\r\u2028\u2029\u0085b"},"action":"login","resource_type":"user","resource_target":"x\u2028y"}"#,
        )
        .unwrap()
        .validate(now())
        .unwrap()
        .event;
        let line = e.to_coder_line();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            !line.contains(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}']),
            "{line}"
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back["message"]["fields"]["audit_log"]["user"]["username"],
            "a\n\r\u{2028}\u{2029}\u{85}b"
        );
    }

    #[test]
    fn secret_values_are_dropped_before_storage() {
        let e = EventInput::from_json(SAMPLE)
            .unwrap()
            .validate(now())
            .unwrap()
            .event;
        let json = e.to_json();
        assert!(!json.contains("s3cr3t"), "{json}");
        assert!(
            json.contains(r#""client_secret":{"secret":true}"#),
            "{json}"
        );
        assert!(json.contains(r#""description":{"old":"old","new":"example","secret":false}"#));
    }

    #[test]
    fn missing_id_and_time_are_assigned() {
        let e = EventInput::from_json(
            r#"{"user":{"username":"a"},"action":"login","resource_type":"user"}"#,
        )
        .unwrap()
        .validate(now())
        .unwrap();
        assert_eq!(e.event.time, now());
        assert_eq!(e.event.status_code, 200);
    }

    #[test]
    fn retries_without_a_time_have_the_same_fingerprint() {
        let raw = r#"{"id":"0bd4a990-0640-4e0f-a5b8-fd4b32fa2de8","user":{"username":"a"},"action":"login","resource_type":"user"}"#;
        let first = EventInput::from_json(raw).unwrap().validate(now()).unwrap();
        let later = EventInput::from_json(raw)
            .unwrap()
            .validate(now() + Duration::seconds(5))
            .unwrap();
        assert_eq!(first.content_hash, later.content_hash);
        let changed = raw.replace("login", "logout");
        let other = EventInput::from_json(&changed)
            .unwrap()
            .validate(now())
            .unwrap();
        assert_ne!(first.content_hash, other.content_hash);
    }

    fn field_of(json: &str) -> String {
        match EventInput::from_json(json) {
            Err(e) => e.to_string(),
            Ok(input) => input.validate(now()).unwrap_err().field,
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let base = r#"{"user":{"username":"a"},"action":"login","resource_type":"user""#;
        assert_eq!(field_of(&format!(r#"{base},"id":"nope"}}"#)), "id");
        assert_eq!(field_of(&format!(r#"{base},"time":"yesterday"}}"#)), "time");
        assert_eq!(
            field_of(&format!(r#"{base},"time":"2027-01-01T00:00:00Z"}}"#)),
            "time"
        );
        assert_eq!(field_of(&format!(r#"{base},"ip":"300.1.1.1"}}"#)), "ip");
        assert_eq!(
            field_of(&format!(r#"{base},"status_code":42}}"#)),
            "status_code"
        );
        assert_eq!(
            field_of(r#"{"user":{"username":""},"action":"login","resource_type":"user"}"#),
            "user.username"
        );
        assert_eq!(
            field_of(r#"{"user":{"username":"a"},"action":"read","resource_type":"user"}"#),
            "action"
        );
        assert_eq!(
            field_of(r#"{"user":{"username":"a"},"action":"login"}"#),
            "resource_type"
        );
        let long = "x".repeat(limits::RESOURCE_TARGET + 1);
        assert_eq!(
            field_of(&format!(r#"{base},"resource_target":"{long}"}}"#)),
            "resource_target"
        );
        assert!(
            field_of(&format!(r#"{base},"colour":"red"}}"#)).contains("unknown field `colour`")
        );
    }
}
