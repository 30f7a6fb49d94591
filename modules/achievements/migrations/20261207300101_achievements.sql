-- The achievements' read model (projection `achievements`).

-- Every achievement as defined now.
CREATE TABLE rm_achievements (
    achievement      text    PRIMARY KEY,
    title            text    NOT NULL,
    description      text    NOT NULL,
    hidden           boolean NOT NULL,
    goal             bigint  NOT NULL,
    rule             jsonb,
    authoritative    boolean NOT NULL,
    defined_position bigint  NOT NULL
);

-- Each player's progress and unlock. A rule's rows are derived from the log: the count of the
-- player's matching events, and the position and time at which the goal was met.
CREATE TABLE rm_player_achievements (
    achievement       text        NOT NULL,
    player_id         uuid        NOT NULL,
    progress          bigint      NOT NULL DEFAULT 0,
    unlocked_at       timestamptz,
    unlocked_position bigint,
    revoked           boolean     NOT NULL DEFAULT false,
    updated_position  bigint      NOT NULL,
    PRIMARY KEY (achievement, player_id)
);
CREATE INDEX rm_player_achievements_player ON rm_player_achievements (player_id);
