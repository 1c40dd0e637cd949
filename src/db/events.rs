//! The event table and its dropdown tables: the one write path for events.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{actors, events, resource_targets, resource_types};
use super::{AnyConnection, DbConn, DbError, with_backend, write_transaction};

/// An event row to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEventRow {
    pub event_uuid: String,
    pub time: NaiveDateTime,
    pub actor_username: String,
    pub actor_email: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_target: String,
    pub diff: String,
    pub ip: String,
    pub user_agent: String,
    pub status_code: i32,
    pub request_id: String,
    pub content_hash: String,
    pub received_at: NaiveDateTime,
    /// The text free-text search looks in (`audit::free_text::document`).
    pub search_doc: String,
    /// Another fingerprint that counts as the same content (an event stored
    /// before diffs were kept exactly); not a column.
    #[diesel(skip_insertion)]
    pub earlier_hash: Option<String>,
    /// The hex SHA-256 leaf hash of the event in the log (`integrity`),
    /// stored with its position (`log_entries`); not a column of `events`.
    #[diesel(skip_insertion)]
    pub leaf_hash: String,
}

/// A stored event row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub event_uuid: String,
    pub time: NaiveDateTime,
    pub actor_username: String,
    pub actor_email: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_target: String,
    pub diff: String,
    pub ip: String,
    pub user_agent: String,
    pub status_code: i32,
    pub request_id: String,
    pub content_hash: String,
    pub received_at: NaiveDateTime,
}

/// What to do when an event id is already stored with different content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Store nothing of the batch (the API: the request is refused whole).
    RefuseBatch,
    /// Store the rest and report the conflicting ones (the importer).
    SkipEvent,
}

/// What became of each row of a batch, by its index in the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Newly stored.
    pub stored: Vec<usize>,
    /// Already stored with the same content: nothing to do.
    pub already_present: Vec<usize>,
    /// The id is stored with different content.
    pub conflicts: Vec<usize>,
}

/// Rows per INSERT statement: 15 columns each stays far below SQLite's
/// limit on bound parameters.
const ROWS_PER_STATEMENT: usize = 500;
/// Ids per `IN (...)` lookup.
const IDS_PER_LOOKUP: usize = 1000;

/// Stores a batch of events in one transaction, idempotently by event id, and
/// keeps the dropdown tables (actors, resource types, resource targets) current.
/// Nothing is visible to readers until the transaction commits, and when this
/// returns `Ok` the batch is durable.
pub fn insert_batch(
    conn: &mut DbConn,
    rows: &[NewEventRow],
    on_conflict: OnConflict,
) -> Result<InsertOutcome, DbError> {
    if rows.is_empty() {
        return Ok(InsertOutcome::default());
    }
    // Two concurrent transactions (PostgreSQL) can both find an id absent and
    // both insert it: the second then fails on the unique index once the first
    // commits, or, when they insert several such ids in different orders, one of
    // them is aborted as a deadlock. Written again, it finds the stored rows and
    // answers as for any stored id (already present, or a conflict).
    // With several such requests one can lose more than once: a few tries, a
    // little apart (at random, so that two losers do not meet again).
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write_transaction(conn, |conn| insert_rows(conn, rows, on_conflict)) {
            Err(DbError::Query(e))
                if attempts < 6 && (super::is_unique_violation(&e) || super::is_deadlock(&e)) =>
            {
                let pause = rand::random::<u64>() % (10 * attempts);
                std::thread::sleep(std::time::Duration::from_millis(pause));
            }
            done => return done,
        }
    }
}

/// The body of [`insert_batch`], inside the caller's (write) transaction.
pub(super) fn insert_rows(
    conn: &mut DbConn,
    rows: &[NewEventRow],
    on_conflict: OnConflict,
) -> Result<InsertOutcome, DbError> {
    let stored_hashes = existing_hashes(conn, rows)?;
    let mut outcome = InsertOutcome::default();
    // Ids seen earlier in this same batch, with their content hash.
    let mut in_batch: HashMap<&str, &str> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let known = stored_hashes
            .get(row.event_uuid.as_str())
            .map(String::as_str)
            .or_else(|| in_batch.get(row.event_uuid.as_str()).copied());
        match known {
            Some(hash) if hash == row.content_hash || row.earlier_hash.as_deref() == Some(hash) => {
                outcome.already_present.push(i)
            }
            Some(_) => outcome.conflicts.push(i),
            None => {
                in_batch.insert(&row.event_uuid, &row.content_hash);
                outcome.stored.push(i);
            }
        }
    }
    if on_conflict == OnConflict::RefuseBatch && !outcome.conflicts.is_empty() {
        outcome.stored.clear();
        return Ok(outcome);
    }
    let new_rows: Vec<&NewEventRow> = outcome.stored.iter().map(|&i| &rows[i]).collect();
    // Each new event's id and leaf hash, in the order they were inserted.
    let mut positioned: Vec<(i64, String)> = Vec::with_capacity(new_rows.len());
    match conn.backend() {
        // One row per statement: a statement that inserts several rows makes
        // SQLite copy every page it changes into a statement journal (so that a
        // failure on a later row can undo the earlier ones). With the events'
        // ten indexes that tripled the bytes written per event (measured:
        // bench/README.md). A prepared single-row INSERT needs no statement
        // journal; a failure still undoes the whole transaction. (The dropdown
        // tables below are small, and their multi-row upserts measured faster.)
        AnyConnection::Sqlite(c) => {
            for row in &new_rows {
                diesel::insert_into(events::table).values(*row).execute(c)?;
                let id = diesel::select(last_insert_rowid()).get_result(c)?;
                positioned.push((id, row.leaf_hash.clone()));
            }
        }
        // On PostgreSQL round trips cost most: a few hundred rows per statement.
        AnyConnection::Postgres(c) => {
            for chunk in new_rows.chunks(ROWS_PER_STATEMENT) {
                let values: Vec<NewEventRow> = chunk.iter().map(|r| (*r).clone()).collect();
                let ids: HashMap<String, i64> = diesel::insert_into(events::table)
                    .values(&values)
                    .returning((events::event_uuid, events::id))
                    .get_results::<(String, i64)>(c)?
                    .into_iter()
                    .collect();
                for row in chunk {
                    let id = ids.get(&row.event_uuid).copied().ok_or_else(|| {
                        DbError::Config(format!("no id came back for event {}", row.event_uuid))
                    })?;
                    positioned.push((id, row.leaf_hash.clone()));
                }
            }
        }
    }
    count_dimensions(conn, &new_rows)?;
    // Last: on PostgreSQL this takes the lock that orders the commits.
    super::log::append(conn, &positioned)?;
    Ok(outcome)
}

diesel::define_sql_function! {
    /// SQLite's id of the row the connection inserted last.
    fn last_insert_rowid() -> diesel::sql_types::BigInt;
}

fn existing_hashes(
    conn: &mut DbConn,
    rows: &[NewEventRow],
) -> Result<HashMap<String, String>, DbError> {
    let mut found = HashMap::new();
    let ids: Vec<&str> = rows.iter().map(|r| r.event_uuid.as_str()).collect();
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        let pairs: Vec<(String, String)> = events::table
            .filter(events::event_uuid.eq_any(chunk))
            .select((events::event_uuid, events::content_hash))
            .load(conn.backend())?;
        found.extend(pairs);
    }
    Ok(found)
}

