//! The search bar (CONTRACT.md, "Free text and the search bar"): the text of
//! `search`, read into terms. `key:value` terms for the filters, `-key:value`
//! to exclude, several values of one key as alternatives, a value in double
//! quotes that may hold spaces, and free words and quoted phrases, each a
//! substring that must be found. Every term is checked here; a malformed one
//! is an error that quotes it.

use std::fmt;

use chrono::{DateTime, Utc};

use super::Action;
use super::filter::{Outcome, format_bound, parse_bound};
use super::param::Param;
use super::visible::escaped;

/// What one term asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Want {
    /// An exact value of a text field (`user:alice`, `target:"my ws"`).
    Value(Param, String),
    Action(Action),
    Status(Outcome),
    From(DateTime<Utc>),
    To(DateTime<Utc>),
    /// Free text: a word or a quoted phrase, as given.
    Text(String),
}

/// One term of the search bar.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    /// `-key:value` (or `-word`): events with it are left out.
    pub negated: bool,
    pub want: Want,
}

/// The search bar's text and its terms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Search {
    /// As given (trimmed): what the bar shows and links carry.
    pub text: String,
    pub terms: Vec<Term>,
}

/// At most this many terms: each is a condition of the query.
pub const MAX_TERMS: usize = 32;

/// A malformed term: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    /// The term as typed.
    pub term: String,
    pub problem: String,
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}': {}", escaped(&self.term), self.problem)
    }
}

impl Search {
    /// Reads the bar's text; the first malformed term is the error.
    pub fn parse(text: &str) -> Result<Search, SearchError> {
        let mut terms = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (raw, term, after) = next_term(rest)?;
            terms.push(term);
            if terms.len() > MAX_TERMS {
                return Err(SearchError {
                    term: raw.to_owned(),
                    problem: format!("a search has at most {MAX_TERMS} terms"),
                });
            }
            rest = after.trim_start();
        }
        let search = Search {
            text: text.trim().to_owned(),
            terms,
        };
        search.check_bounds()?;
        Ok(search)
    }

    /// The values of `key` that its terms allow (positive) and exclude
    /// (negated), as given.
    pub fn values(&self, key: Param) -> (Vec<&str>, Vec<&str>) {
        let mut allowed = Vec::new();
        let mut excluded = Vec::new();
        for t in &self.terms {
            if let Want::Value(k, v) = &t.want
                && *k == key
            {
                if t.negated {
                    excluded.push(v.as_str());
                } else {
                    allowed.push(v.as_str());
                }
            }
        }
        (allowed, excluded)
    }

    /// The one value a dropdown shows for `key`: a single positive term of
    /// that key and no other term of it.
    pub fn single(&self, key: Param) -> Option<String> {
        let mut found = None;
        for t in &self.terms {
            let value = match (&t.want, key) {
                (Want::Value(k, v), _) if *k == key => v.clone(),
                (Want::Action(a), Param::Action) => a.as_str().to_owned(),
                (Want::Status(s), Param::Status) => s.as_str().to_owned(),
                (Want::From(t), Param::From) | (Want::To(t), Param::To) => format_bound(*t),
                _ => continue,
            };
            if t.negated || found.is_some() {
                return None;
            }
            found = Some(value);
        }
        found
    }

    /// `from:` and `to:` bound the time once each, `to:` after `from:`; they
    /// cannot be excluded.
    fn check_bounds(&self) -> Result<(), SearchError> {
        let mut seen_from = None;
        let mut seen_to = None;
        for t in &self.terms {
            let (seen, key, at) = match t.want {
                Want::From(at) => (&mut seen_from, Param::From, at),
                Want::To(at) => (&mut seen_to, Param::To, at),
                _ => continue,
            };
            let term = format!(
                "{}{}:",
                if t.negated { "-" } else { "" },
                key.search_key().unwrap_or_default()
            );
            if t.negated {
                return Err(SearchError {
                    term,
                    problem: format!(
                        "a time bound cannot be excluded; use {}: instead",
                        if key == Param::From { "to" } else { "from" }
                    ),
                });
            }
            if seen.is_some() {
                return Err(SearchError {
                    term,
                    problem: "is given more than once; give it once".into(),
                });
            }
            *seen = Some(at);
        }
        if let (Some(from), Some(to)) = (seen_from, seen_to)
            && to <= from
        {
            return Err(SearchError {
                term: format!("to:{}", format_bound(to)),
                problem: "must be after from: (from is inclusive, to is exclusive)".into(),
            });
        }
        Ok(())
    }
}

