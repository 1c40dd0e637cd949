//! The filters of Manage > Audit, the export and the JSON API (CONTRACT.md,
//! "Filters"), parsed and validated at the edge. `AuditQuery::parse` is the only
//! way to build one, and every bad parameter comes back named.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use super::Action;
use super::event::parse_time;
pub use super::param::Param;
use super::search::Search;

/// Rows per page when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows one page may hold.
pub const MAX_LIMIT: u32 = 500;
/// The page sizes the page offers.
pub const PAGE_SIZES: [u32; 5] = [25, 50, 100, 250, 500];
/// Longest accepted value of a text filter, in bytes.
const MAX_VALUE_BYTES: usize = 1024;

/// The filter parameters as received (CONTRACT.md), as text; built by
/// [`QueryParams::parse`], which names unknown and repeated parameters
/// rather than ignoring them, or by the CLI from its flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawQuery {
    values: Box<[Option<String>; Param::ALL.len()]>,
}

impl RawQuery {
    /// The value given for `param`, if any.
    pub fn get(&self, param: Param) -> Option<&str> {
        self.values[param as usize].as_deref()
    }

    /// Sets the value of `param`.
    pub fn set(&mut self, param: Param, value: String) {
        self.values[param as usize] = Some(value);
    }
}

/// A query string taken apart: the filters, the caller's own parameters (an
/// export's `format`), and every problem of the string itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub raw: RawQuery,
    /// The values of the caller's own parameters that were given.
    pub extra: Vec<(&'static str, String)>,
    /// A parameter given twice (the first value is kept, so the form shows it),
    /// or a value that is not UTF-8 once decoded.
    pub errors: Vec<ParamError>,
    /// Names that are neither filters nor the caller's own (shown escaped).
    pub unknown: Vec<String>,
}

