-- Where the relay last left the JetStream stream, kept when it has published everything: the
-- stream's sequence of that message and the event it holds. A bounded stream (by age) may drop
-- every message while nothing is appended; JetStream then still knows its last sequence, but no
-- longer the event there, and the relay resumes after the event this row names.
CREATE TABLE relay_published (
    stream         text PRIMARY KEY,
    stream_created text        NOT NULL,
    sequence       bigint      NOT NULL,
    position       bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
