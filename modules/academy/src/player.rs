//! A player's progression, folded from the events of its `player-<id>` stream.

pub mod projection;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::event::Event;
use crate::rules::{level_for_xp, Streak};
use crate::values::{Achievement, LabId, LabSet, ModuleNo, PlayerId, Timezone, Username};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayerState {
    /// `None` until `register_player`.
    pub registered: Option<Registration>,
    pub timezone: Timezone,
    pub xp: u64,
    pub level: u32,
    pub completed_labs: LabSet,
    pub completed_modules: BTreeSet<ModuleNo>,
    pub achievements: BTreeSet<Achievement>,
    pub streak: Streak,
    pub last_activity: Option<DateTime<Utc>>,
    /// Online since a heartbeat, until the presence reaper says otherwise.
    pub online: bool,
    /// The lab the last heartbeat named.
    pub current_lab: Option<LabId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub player_id: PlayerId,
    /// `None` once the player is erased.
    pub username: Option<Username>,
}

impl PlayerState {
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::PlayerRegistered {
                player_id,
                username,
            } => {
                self.registered = Some(Registration {
                    player_id: *player_id,
                    username: username.value().cloned(),
                });
                self.level = 1;
            }
            Event::TimezoneSet { timezone } => self.timezone = *timezone,
            Event::LabCompleted { lab_id, xp, .. } => {
                self.completed_labs.insert(lab_id);
                self.xp = self.xp.saturating_add(u64::from(*xp));
                self.level = level_for_xp(self.xp);
            }
            Event::ModuleCompleted { module } => {
                self.completed_modules.insert(*module);
            }
            Event::AchievementUnlocked { achievement } => {
                self.achievements.insert(achievement.clone());
            }
            Event::StreakUpdated {
                day,
                streak,
                longest,
                at,
            } => {
                self.streak = Streak {
                    current: *streak,
                    longest: *longest,
                    last_day: Some(*day),
                };
                self.last_activity = Some(*at);
            }
            Event::XpRevoked { xp, .. } => {
                self.xp = self.xp.saturating_sub(u64::from(*xp));
                self.level = level_for_xp(self.xp);
            }
            Event::CameOnline { current_lab } => {
                self.online = true;
                self.current_lab.clone_from(current_lab);
            }
            Event::CurrentLabChanged { current_lab } => {
                self.current_lab.clone_from(current_lab);
            }
            Event::WentOffline { .. } => {
                self.online = false;
                self.current_lab = None;
            }
            // The level follows the XP; `LeveledUp` is the notification of it. The rest belong to
            // other streams.
            Event::LeveledUp { .. }
            | Event::ModuleDefined { .. }
            | Event::LabDefined { .. }
            | Event::UsernameClaimed { .. } => {}
        }
    }

    pub fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// The player's erasure: its name is gone (its other state is not personal data).
    pub fn erase(&mut self) {
        if let Some(registration) = &mut self.registered {
            registration.username = None;
        }
    }
}
