DROP TABLE IF EXISTS checkpoints;
