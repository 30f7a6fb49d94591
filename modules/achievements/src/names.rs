//! The achievements' names on the kernel's seams.

use questlog_bus::ProjectionName;

/// Achievements and each player's progress (`rm_achievements`, `rm_player_achievements`).
pub const ACHIEVEMENTS: ProjectionName = ProjectionName::new("achievements");

/// The change topic of the projection's announcements: an achievement, or `<achievement>:<player>`.
pub const CHANGES: &str = "achievements";
