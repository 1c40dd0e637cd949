//! Manage > Audit as a view: the page's address taken apart, the rows, the
//! form's choices and errors, the paging and export links. No HTTP here
//! beyond the status the page answers with.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use askama::Template;

use crate::audit::export::Format;
use crate::audit::filter::{
    AuditQuery, Cursor, DEFAULT_LIMIT, PAGE_SIZES, Param, ParamError, QueryParams, RawQuery,
    encode_query,
};
use crate::audit::query::{FormChoices, MatchCount, Page};
use crate::audit::search::Search;
use crate::audit::{Action, Event};
use crate::web::shown::Shown;
use crate::web::views::Nav;

/// One value of a diff: as shown (long opaque values shortened) and in full.
pub struct ShownValue {
    pub shown: Shown,
    pub full: Shown,
}

/// One row of the Field / Diff table.
pub struct DiffRow {
    pub field: Shown,
    pub old: Option<ShownValue>,
    pub new: Option<ShownValue>,
    pub secret: bool,
    /// A value was shortened for display: the full one is shown beneath.
    pub shortened: bool,
}

/// One event as the page shows it.
pub struct EventView {
    pub time_utc: String,
    pub time_iso: String,
    pub username: Shown,
    pub email: Shown,
    pub ip: String,
    pub action: &'static str,
    pub action_help: &'static str,
    pub resource_type: Shown,
    pub resource_target: Shown,
    pub resource_id: Shown,
    pub status_code: u16,
    pub success: bool,
    pub request_id: Shown,
    pub request_short: Shown,
    pub diff: Vec<DiffRow>,
    /// Links that filter the current view by this row's user, target or request.
    pub user_href: String,
    pub target_href: String,
    pub request_href: String,
}

/// Shortens a long opaque value (no spaces, over 24 characters) the way the
/// seed shows a client id: `0fb2...7a4a`.
pub fn shorten(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() > 24 && !value.contains(char::is_whitespace) {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}...{tail}")
    } else {
        value.to_owned()
    }
}

fn shown(value: &serde_json::Value) -> ShownValue {
    let full = crate::audit::visible::value_text(value);
    ShownValue {
        shown: Shown::new(shorten(&full)),
        full: Shown::new(full),
    }
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            time_utc: e.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            time_iso: crate::audit::event::format_time(e.time),
            username: Shown::new(e.user.username),
            email: Shown::new(e.user.email),
            ip: e.ip,
            action: e.action.as_str(),
            action_help: e.action.description(),
            resource_type: Shown::new(e.resource_type),
            resource_target: Shown::new(e.resource_target),
            resource_id: Shown::new(e.resource_id),
            status_code: e.status_code,
            success: e.status_code < 400,
            request_short: Shown::new(e.request_id.chars().take(8).collect::<String>()),
            request_id: Shown::new(e.request_id),
            diff: e
                .diff
                .into_iter()
                .map(|(field, c)| {
                    let old = c.old.as_ref().map(shown);
                    let new = c.new.as_ref().map(shown);
                    let shortened = [&old, &new]
                        .into_iter()
                        .flatten()
                        .any(|v| v.shown.exact != v.full.exact);
                    DiffRow {
                        field: Shown::new(field),
                        old,
                        new,
                        secret: c.is_secret(),
                        shortened,
                    }
                })
                .collect(),
            user_href: String::new(),
            target_href: String::new(),
            request_href: String::new(),
        }
    }
}

/// A choice in a dropdown.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub help: &'static str,
    pub selected: bool,
}

/// The form's fields as the URL gave them: a filter matched exactly as given,
/// the others trimmed; a field the URL leaves empty shows the search bar's
/// single positive term of its key, so the two always show the same view.
#[derive(Default)]
pub struct FormState {
    raw: RawQuery,
    /// The search bar's terms, when they read.
    search: Option<Search>,
}

