-- Free-text terms of two characters (issue 12): every pair of characters in
-- an event's search text is followed by at least one more (each field ends
-- with U+001F), so the events holding a pair are those with a trigram that
-- starts with it. This view of the FTS5 index lists its trigrams with their
-- events, and answers a range of trigrams (`term >= 'zq' AND term < 'zr'`)
-- from the index alone. It stores nothing.
CREATE VIRTUAL TABLE events_text_vocab USING fts5vocab(events_text, instance);
