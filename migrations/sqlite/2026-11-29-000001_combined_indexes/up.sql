-- Filters that the single-dimension indexes serve badly, measured with
-- bench/page.sh on 1,000,000 events:
-- * user + action: the actor index alone reads every event of a busy user to
--   find the few with that action (the capped count read 118,348 rows for 8,538).
-- * status=failure: no index at all, so the count scanned the table. Failures
--   are a few percent of events, so a partial index is small. The query spells
--   the predicate as the literal `status_code >= 400` so the planner can use it.
CREATE INDEX events_actor_action_time ON events (actor_username, action, time, id);
CREATE INDEX events_failures_time ON events (time, id) WHERE status_code >= 400;
