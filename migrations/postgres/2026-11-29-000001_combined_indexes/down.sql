DROP INDEX events_failures_time;
DROP INDEX events_actor_action_time;
