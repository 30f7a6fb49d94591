-- At most one open version per player in the leaderboard's history, as the projection keeps it;
-- the index also tells the planner so: closing a batch's open versions probes it per player
-- rather than scanning the history (which, without statistics, the planner would choose).
CREATE UNIQUE INDEX rm_leaderboard_history_open ON rm_leaderboard_history (player_id)
    WHERE valid_to = 9223372036854775807;
