//! The leaderboards' events: a board's definition and the start of each season on the board's
//! stream, and every submission on the stream of the board's entry for one player.

use chrono::{DateTime, Utc};
use questlog_domain::values::PlayerId;
use questlog_domain::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{BoardId, Operator, Order, Reset};

/// Every event the leaderboards record. Adding a variant is safe; changing one means a new
/// schema version and an upcast in [`DomainEvent::from_parts`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// Board: defined, or redefined (every field as it is from now on).
    LeaderboardDefined {
        leaderboard: BoardId,
        title: String,
        order: Order,
        operator: Operator,
        reset: Option<Reset>,
        authoritative: bool,
        /// When it was (re)defined: a new reset schedule ticks from here.
        at: DateTime<Utc>,
    },
    /// Board: a season began (season 1 with the first definition, the next at each tick of the
    /// reset schedule, with the tick's own time).
    LeaderboardSeasonStarted {
        leaderboard: BoardId,
        season: u32,
        started_at: DateTime<Utc>,
    },
    /// Entry: a score was submitted for the player in the season (the board's operator makes
    /// the record of it; every submission is kept, so a redefinition recomputes from them).
    ScoreSubmitted {
        leaderboard: BoardId,
        player_id: PlayerId,
        season: u32,
        score: i64,
        subscore: i64,
        metadata: Option<Map<String, Value>>,
    },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &[
        "leaderboard_defined",
        "leaderboard_season_started",
        "score_submitted",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::LeaderboardDefined { .. } => "leaderboard_defined",
            Self::LeaderboardSeasonStarted { .. } => "leaderboard_season_started",
            Self::ScoreSubmitted { .. } => "score_submitted",
        }
    }
}
