//! Free text (CONTRACT.md, "Free text and the search bar"): what of an event
//! `q` is matched against, and how both sides are case-folded.
//!
//! The folding is done here, in Rust, for the stored text and for the terms
//! alike, so both backends find exactly the same events (SQLite's `lower()`
//! folds only ASCII; PostgreSQL's follows its locale). The database only
//! looks for one folded string inside another.

use serde_json::Value;

use super::Event;

/// Joins the fields of an event's search text. No term may hold it (see
/// [`term`]), so a term is never found across the end of one field and the
/// start of the next.
pub const FIELD_SEPARATOR: char = '\u{1f}';

/// Folds case one character at a time, so that a term folds the same alone as
/// inside a longer text: Unicode's lowercase mapping of each character, then
/// the few characters that are already lowercase but that Unicode's case
/// folding (CaseFolding.txt, C and S) maps further, such as final sigma
/// (`str::to_lowercase` would choose between σ and ς by the letters around
/// it), the micro sign and long s. Full folding (`ß` as `ss`) is not done.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        for lower in c.to_lowercase() {
            folded.push(fold_lowercase(lower));
        }
    }
    folded
}

/// Case folding of a character that lowercase mapping leaves as it is.
fn fold_lowercase(c: char) -> char {
    match c {
        'ς' => 'σ',
        '\u{b5}' => 'μ',
        'ſ' => 's',
        '\u{345}' | '\u{1fbe}' => 'ι',
        'ϐ' => 'β',
        'ϑ' => 'θ',
        'ϕ' => 'φ',
        'ϖ' => 'π',
        'ϰ' => 'κ',
        'ϱ' => 'ρ',
        'ϵ' => 'ε',
        'ẛ' => 'ṡ',
        other => other,
    }
}

/// The text `q` is matched against: the resource target, username, email,
/// resource id and request id, then each diff field's name and its non-secret
/// old and new values (a string as itself, any other JSON value as its JSON
/// text), folded, each followed by [`FIELD_SEPARATOR`]. A NUL (which only a
/// diff's string can hold, and no term can) also becomes a separator: the
/// database cannot hold it in text.
pub fn document(event: &Event) -> String {
    let mut doc = Document::default();
    doc.add(&event.resource_target);
    doc.add(&event.user.username);
    doc.add(&event.user.email);
    doc.add(&event.resource_id);
    doc.add(&event.request_id);
    for (name, change) in &event.diff {
        doc.add(name);
        if change.is_secret() {
            continue;
        }
        for value in [&change.old, &change.new].into_iter().flatten() {
            match value {
                Value::String(s) => doc.add(s),
                other => doc.add(&other.to_string()),
            }
        }
    }
    doc.0
}

/// The search text of texts as they are (a stored row that no longer reads
/// as an event: its fields).
pub fn raw_document(texts: &[&str]) -> String {
    let mut doc = Document::default();
    for text in texts {
        doc.add(text);
    }
    doc.0
}

#[derive(Default)]
struct Document(String);

impl Document {
    fn add(&mut self, text: &str) {
        for c in fold(text).chars() {
            self.0.push(if c == '\0' { FIELD_SEPARATOR } else { c });
        }
        self.0.push(FIELD_SEPARATOR);
    }
}

/// Refuses a free-text term that holds what no search text can (the message
/// completes "`q` ..."); the database looks for it [`fold`]ed.
pub fn check_term(text: &str) -> Result<(), String> {
    if let Some(c) = text.chars().find(|&c| c == FIELD_SEPARATOR || c == '\0') {
        return Err(format!(
            "contains U+{:04X}, which free text cannot look for (it separates the fields searched); filter on the field itself",
            u32::from(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Actor, Diff, FieldChange};
    use serde_json::json;

    fn event(diff: Diff) -> Event {
        Event {
            id: uuid::Uuid::nil(),
            time: chrono::DateTime::UNIX_EPOCH,
            user: Actor {
                username: "Ärger".into(),
                email: "A@Example.COM".into(),
            },
            action: Action::Write,
            resource_type: "workspace".into(),
            resource_id: "ws-1".into(),
            resource_target: "ΟΔΟΣ".into(),
            diff,
            ip: String::new(),
            user_agent: String::new(),
            status_code: 200,
            request_id: "R-1".into(),
        }
    }

    #[test]
    fn the_document_holds_fields_and_diff_text_but_not_its_json() {
        let mut diff = Diff::new();
        diff.insert(
            "GPU_Vendor".into(),
            FieldChange::values(
                Some(json!("NVIDIA")),
                Some(serde_json::from_str("1.50").unwrap()),
            ),
        );
        diff.insert("password".into(), FieldChange::secret());
        diff.insert(
            "note".into(),
            FieldChange::values(None, Some(json!("a\0b"))),
        );
        let doc = document(&event(diff));
        assert_eq!(
            doc,
            "οδοσ\u{1f}ärger\u{1f}a@example.com\u{1f}ws-1\u{1f}r-1\u{1f}gpu_vendor\u{1f}nvidia\u{1f}1.50\u{1f}password\u{1f}note\u{1f}a\u{1f}b\u{1f}"
        );
        assert!(!doc.contains("\"old\""), "no JSON keys");
    }

    #[test]
    fn a_term_folds_alone_as_inside_the_text() {
        // Final sigma: "ΟΣ" alone and at the end of "ΟΔΟΣ" fold alike.
        assert!(fold("ΟΔΟΣ").contains(&fold("ΟΣ")));
        assert!(fold("ΟΔΟΣ Α").contains(&fold("ΟΣ ")));
        assert_eq!(fold("İ"), "i\u{307}");
        // Already lowercase, but folded further: micro sign, long s, Greek symbols.
        assert_eq!(fold("5\u{b5}s ſ ϐϑϕ"), fold("5μs s βθφ"));
        assert_eq!(fold("ẞ"), "ß");
        assert_eq!(fold("50%_Off"), "50%_off");
    }

    #[test]
    fn a_term_cannot_hold_the_separator_or_nul() {
        assert!(check_term("a\u{1f}b").unwrap_err().contains("U+001F"));
        assert!(check_term("a\0b").unwrap_err().contains("U+0000"));
        assert_eq!(check_term("50%_Off"), Ok(()));
    }
}
