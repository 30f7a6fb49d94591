-- What commands keep beside the log, generic: a batch carries its beside writes grouped by kind,
-- and each kind is written by the SQL function its module defines,
-- `questlog_beside_<kind>(items jsonb, at timestamptz) RETURNS text[]`, in the append's own
-- statement. A function that returns conflicts (a claim that no longer holds) makes the whole
-- append fail with SQLSTATE QL409, the conflicts one per line: nothing of the batch is written.
-- Every beside function runs after the append lock is taken, so they all see every append
-- committed before theirs.

DROP FUNCTION questlog_append(text[], bigint[], uuid[], text[], text[], integer[], jsonb[], jsonb[],
    uuid[], text[], text[], uuid[], integer[], integer[], uuid[], timestamptz, uuid[], text[],
    jsonb[], integer[], uuid[], timestamptz[]);

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
    beside_kinds    text[],
    beside_items    jsonb[],
    beside_at       timestamptz,
    OUT positions   bigint[],
    OUT versions    bigint[],
    OUT head        bigint,
    OUT conflicts   text[]
) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    refused text[] := '{}';
    c text[];
BEGIN
    SELECT a.positions, a.versions, a.head, a.conflicts
      INTO positions, versions, head, conflicts
      FROM questlog_append(expect_streams, expect_versions, ev_ids, ev_streams, ev_types, ev_schemas,
                           ev_data, ev_meta, idem_identities, idem_keys, idem_hashes, idem_commands,
                           idem_firsts, idem_counts) a;
    IF cardinality(conflicts) > 0 THEN
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(beside_kinds), 0) LOOP
        IF beside_kinds[i] !~ '^[a-z_]+$' THEN
            RAISE EXCEPTION 'not a beside kind: %', beside_kinds[i] USING ERRCODE = 'invalid_parameter_value';
        END IF;
        EXECUTE format('SELECT questlog_beside_%s($1, $2)', beside_kinds[i])
           INTO c USING beside_items[i], beside_at;
        refused := refused || coalesce(c, '{}');
    END LOOP;
    IF cardinality(refused) > 0 THEN
        RAISE EXCEPTION '%', array_to_string(refused, E'\n') USING ERRCODE = 'QL409';
    END IF;
END
$$;

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
