-- For each block of 256 event ids (id >> 8), the newest time of any event up
-- to the end of that block, kept in the event's own transaction (issue 12).
-- A free-text term's candidates are read newest id first: once a page's
-- worth is found, the entry of the block below them says whether any event
-- with a smaller id can still belong on the page. When events arrive in time
-- order, the reading stops after about a page of candidates, however many
-- there are. Ids only grow (SQLite gives each event the next rowid), so a new
-- event only ever lands in the last block, and carries the block before's
-- newest time forward.
CREATE TABLE event_time_blocks (
    block INTEGER PRIMARY KEY NOT NULL,
    newest TIMESTAMP NOT NULL
);
INSERT INTO event_time_blocks (block, newest)
    SELECT block, max(newest) OVER (ORDER BY block)
    FROM (SELECT id >> 8 AS block, max(time) AS newest FROM events GROUP BY id >> 8);
CREATE TRIGGER event_time_blocks_insert AFTER INSERT ON events BEGIN
    INSERT INTO event_time_blocks (block, newest)
    VALUES (
        new.id >> 8,
        max(new.time, coalesce(
            (SELECT newest FROM event_time_blocks WHERE block < new.id >> 8
             ORDER BY block DESC LIMIT 1),
            new.time))
    )
    ON CONFLICT (block) DO UPDATE SET newest = excluded.newest
    WHERE excluded.newest > event_time_blocks.newest;
END;