/// Decodes one `application/x-www-form-urlencoded` name or value: `+` is a
/// space, `%XX` a byte; `None` when the bytes are not UTF-8 (never replaced).
fn form_decode(part: &str) -> Option<String> {
    let plus = part.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

impl QueryParams {
    /// Parses a query string that may carry the filters and the names in
    /// `extra`. Never fails: every problem is reported in `errors` or `unknown`.
    pub fn parse(query_string: &str, extra: &[&'static str]) -> Self {
        Self::parse_taking(query_string, &Param::ALL, extra)
    }

    /// As [`QueryParams::parse`], taking only the filters in `filters`; any
    /// other name is unknown.
    pub fn parse_taking(query_string: &str, filters: &[Param], extra: &[&'static str]) -> Self {
        let mut out = QueryParams::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for pair in query_string.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(name) = form_decode(name) else {
                out.unknown
                    .push(super::visible::escaped(&String::from_utf8_lossy(
                        &percent_encoding::percent_decode_str(name).collect::<Vec<u8>>(),
                    )));
                continue;
            };
            let Some(known) = filters
                .iter()
                .map(|p| p.name())
                .chain(extra.iter().copied())
                .find(|k| *k == name)
            else {
                out.unknown.push(super::visible::escaped(&name));
                continue;
            };
            if seen.contains(&known) {
                if !out.errors.iter().any(|e| e.param == known) {
                    out.errors.push(ParamError {
                        param: known,
                        message: "is given more than once; give it once".into(),
                    });
                }
                continue;
            }
            seen.push(known);
            let Some(value) = form_decode(value) else {
                out.errors.push(ParamError {
                    param: known,
                    message: "is not UTF-8 text once decoded".into(),
                });
                continue;
            };
            match Param::from_name(known) {
                Some(param) if filters.contains(&param) => out.raw.set(param, value),
                _ => out.extra.push((known, value)),
            }
        }
        out
    }

    /// Every problem of the string itself as (parameter, message): the names
    /// not taken (with `unknown` as the message), repeats and bad bytes.
    pub fn problems(&self, unknown: &str) -> Vec<(String, String)> {
        self.unknown
            .iter()
            .map(|name| (name.clone(), unknown.to_owned()))
            .chain(
                self.errors
                    .iter()
                    .map(|e| (e.param.to_owned(), e.message.clone())),
            )
            .collect()
    }

    /// [`QueryParams::problems`] as lines, `name: message`.
    pub fn problem_lines(&self, unknown: &str) -> Vec<String> {
        self.problems(unknown)
            .into_iter()
            .map(|(name, message)| format!("{name}: {message}"))
            .collect()
    }

    /// The value of one of the caller's own parameters.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `status=success` (below 400) or `status=failure` (400 and above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// `success` or `failure`, as the query string and the search bar spell it.
    pub fn parse(text: &str) -> Result<Outcome, String> {
        match text {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            other => Err(format!(
                "'{}' is not a status (expected success or failure)",
                super::visible::escaped(other)
            )),
        }
    }

    /// The name used in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Which events to show: every field is "any" when `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub resource_type: Option<String>,
    pub action: Option<Action>,
    pub resource_target: Option<String>,
    pub user: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    pub status: Option<Outcome>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    /// Free text, matched against target, user, email, ids and diff.
    pub q: Option<String>,
    /// The search bar's terms, combined (AND) with the fields above.
    pub search: Option<Search>,
}

/// Which way a cursor pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Events older than the position (the "Older" link, and the API's next page).
    Older,
    /// Events newer than the position (the "Newer" link).
    Newer,
}

/// A position in the newest-first order: an event's (time, row id). Opaque to
/// users; written as `o.<microseconds>.<id>` or `n.<microseconds>.<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub direction: Direction,
    pub time: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    /// Parses a cursor made by [`Cursor::to_string`].
    pub fn parse(raw: &str) -> Option<Cursor> {
        let mut parts = raw.split('.');
        let direction = match parts.next()? {
            "o" => Direction::Older,
            "n" => Direction::Newer,
            _ => return None,
        };
        let micros: i64 = parts.next()?.parse().ok()?;
        let id: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || id < 0 {
            return None;
        }
        let time = DateTime::<Utc>::from_timestamp_micros(micros)?;
        Some(Cursor {
            direction,
            time,
            id,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match self.direction {
            Direction::Older => 'o',
            Direction::Newer => 'n',
        };
        write!(f, "{d}.{}.{}", self.time.timestamp_micros(), self.id)
    }
}

/// A validated request for one page of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub filter: Filter,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// One bad parameter and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The query parameter's name, e.g. `from`.
    pub param: &'static str,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

/// The value of `param` read by `parse`, when given; a value it refuses is
/// added to `errors` under the parameter's name.
fn parsed<T>(
    errors: &mut Vec<ParamError>,
    param: Param,
    value: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match parse(value.as_deref()?) {
        Ok(v) => Some(v),
        Err(message) => {
            errors.push(ParamError {
                param: param.name(),
                message,
            });
            None
        }
    }
}

/// Turns `2026-03-01` (the start of that UTC day) or an RFC 3339 time into UTC.
pub(crate) fn parse_bound(raw: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    parse_time(raw).map_err(|_| {
        format!("'{raw}' is not a date (2026-03-01) or an RFC 3339 time (2026-03-01T12:00:00Z)")
    })
}

/// A parameter whose value is parsed (an action, a date, a number): trimmed;
/// `None` when absent or blank. At most [`MAX_VALUE_BYTES`].
fn text_value(param: &'static str, value: Option<&str>) -> Result<Option<String>, ParamError> {
    exact_value(param, value.map(str::trim))
}

/// A value matched exactly against stored text (a target, a user, an id):
/// kept as given, spaces and control characters included, so that every
/// stored value can be asked for; `None` when absent or empty. At most
/// [`MAX_VALUE_BYTES`], and no NUL (no event can hold one).
fn exact_value(param: &'static str, value: Option<&str>) -> Result<Option<String>, ParamError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_VALUE_BYTES {
        return Err(ParamError {
            param,
            message: format!("is {} bytes long; at most {MAX_VALUE_BYTES}", v.len()),
        });
    }
    if v.contains('\0') {
        return Err(ParamError {
            param,
            message: "contains NUL (U+0000), which no event can hold".into(),
        });
    }
    Ok(Some(v.to_owned()))
}

/// Which text filter the viewer is typing into, for its suggestion list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suggested {
    User,
    ResourceTarget,
}

