-- Signed checkpoints of the log (issue 13): each a C2SP signed note of the
-- tree head at one size, with the tree's right edge at that size (the heads
-- of its perfect subtrees, hex, comma-separated) so that the next checkpoint
-- costs only the leaves added since. Kept, append-only.
CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    frontier TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TRIGGER checkpoints_refuse_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE is refused');
END;
CREATE TRIGGER checkpoints_refuse_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE is refused');
END;
