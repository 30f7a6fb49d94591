-- The academy's beside writes (see the kernel's `questlog_append`, 20261202000001_beside.sql):
-- a heartbeat's last-seen time, the presence reaper's claims, a lab session's working copy. Their
-- tables (`presence_seen`, `lab_workspaces`) were created before modules carried their own SQL
-- (20261129000001_sessions_presence_chat.sql) and stay where deployments have them.

-- Presence: a heartbeat keeps the player's last-seen time.
CREATE FUNCTION questlog_beside_presence_seen(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE sql AS $$
    INSERT INTO presence_seen (player_id, last_seen)
    SELECT DISTINCT (i->>'player_id')::uuid, at FROM jsonb_array_elements(items) AS i
    ON CONFLICT (player_id) DO UPDATE SET last_seen = EXCLUDED.last_seen;
    SELECT '{}'::text[];
$$;

-- Presence: the reaper's claims. Each names a player and the last-seen time the reaper found
-- stale; if that is no longer the player's last-seen time (a heartbeat came meanwhile), the
-- claim conflicts as `presence: <player id>`. The rows are locked, so a heartbeat committing
-- meanwhile waits and then conflicts on the player's stream version.
CREATE FUNCTION questlog_beside_presence_gone(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    stale text[];
BEGIN
    SELECT coalesce(array_agg('presence: ' || g.p), '{}')
      INTO stale
      FROM (SELECT (i->>'player_id')::uuid AS p, (i->>'last_seen')::timestamptz AS seen
              FROM jsonb_array_elements(items) AS i) g
      LEFT JOIN LATERAL (SELECT s.last_seen FROM presence_seen s WHERE s.player_id = g.p FOR UPDATE) c ON true
     WHERE c.last_seen IS DISTINCT FROM g.seen;
    IF cardinality(stale) > 0 THEN
        RETURN stale;
    END IF;
    DELETE FROM presence_seen
     WHERE player_id IN (SELECT (i->>'player_id')::uuid FROM jsonb_array_elements(items) AS i);
    RETURN '{}';
END
$$;

-- Lab sessions: the latest working copy of each session; the last write in the batch wins, and a
-- write without a snapshot removes the copy.
CREATE FUNCTION questlog_beside_lab_workspace(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE sql AS $$
    WITH w AS (
        SELECT DISTINCT ON (p, l) p, l, snap, step
          FROM (SELECT (i->>'player_id')::uuid AS p, i->>'lab_id' AS l,
                       nullif(i->'vfs_snapshot', 'null'::jsonb) AS snap,
                       (i->>'current_step')::integer AS step, ord
                  FROM jsonb_array_elements(items) WITH ORDINALITY AS x(i, ord)) e
         ORDER BY p, l, ord DESC
    ), removed AS (
        DELETE FROM lab_workspaces x USING w
         WHERE w.snap IS NULL AND x.player_id = w.p AND x.lab_id = w.l
    )
    INSERT INTO lab_workspaces (player_id, lab_id, vfs_snapshot, current_step, saved_at)
    SELECT p, l, snap, step, at FROM w WHERE snap IS NOT NULL
    ON CONFLICT (player_id, lab_id) DO UPDATE
       SET vfs_snapshot = EXCLUDED.vfs_snapshot, current_step = EXCLUDED.current_step,
           saved_at = EXCLUDED.saved_at;
    SELECT '{}'::text[];
$$;