impl Suggested {
    /// Its name as the `field` parameter spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ResourceTarget => "resource_target",
        }
    }
}

/// A request for suggestions: the filter and the text typed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestionQuery {
    pub field: Suggested,
    /// Empty: the most used values.
    pub text: String,
}

impl SuggestionQuery {
    /// Validates `field` (`user` or `resource_target`) and `q` (as the filters' text).
    pub fn parse(field: Option<&str>, q: Option<&str>) -> Result<Self, ParamError> {
        let field = match field.map(str::trim) {
            Some("user") => Suggested::User,
            Some("resource_target") => Suggested::ResourceTarget,
            Some(other) => {
                return Err(ParamError {
                    param: "field",
                    message: format!("'{other}' has no suggestions; use user or resource_target"),
                });
            }
            None => {
                return Err(ParamError {
                    param: "field",
                    message: "is required: user or resource_target".into(),
                });
            }
        };
        let text = text_value("q", q)?.unwrap_or_default();
        Ok(Self { field, text })
    }
}

impl AuditQuery {
    /// Validates every parameter; an empty one means "any". All problems are
    /// reported at once, each under its parameter's name.
    pub fn parse(raw: &RawQuery) -> Result<AuditQuery, Vec<ParamError>> {
        let mut errors = Vec::new();
        let mut value = |param: Param| {
            let given = raw.get(param);
            let checked = if param.is_exact() {
                exact_value(param.name(), given)
            } else {
                text_value(param.name(), given)
            };
            checked.unwrap_or_else(|e| {
                errors.push(e);
                None
            })
        };
        let resource_type = value(Param::ResourceType);
        let resource_target = value(Param::ResourceTarget);
        let user = value(Param::User);
        let resource_id = value(Param::ResourceId);
        let request_id = value(Param::RequestId);
        let q_text = value(Param::Q);
        let search_text = value(Param::Search);
        let action_text = value(Param::Action);
        let status_text = value(Param::Status);
        let from_text = value(Param::From);
        let to_text = value(Param::To);
        let limit_text = value(Param::Limit);
        let cursor_text = value(Param::Cursor);

        let q = parsed(&mut errors, Param::Q, q_text, |q| {
            super::free_text::check_term(q).map(|()| q.to_owned())
        });
        let search = parsed(&mut errors, Param::Search, search_text, |text| {
            Search::parse(text).map_err(|e| e.to_string())
        });
        let action = parsed(&mut errors, Param::Action, action_text, |a| {
            a.parse::<Action>().map_err(|e| e.to_string())
        });
        let status = parsed(&mut errors, Param::Status, status_text, Outcome::parse);
        let from = parsed(&mut errors, Param::From, from_text, parse_bound);
        let to = parsed(&mut errors, Param::To, to_text, parse_bound);
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            errors.push(ParamError {
                param: Param::To.name(),
                message: "must be after from (from is inclusive, to is exclusive)".into(),
            });
        }
        let limit = match limit_text {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(ParamError {
                        param: Param::Limit.name(),
                        message: format!("'{l}' is not a page size from 1 to {MAX_LIMIT}"),
                    });
                    DEFAULT_LIMIT
                }
            },
        };
        let cursor = parsed(&mut errors, Param::Cursor, cursor_text, |c| {
            Cursor::parse(c).ok_or_else(|| {
                "is not a cursor from a page of this log (follow the Older/Newer links)".into()
            })
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AuditQuery {
            filter: Filter {
                resource_type,
                action,
                resource_target,
                user,
                resource_id,
                request_id,
                status,
                from,
                to,
                q,
                search,
            },
            limit,
            cursor,
        })
    }

    /// The query-string pairs of the filter and page size (no cursor), for links
    /// that keep the current view: paging, export, the form's own state.
    pub fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        let f = &self.filter;
        let mut pairs = Vec::new();
        let mut push = |p: Param, v: Option<String>| {
            if let Some(v) = v {
                pairs.push((p.name(), v));
            }
        };
        push(Param::ResourceType, f.resource_type.clone());
        push(Param::Action, f.action.map(|a| a.as_str().to_owned()));
        push(Param::ResourceTarget, f.resource_target.clone());
        push(Param::User, f.user.clone());
        push(Param::ResourceId, f.resource_id.clone());
        push(Param::RequestId, f.request_id.clone());
        push(Param::Status, f.status.map(|s| s.as_str().to_owned()));
        push(Param::From, f.from.map(format_bound));
        push(Param::To, f.to.map(format_bound));
        push(Param::Q, f.q.clone());
        push(Param::Search, f.search.as_ref().map(|s| s.text.clone()));
        if self.limit != DEFAULT_LIMIT {
            push(Param::Limit, Some(self.limit.to_string()));
        }
        pairs
    }

    /// Whether any filter is set (the page size does not count).
    pub fn is_filtered(&self) -> bool {
        self.filter != Filter::default()
    }
}

