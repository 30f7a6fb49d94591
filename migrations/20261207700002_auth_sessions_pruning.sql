-- The sessions job (the accounts module's `prune.rs`) deletes sessions whose refresh token has
-- expired and those that ended a while ago: both found by an index, however many are live.
CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at);
CREATE INDEX auth_sessions_ended ON auth_sessions (ended_at) WHERE ended_at IS NOT NULL;
