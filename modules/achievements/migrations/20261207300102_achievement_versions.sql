-- The achievements' history, for as-of reads (projection `achievements`): a version per change of
-- a definition and of a player's line, valid over the positions [valid_from, valid_to), written in
-- the same transaction as the live rows. A rule derived retroactively at its definition's
-- position P gets its versions from P (a replay up to P shows no such achievement yet), with the
-- unlock's own position and time inside them. A database whose read model was built before this
-- migration gets the history by `questlog replay achievements --yes`.

CREATE TABLE rm_achievement_versions (
    achievement      text    NOT NULL,
    title            text    NOT NULL,
    description      text    NOT NULL,
    hidden           boolean NOT NULL,
    goal             bigint  NOT NULL,
    rule             jsonb,
    authoritative    boolean NOT NULL,
    defined_position bigint  NOT NULL,
    valid_from       bigint  NOT NULL,
    valid_to         bigint  NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (achievement, valid_from)
);

CREATE TABLE rm_player_achievement_versions (
    achievement       text        NOT NULL,
    player_id         uuid        NOT NULL,
    progress          bigint      NOT NULL,
    unlocked_at       timestamptz,
    unlocked_position bigint,
    revoked           boolean     NOT NULL,
    valid_from        bigint      NOT NULL,
    valid_to          bigint      NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (achievement, player_id, valid_from)
);
CREATE INDEX rm_player_achievement_versions_player
    ON rm_player_achievement_versions (player_id, valid_from);
