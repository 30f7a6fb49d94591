-- The leaderboards' read model (projection `leaderboards`).

-- Every board as defined now, with its current season and the last recomputation's outcome.
CREATE TABLE rm_leaderboards (
    leaderboard         text        PRIMARY KEY,
    title               text        NOT NULL,
    sort_order          text        NOT NULL,
    operator            text        NOT NULL,
    reset               text,
    authoritative       boolean     NOT NULL,
    season              integer     NOT NULL DEFAULT 0,
    -- The reset schedule's next tick is the first after this.
    tick_base           timestamptz NOT NULL,
    defined_position    bigint      NOT NULL,
    updated_position    bigint      NOT NULL,
    -- The last redefinition that changed the order or the operator, and how many entries
    -- changed rank in it (every season counted).
    recomputed_position bigint,
    moved               bigint
);

-- Every season of every board.
CREATE TABLE rm_leaderboard_seasons (
    leaderboard      text        NOT NULL,
    season           integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    started_position bigint      NOT NULL,
    ended_at         timestamptz,
    ended_position   bigint,
    PRIMARY KEY (leaderboard, season)
);

-- Every player's record per board and season, a version per change over the positions
-- [valid_from, valid_to): the live entries are the open versions; an as-of read takes those
-- valid at its position. Ranked by the sort keys (descending whatever the board's order), then
-- by who reached the record first.
CREATE TABLE rm_leaderboard_entries (
    leaderboard   text        NOT NULL,
    season        integer     NOT NULL,
    player_id     uuid        NOT NULL,
    score         bigint      NOT NULL,
    subscore      bigint      NOT NULL,
    metadata      jsonb,
    sort_score    bigint      NOT NULL,
    sort_subscore bigint      NOT NULL,
    reached       bigint      NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- What every order and operator would make of the season's submissions (see record.rs).
    summary       jsonb       NOT NULL,
    valid_from    bigint      NOT NULL,
    valid_to      bigint      NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (leaderboard, season, player_id, valid_from)
);
CREATE UNIQUE INDEX rm_leaderboard_entries_live ON rm_leaderboard_entries
    (leaderboard, season, player_id) WHERE valid_to = 9223372036854775807;
CREATE INDEX rm_leaderboard_entries_rank ON rm_leaderboard_entries
    (leaderboard, season, sort_score DESC, sort_subscore DESC, reached, player_id)
    WHERE valid_to = 9223372036854775807;
CREATE INDEX rm_leaderboard_entries_valid ON rm_leaderboard_entries
    USING gist (int8range(valid_from, valid_to));
