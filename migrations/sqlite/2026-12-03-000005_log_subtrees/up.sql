-- Heads of the log's perfect subtrees of 256 positions and more (issue 13):
-- level L, index i holds the RFC 6962 head, hex, of positions i * 2^L to
-- (i + 1) * 2^L - 1. The checkpointer writes those each checkpoint completes;
-- an inclusion proof then reads O(log n) of them and a few hundred leaf
-- hashes, not the whole log, and a prefix of old positions can later go
-- while its heads stay. Derived data: a proof is checked against the signed
-- tree head before it is served.
CREATE TABLE log_subtrees (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    head TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
