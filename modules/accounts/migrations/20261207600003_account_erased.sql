-- An erased player's account is deleted in the erasure's own append: its email, username and
-- password hash are gone (they never were in the log), and so are the failed logins counted
-- against its email. Its key and sessions are the kernel's (`questlog_beside_subject_erased`).
CREATE FUNCTION questlog_beside_account_erased(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM accounts a USING jsonb_array_elements(items) AS i
         WHERE a.player_id = (i->>'player_id')::uuid
        RETURNING a.email_key
    )
    DELETE FROM account_login_attempts l USING gone WHERE l.email_key = gone.email_key;
    SELECT '{}'::text[];
$$;
