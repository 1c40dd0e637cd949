DROP TABLE IF EXISTS log_state;
DROP TRIGGER IF EXISTS log_entries_refuse_delete;
DROP TRIGGER IF EXISTS log_entries_refuse_update;
DROP TABLE IF EXISTS log_entries;
