//! Reading pages of events for the page, the export and the API: keyset paging
//! along the (…, time, id) indexes, never OFFSET, and a capped count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::filter::{AuditQuery, Cursor, Direction, Filter, Outcome, Suggested, SuggestionQuery};
use super::store::{LoadError, from_row};
use super::{Event, free_text};
use crate::db::events::{self as rows, Criteria, EventRow, Position};
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

/// The filter in the database's terms.
pub fn criteria(filter: &Filter) -> Criteria {
    Criteria {
        resource_type: filter.resource_type.clone(),
        action: filter.action.map(|a| a.as_str().to_owned()),
        resource_target: filter.resource_target.clone(),
        actor_username: filter.user.clone(),
        resource_id: filter.resource_id.clone(),
        request_id: filter.request_id.clone(),
        failed: filter.status.map(|s| s == Outcome::Failure),
        from: filter.from.map(|t| t.naive_utc()),
        to: filter.to.map(|t| t.naive_utc()),
        text: filter.q.iter().map(|q| free_text::fold(q)).collect(),
    }
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