/// Adds the batch's counts to the dropdown tables, one upsert per table.
fn count_dimensions(conn: &mut DbConn, rows: &[&NewEventRow]) -> Result<(), DbError> {
    let mut actor_counts: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
    let mut type_counts: BTreeMap<&str, i64> = BTreeMap::new();
    let mut target_counts: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        let entry = actor_counts
            .entry(&row.actor_username)
            .or_insert((&row.actor_email, 0));
        entry.0 = &row.actor_email; // the latest email seen wins
        entry.1 += 1;
        *type_counts.entry(&row.resource_type).or_default() += 1;
        if !row.resource_target.is_empty() {
            *target_counts.entry(&row.resource_target).or_default() += 1;
        }
    }
    let actor_rows: Vec<_> = actor_counts
        .into_iter()
        .map(|(username, (email, n))| {
            (
                actors::username.eq(username),
                actors::email.eq(email),
                actors::event_count.eq(n),
            )
        })
        .collect();
    for chunk in actor_rows.chunks(ROWS_PER_STATEMENT) {
        with_backend!(conn, c => diesel::insert_into(actors::table)
            .values(chunk)
            .on_conflict(actors::username)
            .do_update()
            .set((
                actors::email.eq(excluded(actors::email)),
                actors::event_count.eq(actors::event_count + excluded(actors::event_count)),
            ))
            .execute(c))?;
    }
    let type_rows: Vec<_> = type_counts
        .into_iter()
        .map(|(name, n)| {
            (
                resource_types::name.eq(name),
                resource_types::event_count.eq(n),
            )
        })
        .collect();
    for chunk in type_rows.chunks(ROWS_PER_STATEMENT) {
        with_backend!(conn, c => diesel::insert_into(resource_types::table)
            .values(chunk)
            .on_conflict(resource_types::name)
            .do_update()
            .set(resource_types::event_count.eq(resource_types::event_count + excluded(resource_types::event_count)))
            .execute(c))?;
    }
    let target_rows: Vec<_> = target_counts
        .into_iter()
        .map(|(name, n)| {
            (
                resource_targets::name.eq(name),
                resource_targets::event_count.eq(n),
            )
        })
        .collect();
    for chunk in target_rows.chunks(ROWS_PER_STATEMENT) {
        with_backend!(conn, c => diesel::insert_into(resource_targets::table)
            .values(chunk)
            .on_conflict(resource_targets::name)
            .do_update()
            .set(resource_targets::event_count.eq(resource_targets::event_count + excluded(resource_targets::event_count)))
            .execute(c))?;
    }
    Ok(())
}

/// The event stored under `event_uuid`, if any.
pub fn find_by_uuid(conn: &mut DbConn, event_uuid: &str) -> Result<Option<EventRow>, DbError> {
    Ok(events::table
        .filter(events::event_uuid.eq(event_uuid))
        .select(EventRow::as_select())
        .first(conn.backend())
        .optional()?)
}

/// Up to `limit` events stored before free text was indexed (their
/// `search_doc` is NULL), after the id `after`, by id (from the partial index
/// `events_unsearched`, which is empty once they are filled in).
pub fn unsearched(conn: &mut DbConn, after: i64, limit: i64) -> Result<Vec<EventRow>, DbError> {
    Ok(events::table
        .filter(events::search_doc.is_null())
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn.backend())?)
}

/// Sets the search text of stored events that have none yet, in one
/// transaction (on SQLite the index's thread adds it to the index). An event
/// another instance filled in meanwhile is left as it is (the database
/// refuses to change a search text once set).
pub fn set_search_docs(conn: &mut DbConn, docs: &[(i64, String)]) -> Result<(), DbError> {
    write_transaction(conn, |conn| {
        for (id, doc) in docs {
            diesel::update(
                events::table
                    .filter(events::id.eq(id))
                    .filter(events::search_doc.is_null()),
            )
            .set(events::search_doc.eq(doc))
            .execute(conn.backend())?;
        }
        Ok(())
    })
}

/// The events table's secondary indexes, exactly as the migrations create them
/// (the unique index on the event id is not among them: the write path needs it).
/// A bulk load into an empty table drops them and builds them afterwards, which
/// is several times faster than keeping nine indexes current row by row.
const SECONDARY_INDEXES: &[(&str, &str)] = &[
    ("events_time", "(time, id)"),
    ("events_actor_time", "(actor_username, time, id)"),
    ("events_action_time", "(action, time, id)"),
    ("events_resource_type_time", "(resource_type, time, id)"),
    ("events_resource_target_time", "(resource_target, time, id)"),
    ("events_resource_id_time", "(resource_id, time, id)"),
    ("events_request_id_time", "(request_id, time, id)"),
    (
        "events_actor_action_time",
        "(actor_username, action, time, id)",
    ),
    (
        "events_failures_time",
        "(time, id) WHERE status_code >= 400",
    ),
    ("events_unsearched", "(id) WHERE search_doc IS NULL"),
];

/// PostgreSQL's trigram index of the search text (SQLite's is the FTS5 table
/// `events_text` in a file of its own, see [`super::text_index`]).
const POSTGRES_INDEXES: &[(&str, &str)] =
    &[("events_search_doc", "USING gin (search_doc gin_trgm_ops)")];

/// The secondary indexes of this connection's backend.
fn secondary_indexes(
    conn: &mut DbConn,
) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    let more = match conn.backend() {
        AnyConnection::Postgres(_) => POSTGRES_INDEXES,
        AnyConnection::Sqlite(_) => &[],
    };
    SECONDARY_INDEXES.iter().chain(more)
}

/// Whether no event is stored at all.
pub fn is_empty(conn: &mut DbConn) -> Result<bool, DbError> {
    let any: Option<i64> = events::table
        .select(events::id)
        .first(conn.backend())
        .optional()?;
    Ok(any.is_none())
}

/// The names of the secondary indexes that a bulk load drops and rebuilds;
/// they must be every index the migrations create on events but the unique
/// one on `event_uuid` (a test checks it on both backends).
pub fn secondary_index_names(conn: &mut DbConn) -> Vec<&'static str> {
    secondary_indexes(conn).map(|(name, _)| *name).collect()
}

/// Drops the secondary indexes before a bulk load (see [`SECONDARY_INDEXES`]).
/// SQLite's free-text index is not among them: it is written behind the log
/// ([`super::text_index`]), and fills after the load.
pub fn drop_secondary_indexes(conn: &mut DbConn) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    let sql: String = secondary_indexes(conn)
        .map(|(name, _)| format!("DROP INDEX IF EXISTS {name};"))
        .collect();
    conn.batch_execute(&sql)?;
    Ok(())
}

/// Creates whichever secondary indexes are missing: after a bulk load, and
/// on every start (a no-op normally; it repairs an import that was killed
/// midway).
pub fn ensure_secondary_indexes(conn: &mut DbConn) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    // Only what is missing: even `CREATE INDEX IF NOT EXISTS` takes a lock on the
    // table on PostgreSQL, which would stall every instance's writes at each start.
    let present = index_names(conn)?;
    let sql: String = secondary_indexes(conn)
        .filter(|(name, _)| !present.iter().any(|p| p == name))
        .map(|(name, columns)| format!("CREATE INDEX IF NOT EXISTS {name} ON events {columns};"))
        .collect();
    if !sql.is_empty() {
        conn.batch_execute(&sql)?;
    }
    Ok(())
}

/// The names of the events table's indexes, as the database lists them.
pub fn index_names(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let names: Vec<Name> = match conn.backend() {
        AnyConnection::Sqlite(c) => diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND name NOT LIKE 'sqlite_%'",
        )
        .load(c)?,
        AnyConnection::Postgres(c) => diesel::sql_query(
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'events' AND indexname <> 'events_pkey'",
        )
        .load(c)?,
    };
    let mut names: Vec<String> = names.into_iter().map(|n| n.name).collect();
    names.sort();
    Ok(names)
}

/// How many events are stored (tests and small tables only: this is a full count).
pub fn count_all(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(events::table.count().get_result(conn.backend())?)
}

/// A value of a dropdown table and how many events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionValue {
    pub name: String,
    pub event_count: i64,
}

/// Actors with their event counts, most active first.
pub fn top_actors(conn: &mut DbConn, limit: i64) -> Result<Vec<(String, String, i64)>, DbError> {
    Ok(actors::table
        .order((actors::event_count.desc(), actors::username.asc()))
        .limit(limit)
        .select((actors::username, actors::email, actors::event_count))
        .load(conn.backend())?)
}

/// Resource types with their event counts, by name.
pub fn resource_types(conn: &mut DbConn) -> Result<Vec<DimensionValue>, DbError> {
    let rows: Vec<(String, i64)> = resource_types::table
        .order(resource_types::name.asc())
        .select((resource_types::name, resource_types::event_count))
        .load(conn.backend())?;
    Ok(rows
        .into_iter()
        .map(|(name, event_count)| DimensionValue { name, event_count })
        .collect())
}