impl FormState {
    fn new(raw: RawQuery) -> Self {
        let search = raw.get(Param::Search).and_then(|t| Search::parse(t).ok());
        Self { raw, search }
    }

    /// What the field for `param` shows.
    pub fn value(&self, param: Param) -> Cow<'_, str> {
        let given = self.given(param);
        match self.search_term(param) {
            Some(v) if given.is_empty() => Cow::Owned(v),
            _ => Cow::Borrowed(given),
        }
    }

    /// The value a field empty in the URL takes from the search bar.
    fn search_term(&self, param: Param) -> Option<String> {
        self.search.as_ref()?.single(param)
    }

    /// Whether the field shows the search bar's term rather than its own
    /// parameter (the script then leaves it out of the URL unless changed).
    pub fn shows_search(&self, param: Param) -> bool {
        self.given(param).is_empty() && self.search_term(param).is_some()
    }

    /// The parameter as the URL gave it: exactly, or trimmed.
    fn given(&self, param: Param) -> &str {
        let given = self.raw.get(param).unwrap_or_default();
        if param.is_exact() {
            given
        } else {
            given.trim()
        }
    }

    /// The Resource Type dropdown: the types stored, and the one asked for.
    fn resource_types(&self, stored: &[String]) -> Vec<Choice> {
        let stored = stored.iter().map(|t| (t.clone(), ""));
        choices(stored, &self.value(Param::ResourceType), "")
    }

    /// The Action dropdown, each with what it means.
    fn actions(&self) -> Vec<Choice> {
        let all = Action::ALL
            .iter()
            .map(|a| (a.as_str().to_owned(), a.description()));
        choices(all, &self.value(Param::Action), "not an action")
    }

    /// The Per page dropdown, at the size in use (or asked for, when wrong).
    fn page_sizes(&self, parsed: &Result<AuditQuery, Vec<ParamError>>) -> Vec<Choice> {
        let sizes = PAGE_SIZES.iter().map(|n| (n.to_string(), ""));
        choices(sizes, &query_limit(parsed, self), "")
    }

    /// Whether More filters starts open: one of its fields is set or wrong.
    fn more_open(&self, err: &FieldErrors) -> bool {
        [Param::Q, Param::ResourceId, Param::RequestId]
            .into_iter()
            .any(|p| !self.given(p).is_empty() || err.get(p).is_some())
    }
}

/// Problems to show next to their fields (the first for each parameter).
#[derive(Default)]
pub struct FieldErrors(Vec<(Param, String)>);

impl FieldErrors {
    /// Sorts problems by field; any that belongs to no field of the form
    /// comes back, to be shown above it.
    fn new(errors: Vec<ParamError>) -> (Self, Vec<String>) {
        let mut fields = Vec::new();
        let mut general = Vec::new();
        for e in errors {
            match Param::from_name(e.param) {
                Some(p) => fields.push((p, e.message)),
                None => general.push(e.to_string()),
            }
        }
        (Self(fields), general)
    }

    /// The problem with `param`, if any.
    pub fn get(&self, param: Param) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, _)| *p == param)
            .map(|(_, message)| message.as_str())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Manage > Audit as the template draws it.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    nav: Option<Nav>,
    active: &'static str,
    summary: String,
    integrity: String,
    verification: String,
    /// The last background check's problems, when it failed: a banner.
    integrity_failure: Option<IntegrityFailure>,
    /// A line for each stream retrying or failing: a banner.
    stream_alerts: Vec<Shown>,
    exports: Vec<(&'static str, String)>,
    general_errors: Vec<String>,
    err: FieldErrors,
    has_errors: bool,
    form: FormState,
    resource_types: Vec<Choice>,
    actions: Vec<Choice>,
    targets: Vec<Shown>,
    users: Vec<Shown>,
    page_sizes: Vec<Choice>,
    from_type: &'static str,
    to_type: &'static str,
    more_open: bool,
    filtered: bool,
    rows: Vec<EventView>,
    newest_href: Option<String>,
    newer_href: Option<String>,
    older_href: Option<String>,
}

