-- The accounts module's state beside the log (see ARCHITECTURE.md, "Accounts"): credentials and
-- contact data, which are not history and must be deletable, and failed logins, which are
-- counters. The log records the facts (`account_registered`, `password_changed`).

-- One row per account: written by `questlog_beside_account` in the registration's append.
CREATE TABLE accounts (
    player_id           uuid PRIMARY KEY,
    email               text        NOT NULL,
    -- The email lowercased: unique, what a login looks up.
    email_key           text        NOT NULL UNIQUE,
    username            text,
    username_key        text UNIQUE,
    -- argon2id, PHC string (its parameters and salt inside).
    password_hash       text        NOT NULL,
    registered_at       timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);

-- Login attempts per email within the lockout window: one row per attempt that has not
-- succeeded (yet). An attempt is recorded before its password is checked, so parallel guesses
-- count too; a success deletes the email's rows.
CREATE TABLE account_login_attempts (
    attempt_id   uuid PRIMARY KEY,
    email_key    text        NOT NULL,
    attempted_at timestamptz NOT NULL
);

CREATE INDEX account_login_attempts_email ON account_login_attempts (email_key, attempted_at);

-- A registration: records the account, claiming its email and username. Items are taken in
-- order, so of two registrations of one email in a batch the first wins and the second conflicts
-- as `account_email: <its player id>` (a username as `account_username: <id>`). The append lock
-- is held (see 20261202000001_beside.sql), so every committed account is seen.
CREATE FUNCTION questlog_beside_account(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    refused text[] := '{}';
BEGIN
    FOR item IN SELECT value FROM jsonb_array_elements(items) LOOP
        IF EXISTS (SELECT 1 FROM accounts WHERE email_key = item->>'email_key') THEN
            refused := refused || ('account_email: ' || (item->>'player_id'));
        ELSIF item->>'username_key' IS NOT NULL
              AND EXISTS (SELECT 1 FROM accounts WHERE username_key = item->>'username_key') THEN
            refused := refused || ('account_username: ' || (item->>'player_id'));
        ELSE
            INSERT INTO accounts (player_id, email, email_key, username, username_key,
                                  password_hash, registered_at, password_changed_at)
            VALUES ((item->>'player_id')::uuid, item->>'email', item->>'email_key',
                    item->>'username', item->>'username_key', item->>'password_hash', at, at);
        END IF;
    END LOOP;
    RETURN refused;
END
$$;

-- A password change: the account's new hash.
CREATE FUNCTION questlog_beside_account_password(items jsonb, at timestamptz) RETURNS text[]
LANGUAGE sql AS $$
    UPDATE accounts a SET password_hash = i->>'password_hash', password_changed_at = at
      FROM jsonb_array_elements(items) AS i
     WHERE a.player_id = (i->>'player_id')::uuid;
    SELECT '{}'::text[];
$$;

-- Attempts older than the window are deleted a few at a time by every login.
CREATE INDEX account_login_attempts_time ON account_login_attempts (attempted_at);
