//! How stored text is shown without letting it hide or disguise anything.
//!
//! Events keep their text byte for byte (CONTRACT.md, "Exactness"): a target may
//! hold a line break, an escape sequence, a right-to-left override or ten
//! thousand combining marks. Those are encoded here, on the way out: every
//! character that would be invisible, move the cursor or reorder its
//! neighbours is replaced by a visible marker, and a long run of combining
//! marks is cut to a few plus a count. The exact value stays available beside
//! the shown one (the page's title and copy button, the JSON exports).

use std::fmt::Write;

/// Combining marks kept after a base character before the rest of the run is
/// counted instead of drawn (so that a run cannot grow out of its cell).
const COMBINING_SHOWN: usize = 2;

/// A piece of shown text: the characters themselves, or a marker that stands
/// for characters not drawn as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub marker: bool,
}

/// Whether `c` is drawn as a marker rather than as itself: control characters
/// (C0, DEL, C1), bidi controls, zero-width characters and line separators.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Whether `c` is a combining mark (drawn on the character before it).
fn is_combining(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{0483}'..='\u{0489}'
            | '\u{0591}'..='\u{05BD}'
            | '\u{0610}'..='\u{061A}'
            | '\u{064B}'..='\u{065F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// The marker for a hidden character: the Control Pictures for C0 and DEL
/// (`␊` for LF, `␉` for tab, `␛` for ESC), `\u{202e}` for the others.
pub fn marker(c: char) -> String {
    match c {
        '\0'..='\u{1F}' => char::from_u32(0x2400 + c as u32)
            .expect("control pictures exist")
            .to_string(),
        '\u{7F}' => "\u{2421}".to_owned(),
        other => format!("\\u{{{:x}}}", other as u32),
    }
}

/// `value` as segments to draw: plain text, and markers for what is hidden.
pub fn segments(value: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |text: &str, marker: bool| match out.last_mut() {
        Some(last) if last.marker == marker && !marker => last.text.push_str(text),
        _ => out.push(Segment {
            text: text.to_owned(),
            marker,
        }),
    };
    let mut chars = value.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if is_hidden(c) {
            push(&marker(c), true);
        } else if is_combining(c) {
            // A run of combining marks: a few drawn, the rest counted.
            let mut run = 1usize;
            push(c.encode_utf8(&mut buf), false);
            while let Some(&next) = chars.peek() {
                if !is_combining(next) {
                    break;
                }
                chars.next();
                run += 1;
                if run <= COMBINING_SHOWN {
                    push(next.encode_utf8(&mut buf), false);
                }
            }
            if run > COMBINING_SHOWN {
                push(
                    &format!("[+{} combining marks]", run - COMBINING_SHOWN),
                    true,
                );
            }
        } else {
            push(c.encode_utf8(&mut buf), false);
        }
    }
    out
}

/// Whether showing `value` changes it (it has hidden characters or a long run
/// of combining marks), so that the exact value must be offered beside it.
pub fn is_altered(value: &str) -> bool {
    segments(value).iter().any(|s| s.marker)
}

/// `value` on one line of plain text (error messages, the CLI): hidden
/// characters written as escapes (`\n`, `\t`, `\u{202e}`) and a backslash as
/// `\\`, so the text cannot break the line or reorder it, and reads back unambiguously.
pub fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(value: &str) -> String {
        segments(value)
            .into_iter()
            .map(|s| {
                if s.marker {
                    format!("<{}>", s.text)
                } else {
                    s.text
                }
            })
            .collect()
    }

    #[test]
    fn control_characters_become_control_pictures() {
        assert_eq!(shown("a\nb\tc\r\u{1b}[31m\u{7f}"), "a<␊>b<␉>c<␍><␛>[31m<␡>");
        assert_eq!(shown("\0"), "<␀>");
        assert_eq!(shown("\u{85}"), "<\\u{85}>");
    }

    #[test]
    fn bidi_and_zero_width_characters_are_named() {
        assert_eq!(shown("ab\u{202e}cd"), "ab<\\u{202e}>cd");
        assert_eq!(shown("\u{2066}x\u{2069}"), "<\\u{2066}>x<\\u{2069}>");
        assert_eq!(shown("a\u{200d}b\u{feff}"), "a<\\u{200d}>b<\\u{feff}>");
        assert!(is_altered("x\u{200b}"));
    }

    #[test]
    fn plain_text_and_emoji_are_drawn_as_they_are() {
        for s in ["GitHub", "Ünïcødé 日本", "🚀 launch", "e\u{301}"] {
            assert_eq!(shown(s), s);
            assert!(!is_altered(s), "{s}");
        }
    }

    #[test]
    fn long_runs_of_combining_marks_are_counted() {
        let zalgo = format!("Z{}a", "\u{301}".repeat(5000));
        assert_eq!(shown(&zalgo), "Z\u{301}\u{301}<[+4998 combining marks]>a");
        assert!(is_altered(&zalgo));
    }

    #[test]
    fn escaped_text_stays_on_one_line_and_reads_back() {
        assert_eq!(escaped("a\nb\\n\u{202e}"), "a\\nb\\\\n\\u{202e}");
        assert!(!escaped("x\r\n\u{2028}y").contains(['\n', '\r', '\u{2028}']));
    }
}
