DROP TABLE IF EXISTS log_subtrees;
