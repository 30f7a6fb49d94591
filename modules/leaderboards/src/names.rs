//! The leaderboards' names on the kernel's seams: the projection, the change topic its
//! announcements carry (keyed by board) and the live topic kind clients follow.

use questlog_bus::{ProjectionName, TopicKind};

/// Boards, seasons and entries (`rm_leaderboards`, `rm_leaderboard_seasons`,
/// `rm_leaderboard_entries`).
pub const LEADERBOARDS: ProjectionName = ProjectionName::new("leaderboards");

/// The change topic of the projection's announcements, keyed by board.
pub const CHANGES: &str = "leaderboards";

/// A board's current season's top: `leaderboard:<id>` (the bare `leaderboard` stays the
/// academy's XP board).
pub const BOARD_TOPIC: TopicKind = TopicKind::new("leaderboard");