/// What the page reads from the database in one trip.
pub struct Loaded {
    pub choices: std::sync::Arc<FormChoices>,
    pub page: Option<(Page, MatchCount)>,
    /// The latest signed checkpoint, if any.
    pub checkpoint: Option<crate::db::checkpoints::CheckpointRow>,
    /// The server's last background check of the log.
    pub check: crate::db::log_checks::LogCheck,
    /// The streams retrying or failing.
    pub streams: Vec<crate::streams::Stream>,
}

/// A failed check of the log, as the banner shows it.
pub struct IntegrityFailure {
    checked_at: String,
    /// The first problems found.
    problems: Vec<String>,
    /// How many more there are.
    more: usize,
}

/// Problems the banner lists; the rest are counted.
const BANNER_PROBLEMS: usize = 5;

/// The page's line on the last background check, and the banner when it
/// failed.
fn verification(check: &crate::db::log_checks::LogCheck) -> (String, Option<IntegrityFailure>) {
    let Some(at) = check.checked_at else {
        return ("Not checked yet".to_owned(), None);
    };
    let at = at.format("%Y-%m-%d %H:%M:%S").to_string();
    if check.problems.is_empty() {
        let n = check.verified_size;
        return (
            format!(
                "Checked {at} UTC: the first {} event{} match their checkpoints",
                thousands(n),
                if n == 1 { "" } else { "s" }
            ),
            None,
        );
    }
    let all: Vec<&str> = check.problems.lines().collect();
    (
        format!("Integrity check failed {at} UTC"),
        Some(IntegrityFailure {
            checked_at: at,
            problems: all
                .iter()
                .take(BANNER_PROBLEMS)
                .map(|p| (*p).to_owned())
                .collect(),
            more: all.len().saturating_sub(BANNER_PROBLEMS),
        }),
    )
}

/// A stream that is not delivering, as the page's banner says it.
fn stream_alert(s: &crate::streams::Stream) -> Shown {
    use crate::streams::Health;
    let since = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    Shown::new(match &s.health {
        Health::Failing { since: t, error } => format!(
            "Stream '{}' is failing since {}: {error}. It is not tried again until resumed.",
            s.name,
            since(t)
        ),
        Health::Retrying { since: t, error } => {
            format!(
                "Stream '{}' is retrying since {}: {error}.",
                s.name,
                since(t)
            )
        }
        Health::Delivering | Health::Paused => {
            format!("Stream '{}' is {}.", s.name, s.health.word())
        }
    })
}

/// The page's line on the log's integrity: the latest checkpoint's size,
/// time and signer, or that there is none yet.
fn integrity_line(checkpoint: Option<&crate::db::checkpoints::CheckpointRow>) -> String {
    match checkpoint {
        None => "No signed checkpoint yet".to_owned(),
        Some(c) => {
            let signers = crate::integrity::note::signers(&c.note).join(", ");
            format!(
                "Signed checkpoint: {} event{} at {} UTC, key {signers}",
                thousands(c.size),
                if c.size == 1 { "" } else { "s" },
                c.created_at.format("%Y-%m-%d %H:%M:%S")
            )
        }
    }
}

/// The page's address taken apart: the parameters as given (the form shows
/// them), and the query or every problem with it.
pub struct PageRequest {
    raw: RawQuery,
    parsed: Result<AuditQuery, Vec<ParamError>>,
    /// Problems that belong to no field (a parameter the page does not take).
    general_errors: Vec<String>,
}