/// The most used resource targets, most used first.
pub fn top_resource_targets(conn: &mut DbConn, limit: i64) -> Result<Vec<DimensionValue>, DbError> {
    let rows: Vec<(String, i64)> = resource_targets::table
        .order((
            resource_targets::event_count.desc(),
            resource_targets::name.asc(),
        ))
        .limit(limit)
        .select((resource_targets::name, resource_targets::event_count))
        .load(conn.backend())?;
    Ok(rows
        .into_iter()
        .map(|(name, event_count)| DimensionValue { name, event_count })
        .collect())
}

/// A mark that changes whenever an event is added, exactly: two equal marks
/// mean that no event was added in between.
/// - SQLite: the highest event id. There is one writer at a time, so ids are
///   taken in commit order and every later commit has a higher id.
/// - PostgreSQL: the current snapshot (which transactions have committed,
///   `txid_current_snapshot()`): the highest id would not do, as a transaction
///   holding a lower id may commit after one holding a higher id. Any write
///   anywhere changes it, so it is exact but changes more often than needed.
pub fn append_mark(conn: &mut DbConn) -> Result<String, DbError> {
    match conn.backend() {
        AnyConnection::Sqlite(c) => Ok(events::table
            .select(diesel::dsl::max(events::id))
            .first::<Option<i64>>(c)?
            .unwrap_or(0)
            .to_string()),
        AnyConnection::Postgres(c) => Ok(diesel::select(
            diesel::dsl::sql::<diesel::sql_types::Text>("txid_current_snapshot()::text"),
        )
        .get_result(c)?),
    }
}

/// Which dropdown table [`matching_values`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// `actors.username`
    User,
    /// `resource_targets.name`
    ResourceTarget,
}

/// Up to `limit` values of a dropdown table that contain `part` (ignoring the
/// case of ASCII letters on SQLite, of all letters on PostgreSQL; `%` and `_`
/// match themselves), most used first. Reads the small dropdown table, never
/// the events.
pub fn matching_values(
    conn: &mut DbConn,
    dimension: Dimension,
    part: &str,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    let pattern = like_pattern(part);
    Ok(match dimension {
        Dimension::User => actors::table
            .filter(lower(actors::username).like(&pattern).escape('\\'))
            .order((actors::event_count.desc(), actors::username.asc()))
            .limit(limit)
            .select(actors::username)
            .load(conn.backend())?,
        Dimension::ResourceTarget => resource_targets::table
            .filter(lower(resource_targets::name).like(&pattern).escape('\\'))
            .order((
                resource_targets::event_count.desc(),
                resource_targets::name.asc(),
            ))
            .limit(limit)
            .select(resource_targets::name)
            .load(conn.backend())?,
    })
}

/// `%text%` in lowercase, with LIKE's wildcards in the text escaped by `\`;
/// compared with `lower(column)`, it finds the text anywhere, ignoring case.
fn like_pattern(text: &str) -> String {
    like_escaped(&text.to_lowercase())
}

/// The newest events, newest first.
pub fn latest(conn: &mut DbConn, limit: i64) -> Result<Vec<EventRow>, DbError> {
    Ok(events::table
        .order((events::time.desc(), events::id.desc()))
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn.backend())?)
}

/// Which values of a text column an event may have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    /// `Some`: one of these (empty: none can match); `None`: any value.
    pub one_of: Option<Vec<String>>,
    /// None of these.
    pub none_of: Vec<String>,
}

impl Values {
    /// Exactly `value`, or any value when `None`.
    pub fn exactly(value: Option<String>) -> Self {
        Self {
            one_of: value.map(|v| vec![v]),
            none_of: Vec::new(),
        }
    }
}

/// Which events a page or an export reads, in the database's terms.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    pub resource_type: Values,
    pub action: Values,
    pub resource_target: Values,
    pub actor_username: Values,
    pub resource_id: Values,
    pub request_id: Values,
    /// `Some(true)`: status 400 and above; `Some(false)`: below 400.
    pub failed: Option<bool>,
    /// Inclusive.
    pub from: Option<NaiveDateTime>,
    /// Exclusive.
    pub to: Option<NaiveDateTime>,
    /// Free-text terms, already case-folded (`audit::free_text::fold`): each
    /// must be found in the event's `search_doc`.
    pub text: Vec<String>,
    /// Free-text terms, folded, none of which may be found.
    pub text_absent: Vec<String>,
    /// The criteria contradict each other (`status:success status:failure`
    /// with neither left): no event can match.
    pub contradictory: bool,
}

impl Criteria {
    /// Whether no event can match, without asking the database.
    fn matches_nothing(&self) -> bool {
        let columns = [
            &self.resource_type,
            &self.action,
            &self.resource_target,
            &self.actor_username,
            &self.resource_id,
            &self.request_id,
        ];
        self.contradictory
            || columns
                .iter()
                .any(|v| v.one_of.as_ref().is_some_and(Vec::is_empty))
            || matches!((self.from, self.to), (Some(f), Some(t)) if t <= f)
    }
}

/// A keyset position: rows strictly older (or newer) than this (time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub time: NaiveDateTime,
    pub id: i64,
    /// `true`: rows newer than the position; `false`: older.
    pub newer: bool,
}

diesel::define_sql_function! {
    /// SQL `lower()`, for the suggestions' look through the dropdown tables.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Narrows a boxed query to the values a column may have: `=` for one
/// value (so the planner uses the column's (…, time, id) index as for a
/// dropdown's filter), `IN` for several, `NOT IN` for the excluded.
macro_rules! values_filter {
    ($q:ident, $column:expr, $values:expr) => {{
        let v: &Values = &$values;
        match v.one_of.as_deref() {
            Some([one]) => $q = $q.filter($column.eq(one.clone())),
            Some(many) => $q = $q.filter($column.eq_any(many.to_vec())),
            None => {}
        }
        if !v.none_of.is_empty() {
            $q = $q.filter(diesel::dsl::not($column.eq_any(v.none_of.clone())));
        }
    }};
}

/// The events table, boxed, with every criterion applied: one query shape for
/// every combination of filters (a boxed query compiles once).
macro_rules! filtered_events {
    ($criteria:expr, $plan:expr, $sql:expr) => {{
        let c: &Criteria = $criteria;
        let mut q = events::table.into_boxed();
        values_filter!(q, events::resource_type, c.resource_type);
        values_filter!(q, events::action, c.action);
        values_filter!(q, events::resource_target, c.resource_target);
        values_filter!(q, events::actor_username, c.actor_username);
        values_filter!(q, events::resource_id, c.resource_id);
        values_filter!(q, events::request_id, c.request_id);
        match c.failed {
            // A literal, not a bound 400, so the planner can match the partial
            // index `events_failures_time` (its WHERE is the same text).
            Some(true) => {
                q = q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "status_code >= 400",
                ))
            }
            Some(false) => q = q.filter(events::status_code.lt(400)),
            None => {}
        }
        if let Some(t) = c.from {
            q = q.filter(events::time.ge(t));
        }
        if let Some(t) = c.to {
            q = q.filter(events::time.lt(t));
        }
        let plan: &TextPlan = &$plan;
        if let Some((candidates, reading)) = &plan.indexed {
            // `+` keeps the walk on the time index: the ids are only tested
            // against the candidates' set, never looked up from it.
            let test = match reading {
                Reading::Candidates => "events.id IN (",
                Reading::Walk => "+events.id IN (",
            };
            let test = diesel::dsl::sql::<diesel::sql_types::Bool>(test);
            // The events the index lacks yet join the candidates (the SQL is
            // the same as before the index was written behind once it has
            // caught up).
            use diesel::sql_types::{BigInt, Text};
            q = match (candidates, &plan.unindexed_after) {
                (Candidates::Trigrams(query), None) => q.filter(
                    test.sql(TRIGRAM_CANDIDATES[0])
                        .bind::<Text, _>(query.clone())
                        .sql(")"),
                ),
                (Candidates::Trigrams(query), Some((after, term))) => q.filter(
                    test.sql(TRIGRAM_CANDIDATES[0])
                        .bind::<Text, _>(query.clone())
                        .sql(UNINDEXED_CANDIDATES[0])
                        .bind::<BigInt, _>(*after)
                        .sql(UNINDEXED_CANDIDATES[1])
                        .bind::<Text, _>(term.clone())
                        .sql(UNINDEXED_CANDIDATES[2]),
                ),
                (Candidates::Pair(from, to), None) => q.filter(
                    test.sql(PAIR_CANDIDATES[0])
                        .bind::<Text, _>(from.clone())
                        .sql(PAIR_CANDIDATES[1])
                        .bind::<Text, _>(to.clone())
                        .sql(")"),
                ),
                (Candidates::Pair(from, to), Some((after, term))) => q.filter(
                    test.sql(PAIR_CANDIDATES[0])
                        .bind::<Text, _>(from.clone())
                        .sql(PAIR_CANDIDATES[1])
                        .bind::<Text, _>(to.clone())
                        .sql(UNINDEXED_CANDIDATES[0])
                        .bind::<BigInt, _>(*after)
                        .sql(UNINDEXED_CANDIDATES[1])
                        .bind::<Text, _>(term.clone())
                        .sql(UNINDEXED_CANDIDATES[2]),
                ),
            };
        }
        let (contains, lacks) = $sql;
        for (terms, sql) in [(&plan.contains, contains), (&plan.lacks, lacks)] {
            for term in terms {
                q = q.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>(sql.0)
                        .bind::<diesel::sql_types::Text, _>(term.clone())
                        .sql(sql.1),
                );
            }
        }
        q
    }};
}

