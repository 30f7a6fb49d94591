-- An erase_me confirmed with the account's username (the player has no name in the log) carries
-- that confirmation, lowercased, as `confirm_username`: the erasure's append checks it against
-- the account before deleting it, and refuses the whole append as `account_confirm: <player>`
-- when the account has no such username. Otherwise as before: the account and the failed logins
-- counted against its email are deleted.
CREATE OR REPLACE FUNCTION questlog_beside_account_erased(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    refused text[];
BEGIN
    SELECT coalesce(array_agg('account_confirm: ' || (i->>'player_id')), '{}') INTO refused
      FROM jsonb_array_elements(items) AS i
     WHERE i ? 'confirm_username'
       AND NOT EXISTS (SELECT 1 FROM accounts a
                        WHERE a.player_id = (i->>'player_id')::uuid
                          AND a.username_key = i->>'confirm_username');
    IF cardinality(refused) > 0 THEN
        RETURN refused;
    END IF;
    WITH gone AS (
        DELETE FROM accounts a USING jsonb_array_elements(items) AS i
         WHERE a.player_id = (i->>'player_id')::uuid
        RETURNING a.email_key
    )
    DELETE FROM account_login_attempts l USING gone WHERE l.email_key = gone.email_key;
    RETURN '{}';
END
$$;
