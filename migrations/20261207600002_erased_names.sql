-- An erased player's name is gone from the read models that showed it (its row, and every
-- version of its history, keeps its place: boards show the entry as erased).
ALTER TABLE rm_players ALTER COLUMN username DROP NOT NULL;
ALTER TABLE rm_leaderboard_history ALTER COLUMN username DROP NOT NULL;
ALTER TABLE rm_presence ALTER COLUMN username DROP NOT NULL;
ALTER TABLE rm_presence_history ALTER COLUMN username DROP NOT NULL;