/// The events with these ids (a page's, chosen by their time and id alone),
/// read whole and in the order of `$ids`, on either backend's connection.
macro_rules! rows_in_order {
    ($c:expr, $ids:expr) => {{
        let ids: &[i64] = &$ids;
        let mut rows: Vec<EventRow> = events::table
            .filter(events::id.eq_any(ids))
            .select(EventRow::as_select())
            .load($c)?;
        rows.sort_by_key(|r| ids.iter().position(|&id| id == r.id));
        rows
    }};
}

/// How a query finds its free-text terms (CONTRACT.md, "Free text").
///
/// On SQLite a term is looked up in the FTS5 trigram index `events_text`
/// first. Each of its trigrams (for a term of two characters: every trigram
/// that starts with it, through `events_text_vocab`) is counted in the index
/// alone, reading no event, and the rarest one names the term's candidates:
/// every event holding the term is among them, and each is tested with
/// `instr`. The rarest term's candidates are then read in one of three ways,
/// whichever [`Cost`] says is cheapest for their number `n`, the rows wanted
/// and the events stored:
/// - [`Reading::Candidates`]: each candidate is read, and the matches sorted
///   by time: a rare term is an index lookup, whatever the table's size;
/// - [`Reading::Walk`]: the (…, time, id) index is walked newest first, and
///   only the entries whose id is a candidate are read (the candidates are
///   gathered once into a set; the index entry holds the id, so no other
///   row is read): a term in one event in a few hundred;
/// - neither: a common term is tested with `instr` on every event of the
///   walk, which soon finds a page.
///
/// When each trigram alone is common, the term's candidates are the events
/// with all of its trigrams (counted by the index too, which costs more). A
/// term of one character is tested on the walk (or on another term's
/// candidates). On PostgreSQL every term is a `LIKE` that the GIN index
/// `events_search_doc` can answer, and its planner chooses between that
/// index and the walk from its statistics.
struct TextPlan {
    /// The rarest term's candidates, if the index is worth reading.
    indexed: Option<(Candidates, Reading)>,
    /// An FTS5 query of the rarest term's candidates (of any number), to be
    /// read newest first before the plan's reading (see [`newest_candidates`]),
    /// giving up after as many as that reading would cost; how many to read
    /// first; and, when they are few, their ids ([`few_candidates`]).
    newest_first: Option<(String, i64, i64, Option<Ids>)>,
    /// Each event's `search_doc` must hold these: in SQLite's `instr`, the
    /// folded terms; in PostgreSQL's `LIKE`, their patterns.
    contains: Vec<String>,
    /// Nor hold any of these (folded).
    lacks: Vec<String>,
    /// The index shows that no event can match.
    none: bool,
    /// The events after this id are not in the index yet (see
    /// [`super::text_index`]): those of them holding this term (the rarest
    /// term's, tested with `instr`) join its candidates.
    unindexed_after: Option<(i64, String)>,
}

/// Where a term's candidates are found in SQLite's free-text index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Candidates {
    /// The events matching an FTS5 query of quoted trigrams (see [`fts_token`]).
    Trigrams(String),
    /// The events with a trigram from the first string (inclusive) to the
    /// second (exclusive): those starting with a pair of characters.
    Pair(String, String),
}

/// The SQL of [`Candidates::Trigrams`] before its bound query.
const TRIGRAM_CANDIDATES: [&str; 1] = ["SELECT rowid FROM events_text WHERE events_text MATCH "];
/// Added to a term's candidates, around the bound id of the last event the
/// index holds and the bound term: the events after it that hold the term
/// (each tested once, as the candidates' set is gathered).
const UNINDEXED_CANDIDATES: [&str; 3] = [
    " UNION ALL SELECT tail.id FROM events AS tail WHERE tail.id > ",
    " AND instr(tail.search_doc, ",
    ") > 0)",
];
/// How many of the events after `id` hold the term, counting no further than
/// the limit (each tested with `instr`).
const UNINDEXED_MATCHES: &str = "SELECT count(*) AS n FROM (SELECT 1 FROM events \
     WHERE id > ? AND instr(search_doc, ?) > 0 LIMIT ?) AS matches";
/// The SQL of [`Candidates::Pair`] before each of its bound trigrams.
const PAIR_CANDIDATES: [&str; 2] = [
    "SELECT doc FROM events_text_vocab WHERE term >= ",
    " AND term < ",
];

impl Candidates {
    /// How many there are, counting no further than `limit`: from the index
    /// alone, reading no event, unless `counts` knows already.
    fn count_at_most(
        &self,
        c: &mut diesel::SqliteConnection,
        counts: &mut IndexCounts<'_>,
        limit: i64,
    ) -> Result<i64, DbError> {
        if let Some(n) = counts.known(self, limit) {
            return Ok(n);
        }
        let n = self.count(c, limit)?;
        counts.note(self, n, limit);
        Ok(n)
    }

    /// How many there are, counting no further than `limit`: from the index
    /// alone, reading no event. A pair counts an event once per trigram.
    fn count(&self, c: &mut diesel::SqliteConnection, limit: i64) -> Result<i64, DbError> {
        use diesel::sql_types::{BigInt, Text};
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let count =
            |sql: String| format!("SELECT count(*) AS n FROM ({sql}? LIMIT ?) AS candidates");
        let found = match self {
            Candidates::Trigrams(query) => diesel::sql_query(count(TRIGRAM_CANDIDATES.join("?")))
                .bind::<Text, _>(query)
                .bind::<BigInt, _>(limit)
                .get_result::<Count>(c)?,
            Candidates::Pair(from, to) => diesel::sql_query(count(PAIR_CANDIDATES.join("?")))
                .bind::<Text, _>(from)
                .bind::<Text, _>(to)
                .bind::<BigInt, _>(limit)
                .get_result::<Count>(c)?,
        };
        Ok(found.n)
    }
}

/// What the index has counted of candidates (a trigram, a pair, all of a
/// term's trigrams), kept for as long as the process runs:
/// - those counted up to the limit asked, and that limit: a lower bound that
///   stays true, since the log only grows (an UPDATE may only fill in a
///   missing search text). Counting a common trigram's events took longer
///   than reading the page it picks (2 × 16,000 entries, some 2.5 ms, for
///   `q=docs` on 1M events);
/// - those fewer than the limit, exactly, with the index's mark (the last
///   event it held, [`super::text_index`]) when they were counted: the index
///   holds every event up to its mark and no other, so the count holds while
///   the mark is the same. Counting a rare target's trigrams (10,345
///   entries of `"500"` before its two rarest, 5) took 1.3 ms of the 2.6 ms
///   its page cost; the capped count and the page plan the same terms.
///
/// A kept entry can make a plan skip counting, never decide that none or few
/// events match when more do: a count taken while the index grew is too
/// high for the mark read before it, never too low, and one taken across a
/// change of index (emptied, made again) is not kept (see [`IndexCounts`]).
#[derive(Debug, Default)]
pub(super) struct CommonTerms(std::sync::Mutex<KnownCounts>);

