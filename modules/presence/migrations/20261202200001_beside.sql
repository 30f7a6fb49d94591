-- The presence module's beside writes (see the kernel's `questlog_append`,
-- 20261202000001_beside.sql): a heartbeat's last-seen time and the reaper's claims, on the
-- `presence_seen` table (20261129000001_sessions_presence_chat.sql). The academy's
-- 20261202000002_beside.sql defined them before presence was its own module; a database that
-- applied it gets the same text again, hence `OR REPLACE`.

-- Presence: a heartbeat keeps the player's last-seen time.
CREATE OR REPLACE FUNCTION questlog_beside_presence_seen(items jsonb, at timestamptz) RETURNS text[]
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
CREATE OR REPLACE FUNCTION questlog_beside_presence_gone(items jsonb, at timestamptz) RETURNS text[]
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
