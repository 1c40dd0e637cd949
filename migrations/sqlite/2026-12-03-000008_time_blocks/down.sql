DROP TRIGGER event_time_blocks_insert;
DROP TABLE event_time_blocks;