/// A bound as a user would write it: a date at midnight, else RFC 3339.
pub fn format_bound(t: DateTime<Utc>) -> String {
    if t.time() == chrono::NaiveTime::MIN {
        t.format("%Y-%m-%d").to_string()
    } else {
        super::event::format_time(t)
    }
}

/// Encodes pairs as a query string (`a=1&b=x%20y`), empty when there are none.
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawQuery {
        let qs = encode_query(
            &pairs
                .iter()
                .map(|(k, v)| (*k, v.to_string()))
                .collect::<Vec<_>>(),
        );
        parsed_string(&qs)
    }

    fn parsed_string(qs: &str) -> RawQuery {
        let params = QueryParams::parse(qs, &[]);
        assert!(
            params.errors.is_empty() && params.unknown.is_empty(),
            "{params:?}"
        );
        params.raw
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<&'static str> {
        AuditQuery::parse(&raw(pairs))
            .unwrap_err()
            .into_iter()
            .map(|e| e.param)
            .collect()
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any query string, percent-encoded bytes included, parses into
        /// named problems or a query: never a panic.
        #[test]
        fn any_query_string_parses_without_panic(
            pairs in proptest::collection::vec(
                (prop_oneof![
                    proptest::sample::select(&Param::ALL[..]).prop_map(|p| p.name().to_owned()),
                    ".*",
                 ],
                 proptest::collection::vec(proptest::num::u8::ANY, 0..12)),
                0..8),
            tail in ".*",
        ) {
            let mut qs: String = pairs
                .iter()
                .map(|(k, v)| {
                    let v: String = v.iter().map(|b| format!("%{b:02X}")).collect();
                    format!("{k}={v}")
                })
                .collect::<Vec<_>>()
                .join("&");
            qs.push_str(&tail);
            let params = QueryParams::parse(&qs, &["format"]);
            let _ = AuditQuery::parse(&params.raw);
            prop_assert!(params.unknown.iter().all(|u| !u.contains('\n')));
        }

        /// Any text as a cursor is a cursor or `None`, and a cursor reads back as itself.
        #[test]
        fn any_cursor_text_is_refused_or_read(text in ".*", micros in proptest::num::i64::ANY, id in 0i64..) {
            let _ = Cursor::parse(&text);
            if let Some(time) = DateTime::<Utc>::from_timestamp_micros(micros) {
                let c = Cursor { direction: Direction::Newer, time, id };
                prop_assert_eq!(Cursor::parse(&c.to_string()), Some(c));
            }
        }
    }

    #[test]
    fn empty_parameters_mean_any() {
        let q = AuditQuery::parse(&raw(&[("action", ""), ("user", ""), ("limit", " ")])).unwrap();
        assert_eq!(q.filter, Filter::default());
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(!q.is_filtered());
    }

    #[test]
    fn exact_filters_keep_spaces_and_control_characters() {
        let target = " a\nb\t\u{202e}c ";
        let q = AuditQuery::parse(&raw(&[("resource_target", target), ("user", "  ")])).unwrap();
        assert_eq!(q.filter.resource_target.as_deref(), Some(target));
        assert_eq!(q.filter.user.as_deref(), Some("  "));
        assert_eq!(params(&[("resource_target", "a\0b")]), ["resource_target"]);
    }

    #[test]
    fn the_query_string_names_repeats_unknowns_and_bad_bytes() {
        let p = QueryParams::parse("action=create&action=delete&user=al%20ice&x%0Ay=1", &[]);
        assert_eq!(
            p.raw.get(Param::Action),
            Some("create"),
            "the first is kept"
        );
        assert_eq!(p.raw.get(Param::User), Some("al ice"));
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].param, "action");
        assert_eq!(p.unknown, ["x\\ny"]);
        let bad = QueryParams::parse("resource_target=%FF%FE&format=csv", &["format"]);
        assert_eq!(bad.errors[0].param, "resource_target");
        assert_eq!(
            bad.raw.get(Param::ResourceTarget),
            None,
            "never replaced by U+FFFD"
        );
        assert_eq!(bad.extra("format"), Some("csv"));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        assert_eq!(params(&[("action", "read")]), ["action"]);
        assert_eq!(params(&[("from", "yesterday")]), ["from"]);
        assert_eq!(params(&[("to", "2026-02-30")]), ["to"]);
        assert_eq!(
            params(&[("from", "2026-03-02"), ("to", "2026-03-01")]),
            ["to"]
        );
        assert_eq!(params(&[("limit", "0")]), ["limit"]);
        assert_eq!(params(&[("limit", "501")]), ["limit"]);
        assert_eq!(params(&[("limit", "ten")]), ["limit"]);
        assert_eq!(params(&[("cursor", "abc")]), ["cursor"]);
        assert_eq!(params(&[("status", "ok")]), ["status"]);
        assert_eq!(
            params(&[("action", "nope"), ("limit", "9999")]),
            ["action", "limit"]
        );
    }

    #[test]
    fn dates_are_utc_days_and_times_are_exact() {
        let q = AuditQuery::parse(&raw(&[
            ("from", "2026-03-01"),
            ("to", "2026-03-02T06:30:00+02:00"),
        ]))
        .unwrap();
        assert_eq!(
            q.filter.from.unwrap().to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
        assert_eq!(
            q.filter.to.unwrap().to_rfc3339(),
            "2026-03-02T04:30:00+00:00"
        );
        assert_eq!(
            q.filter_pairs(),
            vec![
                ("from", "2026-03-01".to_owned()),
                ("to", "2026-03-02T04:30:00Z".to_owned())
            ]
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            direction: Direction::Older,
            time: "2026-03-01T12:34:56.123456Z".parse().unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        for bad in [
            "",
            "o",
            "o.1",
            "x.1.2",
            "o.1.2.3",
            "o.a.2",
            "o.1.-2",
            "o.99999999999999999999.1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn filter_pairs_rebuild_the_same_query() {
        let pairs = [
            ("resource_type", "workspace"),
            ("action", "write"),
            ("user", "alice"),
            ("status", "failure"),
            ("q", "a b&c"),
            ("limit", "100"),
        ];
        let q = AuditQuery::parse(&raw(&pairs)).unwrap();
        let again = AuditQuery::parse(&parsed_string(&encode_query(&q.filter_pairs()))).unwrap();
        assert_eq!(again, q);
    }
}
