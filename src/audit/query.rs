//! Reading pages of events for the page, the export and the API: keyset paging
//! along the (…, time, id) indexes, never OFFSET, and a capped count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::filter::{AuditQuery, Cursor, Direction, Filter, Outcome, Suggested, SuggestionQuery};
use super::param::Param;
use super::search::Want;
use super::store::{LoadError, from_row};
use super::{Event, free_text};
use crate::db::events::{self as rows, Criteria, EventRow, Position, Values};
use crate::db::{DbConn, DbError};

/// The count is never taken further than this ("10,000+").
pub const COUNT_CAP: i64 = 10_000;

/// How many events match: exactly, or "more than the cap".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchCount {
    Exactly(i64),
    AtLeast(i64),
}

/// One page of events, newest first, with the cursors to its neighbours.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<Event>,
    /// The next page towards older events, if there is one.
    pub older: Option<Cursor>,
    /// The next page towards newer events, if this is not the newest page.
    pub newer: Option<Cursor>,
}

impl Page {
    /// Whether this is the newest page of its filter (no "Newest" link): the
    /// first page, or a page reached going newer that has nothing newer.
    pub fn is_newest(&self, cursor: Option<Cursor>) -> bool {
        match cursor {
            None => true,
            Some(c) => self.newer.is_none() && c.direction == Direction::Newer,
        }
    }
}

/// The filter in the database's terms: each field and the search bar's
/// terms, all of which must hold. The values a text column may have are the
/// field's value and each alternative of the bar's terms for that key, both;
/// the status and the time bounds likewise.
pub fn criteria(filter: &Filter) -> Criteria {
    let search = filter.search.clone().unwrap_or_default();
    let column = |field: &Option<String>, key: Param| {
        let mut v = Values::exactly(field.clone());
        let (allowed, excluded) = search.values(key);
        narrow(&mut v, &allowed);
        v.none_of = excluded.iter().map(|e| (*e).to_owned()).collect();
        v
    };
    let mut c = Criteria {
        resource_type: column(&filter.resource_type, Param::ResourceType),
        action: Values::exactly(filter.action.map(|a| a.as_str().to_owned())),
        resource_target: column(&filter.resource_target, Param::ResourceTarget),
        actor_username: column(&filter.user, Param::User),
        resource_id: column(&filter.resource_id, Param::ResourceId),
        request_id: column(&filter.request_id, Param::RequestId),
        failed: None,
        from: filter.from.map(|t| t.naive_utc()),
        to: filter.to.map(|t| t.naive_utc()),
        text: filter.q.iter().map(|q| free_text::fold(q)).collect(),
        text_absent: Vec::new(),
        contradictory: false,
    };
    // Which outcomes are left: the field's, then the bar's alternatives.
    let mut outcomes = match filter.status {
        Some(s) => vec![s],
        None => vec![Outcome::Success, Outcome::Failure],
    };
    let mut actions_allowed: Vec<&'static str> = Vec::new();
    let mut statuses_allowed: Vec<Outcome> = Vec::new();
    for term in &search.terms {
        match (&term.want, term.negated) {
            (Want::Action(a), false) => actions_allowed.push(a.as_str()),
            (Want::Action(a), true) => c.action.none_of.push(a.as_str().to_owned()),
            (Want::Status(s), false) => statuses_allowed.push(*s),
            (Want::Status(s), true) => outcomes.retain(|o| o != s),
            (Want::From(t), _) => c.from = c.from.max(Some(t.naive_utc())),
            (Want::To(t), _) => c.to = Some(c.to.map_or(t.naive_utc(), |to| to.min(t.naive_utc()))),
            (Want::Text(t), false) => c.text.push(free_text::fold(t)),
            (Want::Text(t), true) => c.text_absent.push(free_text::fold(t)),
            (Want::Value(..), _) => {}
        }
    }
    narrow(&mut c.action, &actions_allowed);
    if !statuses_allowed.is_empty() {
        outcomes.retain(|o| statuses_allowed.contains(o));
    }
    match outcomes.as_slice() {
        [] => c.contradictory = true,
        [one] => c.failed = Some(*one == Outcome::Failure),
        _ => {}
    }
    c
}

/// Keeps of `values` only those among `allowed` (the bar's alternatives for
/// its key), unless the bar names none.
fn narrow(values: &mut Values, allowed: &[&str]) {
    if allowed.is_empty() {
        return;
    }
    values.one_of = Some(match values.one_of.take() {
        None => allowed.iter().map(|a| (*a).to_owned()).collect(),
        Some(given) => given
            .into_iter()
            .filter(|g| allowed.contains(&g.as_str()))
            .collect(),
    });
}

fn cursor(direction: Direction, row: &EventRow) -> Cursor {
    Cursor {
        direction,
        time: DateTime::<Utc>::from_naive_utc_and_offset(row.time, Utc),
        id: row.id,
    }
}

