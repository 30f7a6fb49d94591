//! The level curve and the streak rule, as properties.

use chrono::{Days, NaiveDate};
use proptest::prelude::*;

use crate::rules::{level_for_xp, xp_for_level, Streak};

#[test]
fn the_level_curve_matches_the_contract_at_its_corners() {
    let table = [
        (0, 1),
        (199, 1),
        (200, 2),
        (999, 9),
        (1_000, 10),
        (1_499, 10),
        (1_500, 11),
        (1_999, 11),
        (2_000, 12),
    ];
    for (xp, level) in table {
        assert_eq!(level_for_xp(xp), level, "{xp} XP");
    }
    assert_eq!(
        (
            xp_for_level(1),
            xp_for_level(2),
            xp_for_level(10),
            xp_for_level(11),
            xp_for_level(20)
        ),
        (0, 200, 1_000, 1_500, 6_000)
    );
}

/// The highest level the curve can name; beyond its XP the level stays there.
const TOP: u32 = u32::MAX;

proptest! {
    #[test]
    fn the_xp_to_reach_a_level_is_at_that_level(level in 1..=TOP) {
        prop_assert_eq!(level_for_xp(xp_for_level(level)), level);
    }

    #[test]
    fn one_xp_short_of_a_level_is_the_level_below(level in 2..=TOP) {
        prop_assert_eq!(level_for_xp(xp_for_level(level) - 1), level - 1);
    }

    #[test]
    fn more_xp_never_means_a_lower_level(a in any::<u64>(), b in any::<u64>()) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(level_for_xp(low) <= level_for_xp(high));
    }

    #[test]
    fn xp_lies_between_its_levels_threshold_and_the_next(xp in 0..xp_for_level(TOP)) {
        let level = level_for_xp(xp);
        prop_assert!(level >= 1);
        prop_assert!(xp_for_level(level) <= xp, "{} XP is level {}", xp, level);
        prop_assert!(xp < xp_for_level(level + 1), "{} XP is level {}", xp, level);
    }
}

fn date(offset: u16) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .checked_add_days(Days::new(u64::from(offset)))
        .unwrap()
}

fn fold(days: &[NaiveDate]) -> Streak {
    days.iter()
        .fold(Streak::default(), |s, d| s.after_activity(*d).unwrap_or(s))
}

/// (length of the final run, length of the longest run) of consecutive days in a sorted list,
/// counting a repeated day once.
fn runs(sorted: &[NaiveDate]) -> (u32, u32) {
    let mut current = 0;
    let mut longest = 0;
    let mut last: Option<NaiveDate> = None;
    for d in sorted {
        current = match last {
            Some(l) if l == *d => current,
            Some(l) if l.succ_opt() == Some(*d) => current + 1,
            _ => 1,
        };
        longest = longest.max(current);
        last = Some(*d);
    }
    (current, longest)
}

proptest! {
    #[test]
    fn the_streak_never_exceeds_the_longest(offsets in prop::collection::vec(0..60_u16, 0..80)) {
        let days: Vec<NaiveDate> = offsets.into_iter().map(date).collect();
        let mut s = Streak::default();
        for d in &days {
            if let Some(next) = s.after_activity(*d) {
                prop_assert!(next.longest >= s.longest);
                s = next;
            }
            prop_assert!(s.current <= s.longest);
        }
    }

    #[test]
    fn in_day_order_the_streak_is_the_final_run_and_longest_the_longest_run(
        offsets in prop::collection::vec(0..60_u16, 0..80)
    ) {
        let mut days: Vec<NaiveDate> = offsets.into_iter().map(date).collect();
        days.sort_unstable();
        let s = fold(&days);
        prop_assert_eq!((s.current, s.longest), runs(&days));
        prop_assert_eq!(s.last_day, days.last().copied());
    }

    #[test]
    fn activity_on_a_day_before_the_last_changes_nothing(
        offsets in prop::collection::vec(1..60_u16, 1..40),
        back in 0..60_u16,
    ) {
        let mut days: Vec<NaiveDate> = offsets.into_iter().map(date).collect();
        days.sort_unstable();
        let s = fold(&days);
        let last = s.last_day.unwrap();
        let earlier = date(back).min(last);
        prop_assert_eq!(s.after_activity(earlier), None);
    }
}
