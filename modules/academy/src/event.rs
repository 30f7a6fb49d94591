//! Events: immutable facts, serde-stable. Each is stored as its `type` and its `data` object with a
//! schema version, so an old event is read through [`DomainEvent::from_parts`] even after its shape moves on.

use chrono::{DateTime, NaiveDate, Utc};
use questlog_domain::{DomainEvent, LegacyField, Personal};
use serde::{Deserialize, Serialize};

use crate::values::{Achievement, LabId, ModuleNo, PlayerId, Timezone, Username};

/// Every event the academy records (a lab session's are the lab-sessions module's). Adding a
/// variant is safe; changing one means a new schema version and an upcast in [`DomainEvent::from_parts`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// Catalog: a module was defined or redefined.
    ModuleDefined {
        module: ModuleNo,
        title: String,
        requires: Vec<ModuleNo>,
    },
    /// Catalog: a lab was defined or redefined.
    LabDefined {
        lab_id: LabId,
        module: ModuleNo,
        title: String,
        xp: u32,
    },
    /// Username stream: the name is held by this player for good.
    UsernameClaimed {
        player_id: PlayerId,
        username: Personal<Username>,
    },
    /// Player: registered; starts at level 1 with 0 XP. The name is the player's personal data
    /// (sealed in the log, erased with the player).
    PlayerRegistered {
        player_id: PlayerId,
        username: Personal<Username>,
    },
    /// Player: the time zone whose local days count for streaks.
    TimezoneSet { timezone: Timezone },
    /// Player: a lab was completed and its catalog XP granted.
    LabCompleted {
        lab_id: LabId,
        module: ModuleNo,
        xp: u32,
    },
    /// Player: every lab of the module is complete.
    ModuleCompleted { module: ModuleNo },
    /// Player: the XP total crossed into a higher level.
    LeveledUp { level: u32 },
    /// Player: an achievement was unlocked (built-in or granted by an admin).
    AchievementUnlocked { achievement: Achievement },
    /// Player: activity on a local day moved the streak.
    StreakUpdated {
        day: NaiveDate,
        streak: u32,
        longest: u32,
        at: DateTime<Utc>,
    },
    /// Player: XP taken back by an admin (a compensating event, for cheats).
    XpRevoked { xp: u32, reason: String },
    /// Player: a heartbeat after being offline.
    CameOnline { current_lab: Option<LabId> },
    /// Player: a heartbeat naming another lab than the last one.
    CurrentLabChanged { current_lab: Option<LabId> },
    /// Player: no heartbeat since `last_seen`, for longer than the presence timeout.
    WentOffline { last_seen: DateTime<Utc> },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &[
        "module_defined",
        "lab_defined",
        "username_claimed",
        "player_registered",
        "timezone_set",
        "lab_completed",
        "module_completed",
        "leveled_up",
        "achievement_unlocked",
        "streak_updated",
        "xp_revoked",
        "came_online",
        "current_lab_changed",
        "went_offline",
    ];

    /// Usernames were recorded in plain text before they were sealed.
    const LEGACY_PERSONAL: &'static [LegacyField] = &[
        LegacyField {
            event_type: "username_claimed",
            field: "username",
            subject: "player_id",
        },
        LegacyField {
            event_type: "player_registered",
            field: "username",
            subject: "player_id",
        },
    ];

    /// The stored `type` of this event.
    fn event_type(&self) -> &'static str {
        match self {
            Self::ModuleDefined { .. } => "module_defined",
            Self::LabDefined { .. } => "lab_defined",
            Self::UsernameClaimed { .. } => "username_claimed",
            Self::PlayerRegistered { .. } => "player_registered",
            Self::TimezoneSet { .. } => "timezone_set",
            Self::LabCompleted { .. } => "lab_completed",
            Self::ModuleCompleted { .. } => "module_completed",
            Self::LeveledUp { .. } => "leveled_up",
            Self::AchievementUnlocked { .. } => "achievement_unlocked",
            Self::StreakUpdated { .. } => "streak_updated",
            Self::XpRevoked { .. } => "xp_revoked",
            Self::CameOnline { .. } => "came_online",
            Self::CurrentLabChanged { .. } => "current_lab_changed",
            Self::WentOffline { .. } => "went_offline",
        }
    }
}
