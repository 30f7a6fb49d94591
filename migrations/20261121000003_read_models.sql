-- Read models, written only by projectors. Each projection's checkpoint changes in the same
-- transaction as its rows, so a read model always reflects exactly the log up to its checkpoint.
CREATE TABLE projection_checkpoints (
    projection text PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    -- The JetStream stream sequence of the last message applied: where the consumer resumes.
    stream_sequence bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Player profile and progress (projection `players`); also the leaderboard, through its index.
CREATE TABLE rm_players (
    player_id         uuid PRIMARY KEY,
    username          text        NOT NULL,
    xp                bigint      NOT NULL,
    level             integer     NOT NULL,
    -- The position of the event that brought the player to this XP: equal XP ranks by who got
    -- there first.
    xp_position       bigint      NOT NULL,
    streak            integer     NOT NULL,
    longest_streak    integer     NOT NULL,
    streak_day        date,
    timezone          text        NOT NULL,
    last_activity     timestamptz,
    completed_labs    text[]      NOT NULL,
    completed_modules integer[]   NOT NULL,
    achievements      text[]      NOT NULL,
    updated_position  bigint      NOT NULL
);
CREATE INDEX rm_players_leaderboard ON rm_players (xp DESC, xp_position ASC, player_id ASC);

-- The catalog (projection `catalog`).
CREATE TABLE rm_modules (
    module   integer PRIMARY KEY,
    title    text      NOT NULL,
    requires integer[] NOT NULL
);
CREATE TABLE rm_labs (
    lab_id text PRIMARY KEY,
    module integer NOT NULL,
    title  text    NOT NULL,
    xp     integer NOT NULL
);

-- Who is online (projection `presence`).
CREATE TABLE rm_presence (
    player_id   uuid PRIMARY KEY,
    username    text        NOT NULL,
    current_lab text,
    since       timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);
