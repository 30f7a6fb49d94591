//! The achievements' events: a definition on the achievement's stream, and a player's progress,
//! unlocks and revocations on the stream of that player's achievement.

use questlog_domain::values::PlayerId;
use questlog_domain::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::{AchievementId, Rule};

/// Every event the achievements record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// Achievement: defined, or redefined (every field as it is from now on).
    AchievementDefined {
        achievement: AchievementId,
        title: String,
        description: String,
        hidden: bool,
        goal: i64,
        rule: Option<Rule>,
        authoritative: bool,
    },
    /// Player's achievement: progress set (it only rises).
    AchievementProgressed {
        achievement: AchievementId,
        player_id: PlayerId,
        progress: i64,
    },
    /// Player's achievement: unlocked (its goal reached, unlocked by the player, or granted).
    AchievementAwarded {
        achievement: AchievementId,
        player_id: PlayerId,
    },
    /// Player's achievement: taken back by an admin (a compensating event).
    AchievementRevoked {
        achievement: AchievementId,
        player_id: PlayerId,
        reason: String,
    },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &[
        "achievement_defined",
        "achievement_progressed",
        "achievement_awarded",
        "achievement_revoked",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::AchievementDefined { .. } => "achievement_defined",
            Self::AchievementProgressed { .. } => "achievement_progressed",
            Self::AchievementAwarded { .. } => "achievement_awarded",
            Self::AchievementRevoked { .. } => "achievement_revoked",
        }
    }
}
