-- The deployment's name key (see ARCHITECTURE.md, "Erasure"): a stream named for a name that must
-- be found by its value (a claim on a username) is named for the HMAC-SHA256 of the name under
-- this key, so the log never shows the name. One row, made by the first process that serves
-- commands (`questlog_store::sealing::name_key`), kept for the deployment's life and carried by
-- `questlog export`: a key made again would name every later claim differently.
CREATE TABLE name_key (
    -- 32 random bytes, hex.
    key        text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One key per deployment.
CREATE UNIQUE INDEX name_key_one ON name_key ((true));
