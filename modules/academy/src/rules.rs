//! The arithmetic of progression: the level curve and the streak rule.

use chrono::NaiveDate;

/// The cumulative XP needed to reach `level`: `L*100` for L ≤ 10, else `1000 + (L-10)*500`;
/// level 1 is where everyone starts, at 0 XP.
pub fn xp_for_level(level: u32) -> u64 {
    let level = u64::from(level);
    match level {
        0 | 1 => 0,
        2..=10 => level * 100,
        _ => 1000 + (level - 10) * 500,
    }
}

/// The level a player with `xp` total XP stands at.
pub fn level_for_xp(xp: u64) -> u32 {
    if xp < 200 {
        return 1;
    }
    if xp < 1500 {
        // 200..=1499 → 2..=10 (level 10 starts at 1000 and lasts until 1500).
        return u32::try_from((xp / 100).min(10)).unwrap_or(10);
    }
    let above = (xp - 1000) / 500;
    u32::try_from(10 + above).unwrap_or(u32::MAX)
}

/// A streak as it stands: the current run, the longest run, and the last local day of activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streak {
    pub current: u32,
    pub longest: u32,
    pub last_day: Option<NaiveDate>,
}

impl Streak {
    /// The streak after activity on local day `today`, or `None` when nothing changes: the same
    /// day again, or a day before the last one (a time-zone change can move the local date back).
    pub fn after_activity(&self, today: NaiveDate) -> Option<Self> {
        let current = match self.last_day {
            None => 1,
            Some(last) if today <= last => return None,
            Some(last) if last.succ_opt() == Some(today) => self.current.saturating_add(1),
            Some(_) => 1,
        };
        Some(Self {
            current,
            longest: self.longest.max(current),
            last_day: Some(today),
        })
    }
}