#[derive(Debug, Default)]
pub(super) struct KnownCounts {
    /// At least this many.
    common: HashMap<Candidates, i64>,
    /// Exactly this many while the index's mark is the second.
    exact: HashMap<Candidates, (i64, i64)>,
    /// The ids of an FTS5 query's few candidates, newest first, while the
    /// index's mark is the first (see [`few_candidates`]).
    ids: HashMap<String, (i64, Ids)>,
}

/// A query's candidates' ids, newest first, shared with the memory that keeps them.
type Ids = std::sync::Arc<Vec<i64>>;

/// At most this many candidates' ids are kept for one query, and at most
/// this many queries' (4 MiB at most, then forgotten all at once).
const IDS_KEPT: usize = 512;
const ID_LISTS_KEPT: usize = 1024;

/// The ids of an FTS5 query's candidates, newest first, when there are few
/// (at most [`IDS_KEPT`]; `None` when more): kept while the index's mark is `mark`, like the
/// counts. Fetching them reads the doclists of the query's trigrams each
/// time (10M events: a rare target's two trigrams, one of them common, 3 ms
/// for its 34 candidates; 35 ms a page under load, 5 ms when kept).
fn few_candidates(
    c: &mut diesel::SqliteConnection,
    memory: &CommonTerms,
    mark: i64,
    query: &str,
) -> Result<Option<Ids>, DbError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    if let Some((m, ids)) = memory.known().ids.get(query)
        && *m == mark
    {
        return Ok(Some(ids.clone()));
    }
    let ids: Vec<i64> = diesel::sql_query(
        "SELECT rowid AS id FROM events_text WHERE events_text MATCH ? ORDER BY rowid DESC LIMIT ?",
    )
    .bind::<diesel::sql_types::Text, _>(query)
    .bind::<diesel::sql_types::BigInt, _>(IDS_KEPT as i64 + 1)
    .load::<Id>(c)?
    .into_iter()
    .map(|r| r.id)
    .collect();
    if ids.len() > IDS_KEPT {
        return Ok(None);
    }
    let ids = std::sync::Arc::new(ids);
    // Kept only if the index did not move while they were read.
    if super::text_index::indexed_through_sqlite(c)? == mark {
        let mut known = memory.known();
        if known.ids.len() >= ID_LISTS_KEPT && !known.ids.contains_key(query) {
            known.ids.clear();
        }
        known.ids.insert(query.to_owned(), (mark, ids.clone()));
    }
    Ok(Some(ids))
}

/// At most this many counts of each kind are remembered (then forgotten all at once).
const COMMON_TERMS_KEPT: usize = 4096;

impl CommonTerms {
    fn known(&self) -> std::sync::MutexGuard<'_, KnownCounts> {
        // A count is written whole or not at all: a panic breaks no invariant.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One plan's use of the counts: what it knows, and what it counted, kept
/// once the plan is made if the index's mark did not move meanwhile.
struct IndexCounts<'a> {
    memory: &'a CommonTerms,
    /// The index's mark when the plan began.
    mark: i64,
    /// Counted below their limit by this plan.
    fresh: Vec<(Candidates, i64)>,
}

impl<'a> IndexCounts<'a> {
    fn new(memory: &'a CommonTerms, mark: i64) -> Self {
        Self {
            memory,
            mark,
            fresh: Vec::new(),
        }
    }

    /// How many `candidates` there are, no further than `limit`, if known.
    fn known(&self, candidates: &Candidates, limit: i64) -> Option<i64> {
        let known = self.memory.known();
        if known.common.get(candidates).is_some_and(|&k| k >= limit) {
            return Some(limit);
        }
        match known.exact.get(candidates) {
            Some(&(n, mark)) if mark == self.mark => Some(n.min(limit)),
            _ => None,
        }
    }

    fn note(&mut self, candidates: &Candidates, n: i64, limit: i64) {
        if n < limit {
            self.fresh.push((candidates.clone(), n));
            return;
        }
        let mut known = self.memory.known();
        if known.common.len() >= COMMON_TERMS_KEPT && !known.common.contains_key(candidates) {
            known.common.clear();
        }
        let k = known.common.entry(candidates.clone()).or_insert(n);
        *k = (*k).max(n);
    }

    /// Keeps the exact counts if the index's mark is still the one read
    /// before they were taken.
    fn keep(self, c: &mut diesel::SqliteConnection) -> Result<(), DbError> {
        if self.fresh.is_empty() || super::text_index::indexed_through_sqlite(c)? != self.mark {
            return Ok(());
        }
        let mut known = self.memory.known();
        for (candidates, n) in self.fresh {
            if known.exact.len() >= COMMON_TERMS_KEPT && !known.exact.contains_key(&candidates) {
                known.exact.clear();
            }
            known.exact.insert(candidates, (n, self.mark));
        }
        Ok(())
    }
}

/// How the rarest term's candidates are read (see [`TextPlan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Each candidate, then sorted by time.
    Candidates,
    /// The time index, newest first, reading only candidates.
    Walk,
}

/// What a page or a count costs on SQLite, in microseconds, for a term whose
/// candidates number `n` when `want` rows are wanted from `stored` events.
/// Measured on 1M generated events (2 cores, 2 MiB page cache, the file in
/// the operating system's cache): a candidate read by its id 5.5 µs (each is
/// on a page of its own); a candidate gathered into the walk's set 0.36 µs;
/// an index entry walked and its id looked up in that set 0.3 µs; an event
/// walked and tested with `instr` 2.1 µs (neighbours share pages).
struct Cost {
    n: f64,
    want: f64,
    stored: f64,
}

impl Cost {
    /// Events walked to find `want` of a term in `n` of `stored`.
    fn walked(&self) -> f64 {
        if self.n <= self.want {
            self.stored
        } else {
            (self.want * self.stored / self.n).min(self.stored)
        }
    }

    /// A candidate read by its id.
    const CANDIDATE: f64 = 5.5;

    fn reading_candidates(&self) -> f64 {
        Self::CANDIDATE * self.n
    }

    fn walking_candidates(&self) -> f64 {
        0.36 * self.n + 0.3 * self.walked() + Self::CANDIDATE * self.want.min(self.n)
    }

    fn walking_everything(&self) -> f64 {
        2.1 * self.walked()
    }

    /// The cheapest way to read the candidates, `None` when walking every
    /// event is.
    fn best(&self) -> Option<Reading> {
        let (candidates, walk) = (self.reading_candidates(), self.walking_candidates());
        if self.walking_everything() < candidates.min(walk) {
            None
        } else if candidates <= walk {
            Some(Reading::Candidates)
        } else {
            Some(Reading::Walk)
        }
    }

    /// Past how many candidates walking every event is cheapest: counting
    /// further in the index is not worth it. At 0.36·n = 1.8·want·stored/n.
    fn enough(want: i64, stored: i64) -> i64 {
        let n = (5.0 * want as f64 * stored as f64).sqrt() as i64;
        n.clamp(1000.min(stored.max(1)), stored.max(1))
    }
}

impl TextPlan {
    /// A plan that reads no index: each event's text is tested.
    fn tested(conn: &mut DbConn, criteria: &Criteria) -> Self {
        let contains = match conn.backend() {
            AnyConnection::Postgres(_) => criteria.text.iter().map(|t| like_escaped(t)).collect(),
            AnyConnection::Sqlite(_) => criteria.text.clone(),
        };
        TextPlan {
            indexed: None,
            newest_first: None,
            contains,
            lacks: criteria.text_absent.clone(),
            none: false,
            unindexed_after: None,
        }
    }

