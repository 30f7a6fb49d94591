-- What each read model has seen of the log, exactly: the id of the last event it applied (beside
-- its position), and which JetStream stream its `stream_sequence` counts in (the stream's creation
-- time). A checkpoint whose event is not this log's event at that position belongs to another
-- history; a stream sequence counted in a stream since deleted and created again means nothing.
-- See ARCHITECTURE.md, "One log, one history".
ALTER TABLE projection_checkpoints
    ADD COLUMN event_id uuid,
    ADD COLUMN stream_created text;