impl PageRequest {
    pub fn parse(query_string: &str) -> Self {
        let params = QueryParams::parse(query_string, &[]);
        let general_errors: Vec<String> = params
            .unknown
            .iter()
            .map(|name| {
                format!(
                    "The audit page does not take the parameter '{name}'; remove it from the address."
                )
            })
            .collect();
        let parsed = match (AuditQuery::parse(&params.raw), params.errors) {
            (Ok(q), errors) if errors.is_empty() && general_errors.is_empty() => Ok(q),
            (parsed, mut errors) => {
                errors.extend(parsed.err().unwrap_or_default());
                Err(errors)
            }
        };
        Self {
            raw: params.raw,
            parsed,
            general_errors,
        }
    }

    /// The query to load, when the address has no problem.
    pub fn query(&self) -> Option<&AuditQuery> {
        self.parsed.as_ref().ok()
    }
}

/// A dropdown's choices, `chosen` marked; a chosen value that is not among
/// them (an unknown action, a type no event has yet) is kept, first, so the
/// form shows what the address says.
fn choices(
    options: impl IntoIterator<Item = (String, &'static str)>,
    chosen: &str,
    unknown_help: &'static str,
) -> Vec<Choice> {
    let mut out: Vec<Choice> = options
        .into_iter()
        .map(|(value, help)| Choice {
            label: Shown::new(value.as_str()).plain(),
            selected: value == chosen,
            value,
            help,
        })
        .collect();
    if !chosen.is_empty() && !out.iter().any(|c| c.selected) {
        out.insert(
            0,
            Choice {
                value: chosen.to_owned(),
                label: Shown::new(chosen).plain(),
                help: unknown_help,
                selected: true,
            },
        );
    }
    out
}

/// The export links of the current filter, one per format.
fn export_links(base: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    Format::ALL
        .into_iter()
        .map(|format| {
            let mut pairs: Vec<(&str, String)> = vec![("format", format.as_str().to_owned())];
            pairs.extend(base.iter().filter(|(k, _)| *k != "limit").cloned());
            (
                format.label(),
                format!("/manage/audit/export?{}", encode_query(&pairs)),
            )
        })
        .collect()
}

/// The rows, the summary line and the paging links of a loaded page.
struct Listing {
    rows: Vec<EventView>,
    summary: String,
    newest_href: Option<String>,
    newer_href: Option<String>,
    older_href: Option<String>,
}

impl Listing {
    fn new(
        page: Page,
        count: MatchCount,
        query: &AuditQuery,
        base: &[(&'static str, String)],
    ) -> Self {
        let link = |c: &Cursor| {
            let mut pairs = base.to_vec();
            pairs.push(("cursor", c.to_string()));
            href(&pairs)
        };
        let summary = summary(&page, count, query.cursor.is_none());
        let newest_href = (!page.is_newest(query.cursor)).then(|| href(base));
        let newer_href = page.newer.as_ref().map(link);
        let older_href = page.older.as_ref().map(link);
        let rows = page
            .events
            .into_iter()
            .map(|e| {
                let mut view = EventView::from(e);
                view.user_href = with_filter(base, "user", &view.username.exact);
                view.target_href =
                    with_filter(base, "resource_target", &view.resource_target.exact);
                view.request_href = with_filter(base, "request_id", &view.request_id.exact);
                view
            })
            .collect();
        Self {
            rows,
            summary,
            newest_href,
            newer_href,
            older_href,
        }
    }

    /// What stands in place of the rows while a filter is wrong.
    fn none() -> Self {
        Self {
            rows: Vec::new(),
            summary: "filters need attention".to_owned(),
            newest_href: None,
            newer_href: None,
            older_href: None,
        }
    }
}

impl AuditPage {
    /// The page for `request`, with what was loaded for it.
    pub fn new(nav: Nav, request: PageRequest, loaded: Loaded) -> Self {
        let PageRequest {
            raw,
            parsed,
            mut general_errors,
        } = request;
        let (err, unplaced) = FieldErrors::new(parsed.as_ref().err().cloned().unwrap_or_default());
        general_errors.extend(unplaced);
        let has_errors = !err.is_empty() || !general_errors.is_empty();
        let form = FormState::new(raw);
        let base = parsed
            .as_ref()
            .map(|q| q.filter_pairs())
            .unwrap_or_default();
        let listing = match (loaded.page, &parsed) {
            (Some((page, count)), Ok(q)) => Listing::new(page, count, q, &base),
            _ => Listing::none(),
        };
        let date_or_text = |s: &str| if is_plain_date(s) { "date" } else { "text" };
        let (verification, integrity_failure) = verification(&loaded.check);
        Self {
            nav: Some(nav),
            active: "audit",
            summary: listing.summary,
            integrity: integrity_line(loaded.checkpoint.as_ref()),
            verification,
            integrity_failure,
            stream_alerts: loaded.streams.iter().map(stream_alert).collect(),
            exports: export_links(&base),
            general_errors,
            has_errors,
            from_type: date_or_text(&form.value(Param::From)),
            to_type: date_or_text(&form.value(Param::To)),
            resource_types: form.resource_types(&loaded.choices.resource_types),
            actions: form.actions(),
            targets: loaded.choices.targets.iter().map(Shown::from).collect(),
            users: loaded.choices.users.iter().map(Shown::from).collect(),
            page_sizes: form.page_sizes(&parsed),
            more_open: form.more_open(&err),
            err,
            filtered: parsed.as_ref().map(|q| q.is_filtered()).unwrap_or(true),
            rows: listing.rows,
            newest_href: listing.newest_href,
            newer_href: listing.newer_href,
            older_href: listing.older_href,
            form,
        }
    }

    /// 400 while a filter needs attention, else 200.
    pub fn status(&self) -> StatusCode {
        if self.has_errors {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        }
    }
}

fn href(pairs: &[(&str, String)]) -> String {
    let qs = encode_query(pairs);
    if qs.is_empty() {
        "/manage/audit".to_owned()
    } else {
        format!("/manage/audit?{qs}")
    }
}

/// The current view's link with one filter set to `value` (and paging reset).
fn with_filter(base: &[(&'static str, String)], key: &'static str, value: &str) -> String {
    let mut pairs: Vec<(&str, String)> = base.iter().filter(|(k, _)| *k != key).cloned().collect();
    pairs.push((key, value.to_owned()));
    href(&pairs)
}

/// Formats 12345 as "12,345".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn summary(page: &Page, count: MatchCount, first_page: bool) -> String {
    let total = match count {
        MatchCount::Exactly(n) => {
            format!("{} event{}", thousands(n), if n == 1 { "" } else { "s" })
        }
        MatchCount::AtLeast(n) => format!("{}+ events", thousands(n)),
    };
    let shown = page.events.len();
    if shown == 0 {
        return format!("0 of {total}");
    }
    if first_page {
        format!("1–{} of {total}", thousands(shown as i64))
    } else {
        format!("{} shown, of {total}", thousands(shown as i64))
    }
}

fn is_plain_date(s: &str) -> bool {
    s.is_empty() || chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// The page size to show as chosen: the parsed one, or what the URL said.
fn query_limit(parsed: &Result<AuditQuery, Vec<ParamError>>, form: &FormState) -> String {
    match parsed {
        Ok(q) => q.limit.to_string(),
        Err(_) => match form.value(Param::Limit).as_ref() {
            "" => DEFAULT_LIMIT.to_string(),
            given => given.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{shorten, thousands};

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn long_opaque_values_are_shortened_like_the_seed() {
        assert_eq!(shorten("0fb2c1d3e4f5a6b7c8d9e0f1a2b37a4a"), "0fb2...7a4a");
        assert_eq!(shorten("GitHub"), "GitHub");
        assert_eq!(
            shorten("Maintenance tonight from 9:01PM until 11:30PM"),
            "Maintenance tonight from 9:01PM until 11:30PM"
        );
    }
}
