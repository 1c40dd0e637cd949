//! Reading pages of events for the page, the export and the API: keyset paging
//! along the (…, time, id) indexes, never OFFSET, and a capped count.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::Event;
use super::filter::{AuditQuery, Cursor, Direction, Filter, Outcome, Suggested, SuggestionQuery};
use super::store::{LoadError, from_row};
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
        text_pattern: filter.q.as_deref().map(crate::db::events::like_pattern),
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

/// Counts the page has taken, so that a view looked at again (a reload, the
/// next page, a bookmark) does not count again. Exact by construction, never a
/// guess:
/// - past the cap: the log is append-only (the database refuses UPDATE and
///   DELETE on events), so a filter's count never goes down and once past the
///   cap stays past it;
/// - below the cap: kept only while no event has been added since (see
///   [`rows::append_mark`], read before counting, so that a count can only be
///   newer than its mark, never older).
///
/// One per database (one per running app). Counting up to 10,001 index
/// entries was about a third of a busy page's work.
#[derive(Debug, Default)]
pub struct CountCache {
    known: Mutex<HashMap<Filter, (MatchCount, String)>>,
}

/// At most this many filters are remembered; then the memory starts over.
const COUNTS_KEPT: usize = 10_000;

impl CountCache {
    /// [`count_matching`], or the count taken before when it still holds.
    pub fn count(&self, conn: &mut DbConn, filter: &Filter) -> Result<MatchCount, LoadError> {
        let mark = rows::append_mark(conn)?;
        if let Some((count, counted_at)) = self.lock().get(filter) {
            let still_true = match count {
                MatchCount::AtLeast(_) => true,
                MatchCount::Exactly(_) => *counted_at == mark,
            };
            if still_true {
                return Ok(*count);
            }
        }
        let count = count_matching(conn, filter)?;
        let mut known = self.lock();
        if known.len() >= COUNTS_KEPT {
            known.clear();
        }
        known.insert(filter.clone(), (count, mark));
        Ok(count)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Filter, (MatchCount, String)>> {
        // The map holds no invariant a panic could break.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
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