    /// The plan for `criteria`'s terms, for a query that wants `want` rows.
    fn new(conn: &mut DbConn, criteria: &Criteria, want: i64) -> Result<Self, DbError> {
        let mut plan = Self::tested(conn, criteria);
        if matches!(conn.backend(), AnyConnection::Postgres(_)) {
            return Ok(plan);
        }
        if criteria.text.is_empty() {
            return Ok(plan);
        }
        let database = conn.database().clone();
        let AnyConnection::Sqlite(c) = conn.backend() else {
            return Ok(plan);
        };
        let stored: i64 = events::table
            .select(diesel::dsl::max(events::id))
            .first::<Option<i64>>(c)?
            .unwrap_or(0);
        let enough = Cost::enough(want, stored);
        // The events after the index's last are the candidates of each term
        // that hold it: while they are fewer than `enough`, all of them are
        // counted as such; when more (the index is catching up with a large
        // load), the rarest term is tested on each of them, so that a rare
        // term is still looked up in the index, not tested on every event.
        let mark = super::text_index::indexed_through_sqlite(c)?;
        let mut counts = IndexCounts::new(&database.0.common_terms, mark);
        let indexed = mark.min(stored);
        let unindexed = stored - indexed;
        let few_unindexed = unindexed < enough;
        let limit = if few_unindexed {
            enough - unindexed
        } else {
            enough
        };
        let mut rarest: Option<(i64, Candidates, &String)> = None;
        for term in &criteria.text {
            let found = term_candidates(c, &mut counts, term, limit)?;
            match found
                .map(|(n, candidates)| (n + if few_unindexed { unindexed } else { 0 }, candidates))
            {
                Some((0, _)) if unindexed == 0 => {
                    plan.none = true;
                    counts.keep(c)?;
                    return Ok(plan);
                }
                Some((n, candidates)) if rarest.as_ref().is_none_or(|(r, ..)| n < *r) => {
                    rarest = Some((n, candidates, term));
                }
                _ => {}
            }
        }
        counts.keep(c)?;
        let Some((mut n, candidates, term)) = rarest else {
            return Ok(plan);
        };
        if !few_unindexed && n < enough {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            n += diesel::sql_query(UNINDEXED_MATCHES)
                .bind::<diesel::sql_types::BigInt, _>(indexed)
                .bind::<diesel::sql_types::Text, _>(term)
                .bind::<diesel::sql_types::BigInt, _>(enough - n)
                .get_result::<Count>(c)?
                .n;
            if n == 0 {
                plan.none = true;
                return Ok(plan);
            }
        }
        if unindexed > 0 {
            plan.unindexed_after = Some((indexed, term.clone()));
        }
        let cost = Cost {
            n: n as f64,
            want: want as f64,
            stored: stored as f64,
        };
        let reading = if n < enough { cost.best() } else { None };
        // What the plan's reading costs, in candidates read newest first.
        let budget = match reading {
            Some(Reading::Candidates) => i64::MAX,
            Some(Reading::Walk) => (cost.walking_candidates() / Cost::CANDIDATE) as i64,
            None => (cost.walking_everything() / Cost::CANDIDATE) as i64,
        };
        // Few enough candidates are read in one chunk (one more than counted,
        // so that a short chunk says it was the last): chunks cost a query each.
        // Otherwise a page's worth and a quarter: most candidates hold the
        // term, and each one read is a page of the file read; the next chunks
        // follow the rate at which these held matches (`newest_candidates`).
        let first = if n < enough && n <= 8 * want {
            n + 1
        } else {
            want + want / 4 + 1
        };
        if let Candidates::Trigrams(query) = &candidates {
            let ids = if n <= IDS_KEPT as i64 && reading == Some(Reading::Candidates) {
                few_candidates(c, &database.0.common_terms, mark, query)?
            } else {
                None
            };
            plan.newest_first = Some((query.clone(), budget, first, ids));
        }
        tracing::debug!(candidates = n, ?reading, budget, first, "free-text plan");
        plan.indexed = reading.map(|r| (candidates, r));
        Ok(plan)
    }
}

/// A term's fewest candidates in the index, and how many there are (0: no
/// event holds the term; `enough`: at least that many, a common term);
/// `None` for a term the index cannot narrow (one character).
fn term_candidates(
    c: &mut diesel::SqliteConnection,
    counts: &mut IndexCounts<'_>,
    term: &str,
    enough: i64,
) -> Result<Option<(i64, Candidates)>, DbError> {
    let chars: Vec<char> = term.chars().collect();
    let options: Vec<Candidates> = match chars.len() {
        0 | 1 => return Ok(None),
        2 => {
            let (first, second) = (as_tokenized(chars[0]), as_tokenized(chars[1]));
            match next_char(second) {
                Some(next) => vec![Candidates::Pair(
                    [first, second].iter().collect(),
                    [first, next].iter().collect(),
                )],
                None => return Ok(None),
            }
        }
        _ => covering_trigrams(&chars)
            .into_iter()
            .map(|t| Candidates::Trigrams(fts_token(t)))
            .collect(),
    };
    // The two rarest trigrams: each next one is counted no further than the
    // second rarest so far.
    let mut rarest: Option<(i64, Candidates)> = None;
    let mut second: Option<(i64, Candidates)> = None;
    for candidates in &options {
        let limit = second.as_ref().map_or(enough, |(n, _)| *n);
        let n = candidates.count_at_most(c, counts, limit)?;
        if n >= limit {
            continue;
        }
        if rarest.as_ref().is_none_or(|(r, _)| n < *r) {
            second = rarest.replace((n, candidates.clone()));
        } else {
            second = Some((n, candidates.clone()));
        }
        if n == 0 {
            break;
        }
    }
    // The rarest trigram with another: the events with both are often far
    // fewer than either's (a rare target among 10M events: its rarest
    // trigram's 3,000 candidates read one by one took 120 ms). The second
    // rarest, or, when every other trigram is common, the one farthest from
    // the rarest in the term (10M events: `niaj266-docs-16-8000`'s rarest,
    // `j26`, has 1,412 candidates and every other trigram over 50,000; with
    // `000`, 34, counted in 3 ms; its 1,412 read took 79 ms a page under
    // load). Counted in the index, which reads both doclists and no event.
    let partner = match (&rarest, &second) {
        (_, Some((_, other))) => Some(other.clone()),
        (Some((_, rare)), None) => options
            .iter()
            .position(|o| o == rare)
            .and_then(|at| {
                (0..options.len())
                    .filter(|&i| i != at)
                    .max_by_key(|&i| i.abs_diff(at))
            })
            .map(|i| options[i].clone()),
        (None, None) => None,
    };
    if let (Some((n, Candidates::Trigrams(one))), Some(Candidates::Trigrams(other))) =
        (&rarest, &partner)
        && *n > BOTH_RAREST_AFTER
    {
        let both = Candidates::Trigrams(format!("{one} {other}"));
        let m = both.count_at_most(c, counts, *n)?;
        if m < *n {
            rarest = Some((m, both));
        }
    }
    if rarest.is_none() && options.len() > 1 {
        // Each trigram is common: the events with all of them may still be few.
        let all = Candidates::Trigrams(trigrams(term));
        let n = all.count_at_most(c, counts, enough)?;
        rarest = Some((n, all));
    }
    Ok(rarest.or_else(|| options.into_iter().next().map(|o| (enough, o))))
}

/// Past this many candidates of a term's rarest trigram, the events that also
/// have its second rarest are counted (reading 100 candidates costs about
/// 0.5 ms). On 1M events the bench's rare target has 316 candidates by its
/// rarest trigram and 5 by its two rarest, counted in 0.4 ms; at 10M the
/// 3,000 candidates read took 120 ms.
const BOTH_RAREST_AFTER: i64 = 100;

/// A character as FTS5 keeps it in a trigram: it reads U+FFFE and U+FFFF as
/// U+FFFD (a query's MATCH is read the same way, a range of the vocabulary is
/// not). A pair's candidates are then a few more than its events, never fewer.
fn as_tokenized(c: char) -> char {
    match c {
        '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
        c => c,
    }
}

/// The character after `c`, in the order of their UTF-8 bytes (which is
/// their code points' order), if there is one.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{d7ff}' => Some('\u{e000}'),
        c => char::from_u32(c as u32 + 1),
    }
}

/// Trigrams covering a term of three characters or more: one at every third
/// character, and the last three.
fn covering_trigrams(chars: &[char]) -> Vec<&[char]> {
    let mut starts: Vec<usize> = (0..chars.len().saturating_sub(2)).step_by(3).collect();
    if !chars.len().is_multiple_of(3) {
        starts.push(chars.len() - 3);
    }
    starts.into_iter().map(|s| &chars[s..s + 3]).collect()
}

/// One trigram as an FTS5 string (`"` doubled), which the trigram tokenizer
/// reads as one token.
fn fts_token(trigram: &[char]) -> String {
    let mut token = String::from('"');
    for &c in trigram {
        if c == '"' {
            token.push('"');
        }
        token.push(c);
    }
    token.push('"');
    token
}

