//! The academy's built-in achievements, as achievements of the achievements module defined in
//! code: `decide` unlocks them (`achievement_unlocked` on the player's stream, when progress
//! earns one or an admin grants it), and the achievements projection folds those events into
//! each player's line, so `GET /v1/achievements` lists them with their rarity and a player's
//! achievements include them.

use questlog_achievements::{BuiltinAchievement, BuiltinAchievementsExt as _};
use questlog_domain::App;
use questlog_projector::Decoded;
use uuid::Uuid;

use crate::event::Event;
use crate::stream::StreamId;
use crate::values::Achievement;

/// Each built-in achievement: its id, title and description.
pub const BUILTIN: &[(&str, &str, &str)] = &[
    (Achievement::FIRST_LAB, "First lab", "Complete a lab"),
    (Achievement::TEN_LABS, "Ten labs", "Complete ten labs"),
    (
        Achievement::FIRST_MODULE,
        "First module",
        "Complete every lab of a module",
    ),
    (
        Achievement::STREAK_7,
        "Seven-day streak",
        "Be active on seven days in a row",
    ),
    (
        Achievement::STREAK_30,
        "Thirty-day streak",
        "Be active on thirty days in a row",
    ),
    (Achievement::LEVEL_5, "Level 5", "Reach level 5"),
    (Achievement::LEVEL_10, "Level 10", "Reach level 10"),
];

/// The player `decoded` unlocks the achievement `id` for: an `achievement_unlocked` of it on the
/// player's stream.
pub fn awarded(decoded: &Decoded, id: &str) -> Option<Uuid> {
    match decoded.event.get::<Event>()? {
        Event::AchievementUnlocked { achievement } if achievement.as_str() == id => {
            match decoded.recorded.stream_id.parse::<StreamId>() {
                Ok(StreamId::Player(player)) => Some(player.0),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Registers the built-in achievements.
pub(crate) fn register(app: &mut App) {
    for (id, title, description) in BUILTIN {
        app.add_builtin_achievement(BuiltinAchievement {
            id,
            title,
            description,
            awarded,
        });
    }
}
