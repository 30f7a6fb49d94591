-- Lab sessions, presence and chat.

-- The profile shows presence from the players projection, which folds the same player stream.
ALTER TABLE rm_players
    ADD COLUMN online      boolean NOT NULL DEFAULT false,
    ADD COLUMN current_lab text;

-- Presence (projection `presence`): a row per registered player, so that the projection keeps the
-- name it shows from the player's own registration; `online` rows are who is online now.
DELETE FROM rm_presence;
ALTER TABLE rm_presence DROP COLUMN last_seen;
ALTER TABLE rm_presence ALTER COLUMN since DROP NOT NULL;
ALTER TABLE rm_presence ADD COLUMN online boolean NOT NULL DEFAULT false;
CREATE INDEX rm_presence_online ON rm_presence (since, player_id) WHERE online;

-- When each player's last heartbeat arrived: written by the command side in the same transaction
-- as the batch that carried the heartbeat (so it survives any crash), read by the presence reaper,
-- which takes a player offline when it is older than the timeout. Not a read model: it is not in
-- the log, on purpose (a heartbeat that changes nothing appends nothing).
CREATE TABLE presence_seen (
    player_id uuid PRIMARY KEY,
    last_seen timestamptz NOT NULL
);
CREATE INDEX presence_seen_last_seen ON presence_seen (last_seen);

-- The working copy of each lab session: the latest saved virtual file system and step, written by
-- the command side in the same transaction as the batch that carried the save. Only the latest is
-- kept; the log records the session's facts (started, furthest step, deleted). See ARCHITECTURE.md.
CREATE TABLE lab_workspaces (
    player_id    uuid        NOT NULL,
    lab_id       text        NOT NULL,
    vfs_snapshot jsonb       NOT NULL,
    current_step integer     NOT NULL,
    saved_at     timestamptz NOT NULL,
    PRIMARY KEY (player_id, lab_id)
);

-- Lab sessions (projection `labs`).
-- A row per lab a player ever started or completed; `active` while a session is started and not
-- deleted (only active sessions are answered). Completion outlives deletion.
CREATE TABLE rm_lab_sessions (
    player_id     uuid        NOT NULL,
    lab_id        text        NOT NULL,
    active        boolean     NOT NULL,
    started_at    timestamptz,
    furthest_step integer     NOT NULL,
    completed_at  timestamptz,
    updated_position bigint   NOT NULL,
    PRIMARY KEY (player_id, lab_id)
);

-- Chat messages (projection `chat`). Channels are canonical: `global`, `lab:<lab_id>`,
-- `dm:<lesser player id>:<greater player id>`. A deleted message keeps its row without content.
CREATE TABLE rm_messages (
    message_id uuid PRIMARY KEY,
    channel    text        NOT NULL,
    sender     uuid        NOT NULL,
    content    text,
    deleted    boolean     NOT NULL DEFAULT false,
    sent_at    timestamptz NOT NULL,
    edited_at  timestamptz,
    position   bigint      NOT NULL
);
CREATE INDEX rm_messages_history ON rm_messages (channel, position DESC);

-- Appends one batch, as before, and in the same transaction writes what the batch's commands keep
-- beside the log: heartbeat times (`seen_*`), lab working copies (`ws_*`, a null snapshot deletes),
-- and the reaper's claims (`gone_*`): a player is taken offline only while its last heartbeat is
-- still the one the reaper saw; otherwise the batch conflicts (`presence: <id>`) and nothing is
-- written.
CREATE FUNCTION questlog_append(
    expect_streams  text[],
    expect_versions bigint[],
    ev_ids          uuid[],
    ev_streams      text[],
    ev_types        text[],
    ev_schemas      integer[],
    ev_data         jsonb[],
    ev_meta         jsonb[],
    idem_identities uuid[],
    idem_keys       text[],
    idem_hashes     text[],
    idem_commands   uuid[],
    idem_firsts     integer[],
    idem_counts     integer[],
    seen_players    uuid[],
    seen_at         timestamptz,
    ws_players      uuid[],
    ws_labs         text[],
    ws_snapshots    jsonb[],
    ws_steps        integer[],
    gone_players    uuid[],
    gone_last_seen  timestamptz[],
    OUT positions   bigint[],
    OUT versions    bigint[],
    OUT head        bigint,
    OUT conflicts   text[]
) LANGUAGE plpgsql AS $$
DECLARE
    stale text[];
BEGIN
    IF cardinality(gone_players) > 0 THEN
        -- Locks the rows, so a heartbeat committing meanwhile waits and then conflicts on the
        -- player's stream version.
        SELECT coalesce(array_agg('presence: ' || g.p), '{}')
          INTO stale
          FROM unnest(gone_players, gone_last_seen) AS g(p, seen)
          LEFT JOIN LATERAL (SELECT s.last_seen FROM presence_seen s WHERE s.player_id = g.p FOR UPDATE) c ON true
         WHERE c.last_seen IS DISTINCT FROM g.seen;
        IF cardinality(stale) > 0 THEN
            conflicts := stale;
            RETURN;
        END IF;
    END IF;

    SELECT a.positions, a.versions, a.head, a.conflicts
      INTO positions, versions, head, conflicts
      FROM questlog_append(expect_streams, expect_versions, ev_ids, ev_streams, ev_types, ev_schemas,
                           ev_data, ev_meta, idem_identities, idem_keys, idem_hashes, idem_commands,
                           idem_firsts, idem_counts) a;
    IF cardinality(conflicts) > 0 THEN
        RETURN;
    END IF;

    INSERT INTO presence_seen (player_id, last_seen)
    SELECT DISTINCT p, seen_at FROM unnest(seen_players) AS p
    ON CONFLICT (player_id) DO UPDATE SET last_seen = EXCLUDED.last_seen;

    DELETE FROM presence_seen WHERE player_id = ANY (gone_players);

    -- The last write of a working copy in the batch wins.
    WITH w AS (
        SELECT DISTINCT ON (p, l) p, l, snap, step
          FROM unnest(ws_players, ws_labs, ws_snapshots, ws_steps) WITH ORDINALITY AS w(p, l, snap, step, ord)
         ORDER BY p, l, ord DESC
    ), removed AS (
        DELETE FROM lab_workspaces x USING w
         WHERE w.snap IS NULL AND x.player_id = w.p AND x.lab_id = w.l
    )
    INSERT INTO lab_workspaces (player_id, lab_id, vfs_snapshot, current_step, saved_at)
    SELECT p, l, snap, step, seen_at FROM w WHERE snap IS NOT NULL
    ON CONFLICT (player_id, lab_id) DO UPDATE
       SET vfs_snapshot = EXCLUDED.vfs_snapshot, current_step = EXCLUDED.current_step,
           saved_at = EXCLUDED.saved_at;
END
$$;