/// An FTS5 query for events whose text may contain `term` (three characters
/// or more): its covering trigrams, all of which must be present. Every event
/// that contains the term has them all; a few that have them may not contain it.
fn trigrams(term: &str) -> String {
    let chars: Vec<char> = term.chars().collect();
    covering_trigrams(&chars)
        .into_iter()
        .map(fts_token)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `%text%` for LIKE … ESCAPE '\\', with LIKE's wildcards taken literally.
fn like_escaped(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A free-text test in each backend's SQL, around the bound term: (what
/// holds a term, what lacks one), each as the SQL before and after it.
trait TextSql {
    const TEXT_SQL: TextTests;
}

type TextTests = ((&'static str, &'static str), (&'static str, &'static str));

impl TextSql for diesel::SqliteConnection {
    const TEXT_SQL: TextTests = (
        ("instr(events.search_doc, ", ") > 0"),
        // An event without its search text yet (see `unsearched`) lacks every term.
        ("instr(coalesce(events.search_doc, ''), ", ") = 0"),
    );
}

impl TextSql for diesel::PgConnection {
    const TEXT_SQL: TextTests = (
        // E'': the escape is a backslash whatever standard_conforming_strings says.
        ("events.search_doc LIKE ", " ESCAPE E'\\\\'"),
        ("strpos(coalesce(events.search_doc, ''), ", ") = 0"),
    );
}

fn text_sql<C: TextSql>(_: &C) -> TextTests {
    C::TEXT_SQL
}

/// How a page of `want` rows finds `criteria`'s free text (see [`TextPlan`]),
/// for tests and for looking into a slow query: `"none"` (the index shows
/// that nothing matches), `"candidates"`, `"walk of candidates"`, or `"walk"`
/// (every event on the walk is tested; always so on PostgreSQL, whose
/// planner decides).
pub fn text_reading(
    conn: &mut DbConn,
    criteria: &Criteria,
    want: i64,
) -> Result<&'static str, DbError> {
    let plan = TextPlan::new(conn, criteria, want)?;
    Ok(match plan.indexed {
        _ if plan.none => "none",
        Some((_, Reading::Candidates)) => "candidates",
        Some((_, Reading::Walk)) => "walk of candidates",
        None => "walk",
    })
}

/// One page of events matching `criteria`, read as an index range scan of at
/// most `limit` rows: newest first from `position` (or from the newest event).
/// With a `newer` position the rows come oldest first; the caller reverses them.
pub fn page(
    conn: &mut DbConn,
    criteria: &Criteria,
    position: Option<Position>,
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    if criteria.matches_nothing() {
        return Ok(Vec::new());
    }
    let plan = TextPlan::new(conn, criteria, limit)?;
    if plan.none {
        return Ok(Vec::new());
    }
    if let (Some(first), AnyConnection::Sqlite(c)) = (&plan.newest_first, conn.backend())
        && position.is_none_or(|p| !p.newer)
        && let Some(rows) = newest_candidates(c, criteria, &plan, first, position, limit)?
    {
        return Ok(rows);
    }
    // Per backend, not through `AnyConnection`: a hot query (see `db`, "Hot queries").
    Ok(with_backend!(conn, c => {
        let mut q = filtered_events!(criteria, plan, text_sql(c));
        match position {
            // The redundant `time <=` bound lets the planner use it as the range
            // of the (…, time, id) index; the OR settles ties on time by id.
            Some(p) if !p.newer => {
                q = q
                    .filter(events::time.le(p.time))
                    .filter(events::time.lt(p.time).or(events::id.lt(p.id)))
                    .order((events::time.desc(), events::id.desc()));
            }
            Some(p) => {
                q = q
                    .filter(events::time.ge(p.time))
                    .filter(events::time.gt(p.time).or(events::id.gt(p.id)))
                    .order((events::time.asc(), events::id.asc()));
            }
            None => q = q.order((events::time.desc(), events::id.desc())),
        }
        if !matches!(plan.indexed, Some((_, Reading::Candidates))) {
            return Ok(q.limit(limit).select(EventRow::as_select()).load(c)?);
        }
        // A term's candidates are sorted: by their ids and times only, then the
        // page's rows are read (sorting whole rows, diffs and all, took three
        // times as long).
        let ids: Vec<i64> = q.limit(limit).select(events::id).load(c)?;
        let rows = rows_in_order!(c, ids);
        Ok::<_, DbError>(rows)
    })?)
}

/// The events among `ids` that match `criteria`, in no order: each is
/// tested whole (its free text with `instr` or `LIKE`, no index read), as a
/// stream tests a stretch of the log.
pub fn among(
    conn: &mut DbConn,
    criteria: &Criteria,
    ids: &[i64],
) -> Result<Vec<EventRow>, DbError> {
    if criteria.matches_nothing() || ids.is_empty() {
        return Ok(Vec::new());
    }
    let plan = TextPlan::tested(conn, criteria);
    Ok(with_backend!(conn, c => {
        filtered_events!(criteria, plan, text_sql(c))
            .filter(events::id.eq_any(ids))
            .select(EventRow::as_select())
            .load::<EventRow>(c)
    })?)
}

/// Ids are grouped in blocks of `1 << TIME_BLOCK_BITS` for the newest time
/// up to each (`event_time_blocks`, kept by a trigger: the shift is also in
/// its SQL).
const TIME_BLOCK_BITS: u32 = 8;

/// A page of older events (or the newest page) from the candidates of an FTS5
/// `query`, on SQLite, read newest id first in chunks (`first`, then as
/// many as the page still lacks at the rate the chunks so far held matches,
/// or twice the last: see the loop). Every event of a chunk that matches `criteria` (tested with `plan`'s terms) is kept, and
/// the best `limit` by (time, id), newest first. Once there are `limit`, the
/// newest time of any event with a smaller id than those read
/// ([`newest_time_below`]) says whether one could still rank among them (its
/// id being smaller, only a newer time would). When events arrive in time
/// order, that is after about a page of candidates. `None` when more than
/// `budget` candidates were read without an end (events out of time order,
/// a term in few of its candidates): the caller's plan reads the page instead.
fn newest_candidates(
    c: &mut diesel::SqliteConnection,
    criteria: &Criteria,
    plan: &TextPlan,
    (query, budget, first, known): &(String, i64, i64, Option<Ids>),
    position: Option<Position>,
    limit: i64,
) -> Result<Option<Vec<EventRow>>, DbError> {
    let budget = *budget;
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    // The chunk's events are tested by every criterion but the index itself.
    let tested = TextPlan {
        indexed: None,
        newest_first: None,
        contains: plan.contains.clone(),
        lacks: plan.lacks.clone(),
        none: false,
        unindexed_after: None,
    };
    let want = usize::try_from(limit).unwrap_or(0);
    let mut best: Vec<(NaiveDateTime, i64)> = Vec::new();
    let mut below = i64::MAX;
    let mut chunk_size = (*first).clamp(64, 4096).min(budget.max(1));
    let mut read = 0;
    // The events the index does not hold yet come first: they are the newest.
    let mut unindexed = plan.unindexed_after.as_ref().map(|&(after, _)| after);
    // Ids are fetched several chunks at a time, and tested a chunk at a time:
    // a common term's query reads its trigrams' doclists whatever its LIMIT,
    // and cost more than the rows it names (`q=docs` on 1M events took 22
    // ms a page under load when each chunk was a query of its own, 3.2 times
    // the unfiltered page).
    let mut fetched: std::collections::VecDeque<i64> = std::collections::VecDeque::new();
    // The oldest id fetched so far, and whether the source has no more.
    let mut fetched_below = i64::MAX;
    let mut source_done = false;
    loop {
        if (fetched.len() as i64) < chunk_size && !source_done {
            let n = (4 * chunk_size).clamp(256, 4096);
            let more: Vec<i64> = match unindexed {
                Some(after) => diesel::sql_query(
                    "SELECT id FROM events WHERE id > ? AND id < ? ORDER BY id DESC LIMIT ?",
                )
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(fetched_below)
                .bind::<BigInt, _>(n)
                .load::<Id>(c)?,
                None => match known {
                    // The same as the query below would give (they are all of them).
                    Some(ids) => ids
                        .iter()
                        .copied()
                        .filter(|&id| id < fetched_below)
                        .take(usize::try_from(n).unwrap_or(usize::MAX))
                        .map(|id| Id { id })
                        .collect(),
                    None => diesel::sql_query(
                        "SELECT rowid AS id FROM events_text WHERE events_text MATCH ? AND rowid < ? \
                         ORDER BY rowid DESC LIMIT ?",
                    )
                    .bind::<Text, _>(query.as_str())
                    .bind::<BigInt, _>(fetched_below)
                    .bind::<BigInt, _>(n)
                    .load::<Id>(c)?,
                },
            }
            .into_iter()
            .map(|r| r.id)
            .collect();
            // A short fetch is the last of its source.
            source_done = (more.len() as i64) < n;
            if let Some(&oldest) = more.last() {
                fetched_below = oldest;
            }
            fetched.extend(more);
        }
        let take = usize::try_from(chunk_size).unwrap_or(0).min(fetched.len());
        let chunk: Vec<i64> = fetched.drain(..take).collect();
        let last = source_done && fetched.is_empty();
        read += chunk.len() as i64;
        if let Some(&oldest) = chunk.last() {
            below = oldest;
        }
        let mut q = filtered_events!(criteria, tested, text_sql(c));
        q = q.filter(events::id.eq_any(&chunk));
        if let Some(p) = position {
            q = q
                .filter(events::time.le(p.time))
                .filter(events::time.lt(p.time).or(events::id.lt(p.id)));
        }
        best.extend(
            q.select((events::time, events::id))
                .load::<(NaiveDateTime, i64)>(c)?,
        );
        best.sort_unstable_by(|a, b| b.cmp(a));
        best.truncate(want);
        match unindexed {
            // The index's candidates next (any it took in since are read already).
            Some(after) if last => {
                unindexed = None;
                source_done = false;
                fetched_below = fetched_below.min(after + 1);
                below = below.min(after + 1);
            }
            None if last => break,
            _ => {}
        }
        if best.len() == want
            && let Some(&(kth, _)) = best.last()
            && newest_time_below(c, below)?.is_none_or(|newest| newest <= kth)
        {
            break;
        }
        if read >= budget {
            tracing::debug!(
                read,
                "newest candidates: past the budget, the plan's reading follows"
            );
            return Ok(None);
        }
        // The next chunk: what the page still lacks at the rate the chunks so
        // far held matches, and a quarter more; twice the last when none held
        // any or the page is full (its order is being settled).
        let lacking = (want - best.len()) as f64;
        let rate = best.len() as f64 / read as f64;
        chunk_size = if best.len() < want && rate > 0.0 {
            (lacking / rate * 1.25).ceil() as i64
        } else {
            chunk_size * 2
        }
        .clamp(64, 4096)
        .min(budget - read);
    }
    tracing::debug!(read, "newest candidates: the page found");
    let ids: Vec<i64> = best.iter().map(|&(_, id)| id).collect();
    let rows = rows_in_order!(c, ids);
    Ok(Some(rows))
}

/// The newest time of any event whose id is below `id` (and of a few above
/// it, in the same block): `None` when there is none.
fn newest_time_below(
    c: &mut diesel::SqliteConnection,
    id: i64,
) -> Result<Option<NaiveDateTime>, DbError> {
    use diesel::sql_types::{BigInt, Nullable, Timestamp};
    #[derive(QueryableByName)]
    struct Newest {
        #[diesel(sql_type = Nullable<Timestamp>)]
        newest: Option<NaiveDateTime>,
    }
    Ok(diesel::sql_query(
        "SELECT newest FROM event_time_blocks WHERE block <= ? ORDER BY block DESC LIMIT 1",
    )
    .bind::<BigInt, _>((id - 1) >> TIME_BLOCK_BITS)
    .get_result::<Newest>(c)
    .optional()?
    .and_then(|n| n.newest))
}

/// How many events match, counting no further than `cap` (never a full count).
/// The database counts (`SELECT COUNT(*) FROM (… LIMIT cap)`): no row leaves it.
pub fn count_capped(conn: &mut DbConn, criteria: &Criteria, cap: i64) -> Result<i64, DbError> {
    // Ordered like a page, so the count walks the page's own (…, time, id) index;
    // unordered, SQLite 3.51 chose a skip-scan of another index for a time range
    // (0.8 ms instead of 0.26 ms on 1M events).
    if criteria.matches_nothing() {
        return Ok(0);
    }
    let plan = TextPlan::new(conn, criteria, cap)?;
    if plan.none {
        return Ok(0);
    }
    // Per backend, not through `AnyConnection`: a hot query (see `db`, "Hot queries").
    Ok(with_backend!(conn, c => {
        let mut q = filtered_events!(criteria, plan, text_sql(c));
        // Not ordered when a term's candidates drive the count: ordered, the
        // planner may walk the time index instead of reading the candidates.
        if !matches!(plan.indexed, Some((_, Reading::Candidates))) {
            q = q.order((events::time.desc(), events::id.desc()));
        }
        CountOf(q.select(events::id).limit(cap)).get_result::<i64>(c)
    })?)
}

/// `SELECT COUNT(*) FROM (<query>) AS matching`: diesel has no derived tables,
/// so this wraps any query as one.
struct CountOf<Q>(Q);

impl<Q> diesel::query_builder::QueryId for CountOf<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> diesel::query_builder::Query for CountOf<Q> {
    type SqlType = diesel::sql_types::BigInt;
}

impl<Q, Conn> RunQueryDsl<Conn> for CountOf<Q> {}

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for CountOf<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql("SELECT COUNT(*) FROM (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(") AS matching");
        Ok(())
    }
}

