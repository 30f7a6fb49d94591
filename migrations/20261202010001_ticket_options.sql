-- A subscribe ticket keeps the subscription's options (the options its topics' kinds read, by
-- name) rather than one column per option: the topics are the modules', and so are their options.
-- `leaderboard_limit` stays, nullable, for tickets issued before (they live 60 s).
ALTER TABLE subscribe_tickets ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE subscribe_tickets ALTER COLUMN leaderboard_limit DROP NOT NULL;
