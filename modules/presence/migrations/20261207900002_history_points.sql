-- Presence's history is searched by the point (valid_from, valid_to) (see
-- `questlog_query_api::as_of::valid_at`): a GiST index on the point is built sorted, several times
-- faster than one on the range, which a rebuild pays.
DROP INDEX IF EXISTS rm_presence_history_valid;
CREATE INDEX rm_presence_history_valid ON rm_presence_history
    USING gist (point(valid_from, valid_to));