/// The term at the start of `text` (which starts with no space): its text as
/// typed, the term, and the text after it.
fn next_term(text: &str) -> Result<(&str, Term, &str), SearchError> {
    let (negated, body) = match text.strip_prefix('-') {
        Some(b) if !b.is_empty() && !b.starts_with(char::is_whitespace) => (true, b),
        _ => (false, text),
    };
    // A quoted phrase: free text.
    if body.starts_with('"') {
        let (phrase, after) = quoted(text, body)?;
        let raw = &text[..text.len() - after.len()];
        return Ok((raw, text_term(raw, negated, phrase)?, after));
    }
    let word_end = body.find(char::is_whitespace).unwrap_or(body.len());
    let key_end = body[..word_end].find(':');
    let Some(colon) = key_end.filter(|&c| looks_like_key(&body[..c])) else {
        let raw = &text[..text.len() - body.len() + word_end];
        let word = &body[..word_end];
        return Ok((
            raw,
            text_term(raw, negated, word.to_owned())?,
            &body[word_end..],
        ));
    };
    let key_text = &body[..colon];
    let value_text = &body[colon + 1..];
    let (value, after) = if value_text.starts_with('"') {
        quoted(text, value_text)?
    } else {
        let end = value_text
            .find(char::is_whitespace)
            .unwrap_or(value_text.len());
        (value_text[..end].to_owned(), &value_text[end..])
    };
    let raw = &text[..text.len() - after.len()];
    let Some(key) = Param::from_search_key(key_text) else {
        return Err(SearchError {
            term: raw.to_owned(),
            problem: format!(
                "'{}' is not a key ({}); put the text in double quotes to search for it",
                escaped(key_text),
                Param::SEARCH_KEYS
                    .map(|k| k.search_key().unwrap_or_default())
                    .join(", ")
            ),
        });
    };
    let fail = |problem: String| SearchError {
        term: raw.to_owned(),
        problem,
    };
    if value.is_empty() {
        return Err(fail(format!(
            "{}: has no value",
            key.search_key().unwrap_or_default()
        )));
    }
    if value.contains('\0') {
        return Err(fail(
            "contains NUL (U+0000), which no event can hold".into(),
        ));
    }
    let want = match key {
        Param::Action => Want::Action(value.parse::<Action>().map_err(|e| fail(e.to_string()))?),
        Param::Status => Want::Status(Outcome::parse(&value).map_err(fail)?),
        Param::From => Want::From(parse_bound(&value).map_err(fail)?),
        Param::To => Want::To(parse_bound(&value).map_err(fail)?),
        _ => Want::Value(key, value),
    };
    Ok((raw, Term { negated, want }, after))
}

/// Whether `text`, before a colon, is meant as a key: letters and `_` only
/// (`https://…` is, and is refused as an unknown key; `10.0.0.1:80` is not).
fn looks_like_key(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
}

/// A free-text term, checked as `q` is; an empty phrase (`""`) is refused,
/// as it would find every event (or, excluded, none).
fn text_term(raw: &str, negated: bool, text: String) -> Result<Term, SearchError> {
    if text.is_empty() {
        return Err(SearchError {
            term: raw.to_owned(),
            problem: "an empty phrase; put text between the quotes".into(),
        });
    }
    super::free_text::check_term(&text).map_err(|problem| SearchError {
        term: raw.to_owned(),
        problem,
    })?;
    Ok(Term {
        negated,
        want: Want::Text(text),
    })
}

