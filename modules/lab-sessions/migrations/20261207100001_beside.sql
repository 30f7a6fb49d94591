-- The lab sessions module's beside write (see the kernel's `questlog_append`,
-- 20261202000001_beside.sql): a session's working copy, on the `lab_workspaces` table
-- (20261129000001_sessions_presence_chat.sql). The academy's 20261202000002_beside.sql defined it
-- before lab sessions were their own module; a database that applied it gets the same text again,
-- hence `OR REPLACE`.

-- The latest working copy of each session; the last write in the batch wins, and a write without
-- a snapshot removes the copy.
CREATE OR REPLACE FUNCTION questlog_beside_lab_workspace(items jsonb, at timestamptz) RETURNS text[]
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
