//! Achievements a module defines in code: built in, not appended as events. A built-in
//! achievement is defined from the log's start ("at position 0"), with a goal of 1, never
//! hidden, and authoritative: the module that registers it decides when a player earns it, into
//! its own events, and says which event awards it to whom ([`BuiltinAchievement::awarded`]). The
//! achievements projection folds those events like a rule's from the log's first event on, so a
//! player's line (progress, the position and time it was unlocked at, every version for
//! `as_of`) and the catalog's count and rarity are the same as an achievement defined as data.
//!
//! A module registers one with [`BuiltinAchievementsExt::add_builtin_achievement`]; the
//! academy's built-in achievements (`first_lab`, `streak_7`, …) are.

use std::sync::{Arc, PoisonError, RwLock};

use questlog_domain::App;
use questlog_projector::Decoded;
use uuid::Uuid;

use crate::values::AchievementId;

/// An achievement defined in code.
#[derive(Debug)]
pub struct BuiltinAchievement {
    /// Its id, an [`AchievementId`] (`[a-z0-9_]{1,64}`).
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The player the event awards the achievement `id` to, if it does.
    pub awarded: fn(&Decoded, &str) -> Option<Uuid>,
}

/// The built-in achievements of the running modules, shared by the achievements' commands,
/// projection and reads, whichever module registered first.
#[derive(Debug, Clone, Default)]
pub struct BuiltinAchievements(Arc<RwLock<Vec<Arc<BuiltinAchievement>>>>);

impl BuiltinAchievements {
    /// Whether `id` is a built-in achievement.
    pub fn contains(&self, id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|a| a.id == id)
    }

    /// Every built-in achievement, in registration order.
    pub fn all(&self) -> Vec<Arc<BuiltinAchievement>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Registers built-in achievements on the [`App`].
pub trait BuiltinAchievementsExt {
    /// Registers `achievement`.
    ///
    /// # Panics
    /// When its id is not an achievement id, or another built-in achievement has it.
    fn add_builtin_achievement(&mut self, achievement: BuiltinAchievement) -> &mut Self;

    /// The built-in achievements registered on this app (and any registered later).
    fn builtin_achievements(&mut self) -> BuiltinAchievements;
}

impl BuiltinAchievementsExt for App {
    fn add_builtin_achievement(&mut self, achievement: BuiltinAchievement) -> &mut Self {
        assert!(
            AchievementId::valid(achievement.id),
            "{:?} is not an achievement id",
            achievement.id
        );
        let all = self.builtin_achievements();
        assert!(
            !all.contains(achievement.id),
            "built-in achievement {} is registered twice",
            achievement.id
        );
        all.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(achievement));
        self
    }

    fn builtin_achievements(&mut self) -> BuiltinAchievements {
        self.part_mut::<BuiltinAchievements>().clone()
    }
}
