-- The boards' definitions as they stood, for as-of reads of the list of boards (projection
-- `leaderboards`): a version of a board's row per event that changed it, valid over the positions
-- [valid_from, valid_to), written in the same transaction as the live row. A database whose read
-- model was built before this migration gets the history by `questlog replay leaderboards --yes`.
CREATE TABLE rm_leaderboard_versions (
    leaderboard         text        NOT NULL,
    title               text        NOT NULL,
    sort_order          text        NOT NULL,
    operator            text        NOT NULL,
    reset               text,
    authoritative       boolean     NOT NULL,
    season              integer     NOT NULL,
    tick_base           timestamptz NOT NULL,
    defined_position    bigint      NOT NULL,
    updated_position    bigint      NOT NULL,
    recomputed_position bigint,
    moved               bigint,
    valid_from          bigint      NOT NULL,
    valid_to            bigint      NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (leaderboard, valid_from)
);
