-- Sessions of refresh tokens (command-api's `sessions.rs`): state beside the log, not history.
-- A session is opened by whatever logs an identity in (a module's route); each refresh rotates
-- its generation, and a refresh token of an older generation ends it (a reuse means the token
-- was copied). Only the generation is kept: refresh tokens are signed, so no token or hash of
-- one is stored.
CREATE TABLE auth_sessions (
    session_id   uuid PRIMARY KEY,
    identity     uuid        NOT NULL,
    role         text        NOT NULL,
    generation   bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    refreshed_at timestamptz NOT NULL,
    -- When the current refresh token expires.
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    -- logout, logout_all, password_changed, refresh_reused, …
    end_reason   text
);

CREATE INDEX auth_sessions_identity ON auth_sessions (identity) WHERE ended_at IS NULL;
