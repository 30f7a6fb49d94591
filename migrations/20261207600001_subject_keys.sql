-- Crypto-shredding (see ARCHITECTURE.md, "Erasure"): one key per player whose personal data the
-- log holds sealed. Beside the log, not in it: a key is created by the append of the first event
-- sealed with it, and destroyed (set to NULL) by the player's erasure, after which every field
-- sealed with it reads as erased. No replay needs this table to be consistent: a missing key
-- means erased data, never a failed fold.
CREATE TABLE subject_keys (
    player_id  uuid PRIMARY KEY,
    -- 32 random bytes (XChaCha20-Poly1305), base64; NULL once the player is erased.
    key        text,
    created_at timestamptz NOT NULL,
    erased_at  timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);

-- New keys made by the writer for a batch's first sealed fields of a player. A player whose key
-- another process stored first conflicts as `subject_key: <player>` (the writer then seals again
-- with the stored key); an erased player's stays erased (what was sealed with the new key can
-- never be opened: it was never stored).
CREATE FUNCTION questlog_beside_subject_key(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    stored text;
    refused text[] := '{}';
BEGIN
    FOR item IN SELECT value FROM jsonb_array_elements(items) LOOP
        INSERT INTO subject_keys (player_id, key, created_at)
        VALUES ((item->>'player_id')::uuid, item->>'key', at)
        ON CONFLICT (player_id) DO NOTHING;
        SELECT key INTO stored FROM subject_keys WHERE player_id = (item->>'player_id')::uuid;
        IF stored IS NOT NULL AND stored <> item->>'key' THEN
            refused := refused || ('subject_key: ' || (item->>'player_id'));
        END IF;
    END LOOP;
    RETURN refused;
END
$$;

-- A player's erasure: its key is destroyed (a player without one gets an erased row, so a key is
-- never made for it later) and its sessions end.
CREATE FUNCTION questlog_beside_subject_erased(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE sql AS $$
    INSERT INTO subject_keys (player_id, key, created_at, erased_at)
    SELECT DISTINCT (i->>'player_id')::uuid, NULL::text, at, at FROM jsonb_array_elements(items) AS i
    ON CONFLICT (player_id) DO UPDATE
       SET key = NULL, erased_at = coalesce(subject_keys.erased_at, EXCLUDED.erased_at);
    UPDATE auth_sessions SET ended_at = at, end_reason = 'erased'
     WHERE ended_at IS NULL
       AND identity IN (SELECT (i->>'player_id')::uuid FROM jsonb_array_elements(items) AS i);
    SELECT '{}'::text[];
$$;
