-- History of the read models that span every player, for as-of reads (time travel): a version per
-- change, valid over the positions [valid_from, valid_to). Written by the projections in the same
-- transaction as the live rows; rebuilt with them by `questlog replay`. A database migrated with
-- read models already built gets its history by `questlog replay all --yes`.

-- The leaderboard's entries (projection `players`): a version per change of a player's XP, and
-- the registration.
CREATE TABLE rm_leaderboard_history (
    player_id   uuid    NOT NULL,
    username    text    NOT NULL,
    xp          bigint  NOT NULL,
    level       integer NOT NULL,
    xp_position bigint  NOT NULL,
    valid_from  bigint  NOT NULL,
    valid_to    bigint  NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (player_id, valid_from)
);
CREATE INDEX rm_leaderboard_history_valid ON rm_leaderboard_history
    USING gist (int8range(valid_from, valid_to));

-- Who was online (projection `presence`): a version per online stretch and lab change.
CREATE TABLE rm_presence_history (
    player_id   uuid        NOT NULL,
    username    text        NOT NULL,
    current_lab text,
    since       timestamptz NOT NULL,
    valid_from  bigint      NOT NULL,
    valid_to    bigint      NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (player_id, valid_from)
);
CREATE INDEX rm_presence_history_valid ON rm_presence_history
    USING gist (int8range(valid_from, valid_to));
