DROP TABLE events_text_vocab;