/// Reads the page that `query` asks for.
pub fn fetch_page(conn: &mut DbConn, query: &AuditQuery) -> Result<Page, LoadError> {
    let criteria = criteria(&query.filter);
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let position = query.cursor.map(|c| Position {
        time: c.time.naive_utc(),
        id: c.id,
        newer: c.direction == Direction::Newer,
    });
    // One row more than shown tells whether another page follows.
    let mut found = rows::page(conn, &criteria, position, i64::from(query.limit) + 1)?;
    let more = found.len() > limit;
    found.truncate(limit);
    let (older, newer) = match query.cursor.map(|c| c.direction) {
        None => (
            more.then(|| found.last().map(|r| cursor(Direction::Older, r)))
                .flatten(),
            None,
        ),
        Some(Direction::Older) => (
            more.then(|| found.last().map(|r| cursor(Direction::Older, r)))
                .flatten(),
            found.first().map(|r| cursor(Direction::Newer, r)),
        ),
        Some(Direction::Newer) => {
            found.reverse();
            (
                found.last().map(|r| cursor(Direction::Older, r)),
                more.then(|| found.first().map(|r| cursor(Direction::Newer, r)))
                    .flatten(),
            )
        }
    };
    let events = found
        .into_iter()
        .map(|r| from_row(r).map_err(LoadError::Corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        events,
        older,
        newer,
    })
}

/// Counts the matching events up to [`COUNT_CAP`].
pub fn count_matching(conn: &mut DbConn, filter: &Filter) -> Result<MatchCount, LoadError> {
    let n = rows::count_capped(conn, &criteria(filter), COUNT_CAP + 1)?;
    Ok(if n > COUNT_CAP {
        MatchCount::AtLeast(COUNT_CAP)
    } else {
        MatchCount::Exactly(n)
    })
}

/// What the audit page has read before and can show again while it still
/// holds, so that a view looked at again (a reload, the next page, a bookmark)
/// costs less. Exact by construction, never a guess; everything is checked
/// against [`rows::append_mark`], which changes whenever an event is added and
/// is read before what it vouches for (so that what is kept can only be newer
/// than its mark, never older):
/// - counts past the cap: the log is append-only (the database refuses UPDATE
///   and DELETE on events), so a filter's count never goes down and once past
///   the cap stays past it, whatever the mark;
/// - counts below the cap: while the mark is unchanged;
/// - the form's choices (resource types, most used targets and users): the
///   dropdown tables are written only with events, in the same transaction;
///   while the mark is unchanged.
///
/// One per database (one per running app). Counting up to 10,001 index
/// entries was about a third of a busy page's work.
#[derive(Debug, Default)]
pub struct PageCache {
    counts: Mutex<HashMap<Filter, (MatchCount, String)>>,
    choices: Mutex<Option<(String, Arc<FormChoices>)>>,
}

/// What the filter form offers besides the fixed actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormChoices {
    pub resource_types: Vec<String>,
    /// The [`SUGGESTIONS`] most used resource targets.
    pub targets: Vec<String>,
    /// The [`SUGGESTIONS`] most active users.
    pub users: Vec<String>,
}

/// At most this many filters' counts are remembered; then the memory starts over.
const COUNTS_KEPT: usize = 10_000;

/// Locks a cache's memory; it holds no invariant a panic could break.
fn remembered<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PageCache {
    /// The current mark (see [`rows::append_mark`]), to pass to the others.
    pub fn mark(&self, conn: &mut DbConn) -> Result<String, DbError> {
        rows::append_mark(conn)
    }

    /// [`count_matching`], or the count taken before when it still holds.
    pub fn count(
        &self,
        conn: &mut DbConn,
        filter: &Filter,
        mark: &str,
    ) -> Result<MatchCount, LoadError> {
        if let Some((count, counted_at)) = remembered(&self.counts).get(filter) {
            let still_true = match count {
                MatchCount::AtLeast(_) => true,
                MatchCount::Exactly(_) => counted_at == mark,
            };
            if still_true {
                return Ok(*count);
            }
        }
        let count = count_matching(conn, filter)?;
        let mut counts = remembered(&self.counts);
        if counts.len() >= COUNTS_KEPT {
            counts.clear();
        }
        counts.insert(filter.clone(), (count, mark.to_owned()));
        Ok(count)
    }

    /// The form's choices, read again only when an event has been added.
    pub fn choices(&self, conn: &mut DbConn, mark: &str) -> Result<Arc<FormChoices>, DbError> {
        if let Some((read_at, choices)) = remembered(&self.choices).as_ref()
            && read_at == mark
        {
            return Ok(choices.clone());
        }
        let choices = Arc::new(FormChoices {
            resource_types: rows::resource_types(conn)?
                .into_iter()
                .map(|d| d.name)
                .collect(),
            targets: rows::top_resource_targets(conn, SUGGESTIONS)?
                .into_iter()
                .map(|d| d.name)
                .collect(),
            users: rows::top_actors(conn, SUGGESTIONS)?
                .into_iter()
                .map(|a| a.0)
                .collect(),
        });
        *remembered(&self.choices) = Some((mark.to_owned(), choices.clone()));
        Ok(choices)
    }
}

/// How many values a suggestion list holds (the page's inline lists as well).
pub const SUGGESTIONS: i64 = 20;

/// The most used users or resource targets containing the typed text.
pub fn suggestions(conn: &mut DbConn, query: &SuggestionQuery) -> Result<Vec<String>, DbError> {
    let dimension = match query.field {
        Suggested::User => rows::Dimension::User,
        Suggested::ResourceTarget => rows::Dimension::ResourceTarget,
    };
    rows::matching_values(conn, dimension, &query.text, SUGGESTIONS)
}