/// The double-quoted string at the start of `quoted_text` (a part of `whole`,
/// the rest of the bar, for the error): `\"` is a quote and `\\` a backslash
/// inside it; any other backslash is itself. Returns its content and the text
/// after the closing quote.
fn quoted<'a>(whole: &str, quoted_text: &'a str) -> Result<(String, &'a str), SearchError> {
    let mut out = String::new();
    let mut chars = quoted_text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let after = &quoted_text[i + 1..];
                if let Some(next) = after.chars().next()
                    && !next.is_whitespace()
                {
                    return Err(SearchError {
                        term: whole[..whole.len() - after.len()].to_owned()
                            + &after[..next.len_utf8()],
                        problem: "a closing quote must end the term (put a space after it)".into(),
                    });
                }
                return Ok((out, after));
            }
            '\\' => match quoted_text[i + 1..].chars().next() {
                Some(e @ ('"' | '\\')) => {
                    out.push(e);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Err(SearchError {
        term: whole.to_owned(),
        problem: "the double quote is not closed".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<Term> {
        Search::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .terms
    }

    fn error(text: &str) -> String {
        Search::parse(text).unwrap_err().to_string()
    }

    fn value(negated: bool, key: Param, v: &str) -> Term {
        Term {
            negated,
            want: Want::Value(key, v.into()),
        }
    }

    fn text(negated: bool, v: &str) -> Term {
        Term {
            negated,
            want: Want::Text(v.into()),
        }
    }

    #[test]
    fn keys_values_words_and_phrases() {
        assert_eq!(
            terms(r#"user:alice  -target:"my ws" gpu "two words" -noise"#),
            [
                value(false, Param::User, "alice"),
                value(true, Param::ResourceTarget, "my ws"),
                text(false, "gpu"),
                text(false, "two words"),
                text(true, "noise"),
            ]
        );
        assert_eq!(
            terms("action:create action:delete status:failure"),
            [
                Term {
                    negated: false,
                    want: Want::Action(Action::Create)
                },
                Term {
                    negated: false,
                    want: Want::Action(Action::Delete)
                },
                Term {
                    negated: false,
                    want: Want::Status(Outcome::Failure)
                },
            ]
        );
        // Not keys: an address with a port, a lone dash.
        assert_eq!(
            terms("10.0.0.1:8080 -"),
            [text(false, "10.0.0.1:8080"), text(false, "-")]
        );
        assert_eq!(
            terms("resource_target:b:c"),
            [value(false, Param::ResourceTarget, "b:c")]
        );
        assert_eq!(terms("USER:Al"), [value(false, Param::User, "Al")]);
        // Escapes inside quotes; another backslash is itself.
        assert_eq!(
            terms(r#"user:"a \"b\" \\ c:\d""#),
            [value(false, Param::User, r#"a "b" \ c:\d"#)]
        );
        assert!(terms("  ").is_empty());
    }

    #[test]
    fn a_malformed_term_is_named() {
        assert_eq!(
            error("gpu acton:delete"),
            "'acton:delete': 'acton' is not a key (action, resource_type, target, user, resource_id, request_id, status, from, to); put the text in double quotes to search for it"
        );
        assert!(error("action:destroy").starts_with("'action:destroy': "));
        assert!(error("status:ok").contains("'ok' is not a status"));
        assert_eq!(error("user:"), "'user:': user: has no value");
        assert_eq!(
            error(r#"a "b c"#),
            r#"'"b c': the double quote is not closed"#
        );
        assert_eq!(
            error(r#"user:"a"b"#),
            r#"'user:"a"b': a closing quote must end the term (put a space after it)"#
        );
        assert!(error("from:yesterday").starts_with("'from:yesterday': 'yesterday' is not a date"));
        assert!(error("-from:2026-01-01").contains("cannot be excluded"));
        assert!(error("to:2026-01-01 to:2026-02-01").contains("more than once"));
        assert_eq!(
            error("from:2026-02-01 to:2026-01-15"),
            "'to:2026-01-15': must be after from: (from is inclusive, to is exclusive)"
        );
        assert!(error(r#"a "" b"#).starts_with(r#"'""': an empty phrase"#));
        assert!(error(r#"-"""#).starts_with(r#"'-""': an empty phrase"#));
        // Non-ASCII text in malformed terms is quoted whole.
        assert_eq!(
            error(r#"user:"a"é"#),
            r#"'user:"a"é': a closing quote must end the term (put a space after it)"#
        );
        assert_eq!(error(r#"x "ü"#), r#"'"ü': the double quote is not closed"#);
        assert_eq!(terms("ä:x"), [text(false, "ä:x")], "not a key: free text");
        assert!(error("a\u{1f}b").contains("U+001F"));
        assert!(error("https://x").contains("'https' is not a key"));
        let many = "w ".repeat(MAX_TERMS + 1);
        assert!(error(&many).contains("at most 32 terms"));
    }

    #[test]
    fn a_dropdown_shows_a_single_positive_term() {
        let s = Search::parse("action:create user:a user:b -target:x status:failure").unwrap();
        assert_eq!(s.single(Param::Action).as_deref(), Some("create"));
        assert_eq!(s.single(Param::User), None, "two users");
        assert_eq!(s.single(Param::ResourceTarget), None, "excluded");
        assert_eq!(s.single(Param::Status).as_deref(), Some("failure"));
        assert_eq!(s.single(Param::ResourceType), None);
        assert_eq!(s.values(Param::User), (vec!["a", "b"], vec![]));
    }
}
