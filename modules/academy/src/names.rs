//! The academy's names on the kernel's seams: its projections (checkpoints, leadership locks,
//! announcement subjects) and its live topics, declared once for the projectors that produce them
//! and the reads that follow them.

use questlog_bus::{ProjectionName, TopicKind};

/// Players' profiles and the leaderboard (`rm_players`, `rm_leaderboard_history`).
pub const PLAYERS: ProjectionName = ProjectionName::new("players");
/// Modules and labs (`rm_modules`, `rm_labs`).
pub const CATALOG: ProjectionName = ProjectionName::new("catalog");

/// One player's profile: `player:<id>`.
pub const PLAYER_TOPIC: TopicKind = TopicKind::new("player");
/// The top of the leaderboard: `leaderboard`.
pub const LEADERBOARD_TOPIC: TopicKind = TopicKind::new("leaderboard");
/// The change topic on which the players projection announces a change of the XP board (a
/// player's XP, registration or erasure), keyed by player: the topic kind's name.
pub const LEADERBOARD_CHANGES: &str = "leaderboard";
/// The catalog's modules and labs (announced, not subscribable): `catalog`.
pub const CATALOG_TOPIC: TopicKind = TopicKind::new("catalog");