/// Refreshes the planner's statistics after a large import.
pub fn optimize(conn: &mut DbConn) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    match conn.backend() {
        // The database's own tables only: a bare ANALYZE (or PRAGMA optimize)
        // covers every attached file, the free-text index's too, and waits
        // for the index's write lock while holding the database's, holding up
        // every writer of events behind the index's thread (an import in CI
        // failed as busy). The index is merged by its own thread once it has
        // caught up with a large load (`text_index::optimize`).
        AnyConnection::Sqlite(c) => c.batch_execute("PRAGMA main.optimize; ANALYZE main;")?,
        AnyConnection::Postgres(c) => {
            // VACUUM sets the visibility map, without which the planner avoids
            // index-only scans after a bulk load (the capped counts read the heap:
            // 21 ms instead of 1.5 ms on 1M events). It must run on its own, not
            // in a transaction or a multi-statement string.
            c.batch_execute("VACUUM (ANALYZE) events")?;
            c.batch_execute("ANALYZE actors; ANALYZE resource_targets;")?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Cost, Reading, as_tokenized, like_pattern, next_char, trigrams};

    #[test]
    fn a_pairs_trigrams_end_before_the_next_character() {
        assert_eq!(next_char('q'), Some('r'));
        assert_eq!(next_char('σ'), Some('τ'));
        // UTF-8 orders code points; the surrogates are no characters.
        assert_eq!(next_char('\u{d7ff}'), Some('\u{e000}'));
        assert_eq!(next_char(char::MAX), None);
        assert_eq!(as_tokenized('\u{ffff}'), '\u{fffd}');
        assert_eq!(as_tokenized('a'), 'a');
    }

    #[test]
    fn the_cheapest_reading_follows_how_many_candidates() {
        let on_1m = |n| {
            Cost {
                n,
                want: 51.0,
                stored: 1e6,
            }
            .best()
        };
        assert_eq!(on_1m(300.0), Some(Reading::Candidates));
        assert_eq!(on_1m(7_000.0), Some(Reading::Walk));
        assert_eq!(on_1m(50_000.0), None);
        // Counting stops where walking every event is cheapest.
        assert_eq!(Cost::enough(51, 1_000_000), 15_968);
        assert_eq!(Cost::enough(51, 100), 100);
    }

    #[test]
    fn a_terms_fts5_query_holds_trigrams_covering_it() {
        assert_eq!(trigrams("gpu_vendor"), r#""gpu" "_ve" "ndo" "dor""#);
        assert_eq!(trigrams("abcdef"), r#""abc" "def""#);
        assert_eq!(trigrams("ttl"), r#""ttl""#);
        // A quote is doubled inside the FTS5 string; any other character is itself.
        assert_eq!(trigrams("a\"b c"), r#""a""b" "b c""#);
        assert_eq!(trigrams("οδοσ"), r#""οδο" "δοσ""#);
    }

    #[test]
    fn free_text_wildcards_are_taken_literally() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
