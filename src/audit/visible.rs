//! How stored text is shown without letting it hide or disguise anything.
//!
//! Events keep their text byte for byte (CONTRACT.md, "Exactness"): a target may
//! hold a line break, an escape sequence, a right-to-left override or ten
//! thousand combining marks. Those are encoded here, on the way out: every
//! character that would be invisible, move the cursor or reorder its
//! neighbours is replaced by a visible marker, and a long run of combining
//! marks is cut to a few plus a count. The exact value stays available beside
//! the shown one (the page's title and copy button, the JSON exports).

use unicode_segmentation::UnicodeSegmentation;

/// Characters drawn after the first of one grapheme (a letter and its
/// marks) before the rest are counted instead: enough for any script's
/// clusters, too few for a run of marks to grow out of its cell.
const MARKS_SHOWN: usize = 6;

/// A piece of shown text: the characters themselves, or a marker that stands
/// for characters not drawn as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub marker: bool,
}

/// Whether `c` is drawn as a marker rather than as itself: control characters
/// (C0, DEL, C1), bidi controls, zero-width and other invisible format
/// characters, line separators, variation selectors and tag characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Whether drawing `value` needs markers (hidden characters, or a grapheme
/// with more marks than [`MARKS_SHOWN`]). Cheap for plain ASCII.
pub fn needs_markers(value: &str) -> bool {
    if value.is_ascii() {
        return value.bytes().any(|b| b < 0x20 || b == 0x7F);
    }
    value.chars().any(is_hidden)
        || value
            .graphemes(true)
            .any(|g| g.chars().nth(MARKS_SHOWN + 1).is_some())
}

/// The marker for a hidden character, as Rust and JSON write it: `\n`, `\r`,
/// `\t`, and `\u{1b}`, `\u{202e}` for the others. (The Control Pictures, `␊`,
/// were tried first: the fonts of a stock Debian desktop have no glyph for
/// them, and a marker that draws as an empty box hides what it should show.)
pub fn marker(c: char) -> String {
    match c {
        '\n' => "\\n".to_owned(),
        '\r' => "\\r".to_owned(),
        '\t' => "\\t".to_owned(),
        other => format!("\\u{{{:x}}}", other as u32),
    }
}

/// `value` as segments to draw: plain text, and markers for what is hidden.
/// A grapheme keeps its first [`MARKS_SHOWN`] marks; the rest are counted.
pub fn segments(value: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |text: &str, marker: bool| match out.last_mut() {
        Some(last) if !marker && !last.marker => last.text.push_str(text),
        _ => out.push(Segment {
            text: text.to_owned(),
            marker,
        }),
    };
    let mut buf = [0u8; 4];
    for grapheme in value.graphemes(true) {
        let mut marks = 0usize;
        for (i, c) in grapheme.chars().enumerate() {
            if is_hidden(c) {
                push(&marker(c), true);
            } else if i == 0 {
                push(c.encode_utf8(&mut buf), false);
            } else {
                marks += 1;
                if marks <= MARKS_SHOWN {
                    push(c.encode_utf8(&mut buf), false);
                }
            }
        }
        if marks > MARKS_SHOWN {
            push(&format!("[+{} combining marks]", marks - MARKS_SHOWN), true);
        }
    }
    out
}

/// `value` on one line of plain text (error messages, the CLI): hidden
/// characters written as escapes (`\n`, `\t`, `\u{202e}`) and a backslash as
/// `\\`, so the text cannot break the line or reorder it, and reads back unambiguously.
pub fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_hidden(c) => out.push_str(&marker(c)),
            c => out.push(c),
        }
    }
    out
}

/// A diff value as text: a string as itself, unless it would read as another
/// JSON value (`"null"`, `"5"`, `"true"`), then quoted so that it cannot be
/// taken for one; anything else as JSON.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) if !v.is_string() => value.to_string(),
            _ => s.clone(),
        },
        other => other.to_string(),
    }
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
    fn control_characters_become_escapes() {
        assert_eq!(
            shown("a\nb\tc\r\u{1b}[31m\u{7f}"),
            "a<\\n>b<\\t>c<\\r><\\u{1b}>[31m<\\u{7f}>"
        );
        assert_eq!(shown("\0"), "<\\u{0}>");
        assert_eq!(shown("\r\n"), "<\\r><\\n>");
        assert_eq!(shown("\u{85}"), "<\\u{85}>");
    }

    #[test]
    fn bidi_zero_width_tag_and_format_characters_are_named() {
        assert_eq!(shown("ab\u{202e}cd"), "ab<\\u{202e}>cd");
        assert_eq!(shown("\u{2066}x\u{2069}"), "<\\u{2066}>x<\\u{2069}>");
        assert_eq!(shown("a\u{200d}b\u{feff}"), "a<\\u{200d}>b<\\u{feff}>");
        assert_eq!(
            shown("a\u{e0061}\u{ad}b\u{fe0f}"),
            "a<\\u{e0061}><\\u{ad}>b<\\u{fe0f}>"
        );
        assert!(needs_markers("x\u{200b}"));
    }

    #[test]
    fn plain_text_of_any_script_and_emoji_are_drawn_as_they_are() {
        for s in [
            "GitHub",
            "Ünïcødé 日本",
            "🚀 launch",
            "e\u{301}",
            "क्षि हिन्दी",
            "ประเทศไทย",
        ] {
            assert_eq!(shown(s), s);
            assert!(!needs_markers(s), "{s}");
        }
    }

    #[test]
    fn long_runs_of_marks_are_counted_in_any_script() {
        let zalgo = format!("Z{}a", "\u{301}".repeat(5000));
        assert_eq!(
            shown(&zalgo),
            format!("Z{}<[+4994 combining marks]>a", "\u{301}".repeat(6))
        );
        assert!(needs_markers(&zalgo));
        let thai = format!("ก{}", "\u{e49}".repeat(40));
        assert!(
            shown(&thai).ends_with("<[+34 combining marks]>"),
            "{}",
            shown(&thai)
        );
    }

    #[test]
    fn a_string_that_reads_as_another_value_is_quoted() {
        use serde_json::json;
        assert_eq!(value_text(&json!("null")), "\"null\"");
        assert_eq!(value_text(&json!(null)), "null");
        assert_eq!(value_text(&json!("5")), "\"5\"");
        assert_eq!(value_text(&json!(5)), "5");
        assert_eq!(value_text(&json!("GitHub")), "GitHub");
        assert_eq!(value_text(&json!([1, "a"])), "[1,\"a\"]");
    }

    #[test]
    fn escaped_text_stays_on_one_line_and_reads_back() {
        assert_eq!(escaped("a\nb\\n\u{202e}"), "a\\nb\\\\n\\u{202e}");
        assert!(!escaped("x\r\n\u{2028}y").contains(['\n', '\r', '\u{2028}']));
    }
}
