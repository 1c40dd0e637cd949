DROP TRIGGER IF EXISTS checkpoints_refuse_delete;
DROP TRIGGER IF EXISTS checkpoints_refuse_update;
DROP TABLE IF EXISTS checkpoints;
