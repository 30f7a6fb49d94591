//! `update_streak`: today's activity, counted on the player's local day.

use super::{at, history, on_player, player, registered, streak_updated, tz, unlocked};
use crate::testing::given;
use crate::values::Achievement;
use crate::{Actor, Command, Event, StreamId};

fn with_streak(actor: Actor, on: &str, streak: u32, longest: u32) -> Vec<(StreamId, Event)> {
    history([
        registered(actor, "ada"),
        vec![streak_updated(
            actor,
            on,
            streak,
            longest,
            &format!("{on}T12:00:00Z"),
        )],
    ])
}

#[test]
fn the_first_activity_starts_a_streak_of_1() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(ada, at("2024-03-01T09:30:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-01",
            1,
            1,
            "2024-03-01T09:30:00Z",
        )]);
}

#[test]
fn activity_again_on_the_same_local_day_changes_nothing() {
    let ada = player(1);
    given(with_streak(ada, "2024-03-01", 4, 9))
        .when(ada, at("2024-03-01T23:59:59Z"), Command::UpdateStreak)
        .then(vec![]);
}

#[test]
fn activity_on_the_next_day_adds_one_and_keeps_a_longer_longest() {
    let ada = player(1);
    given(with_streak(ada, "2024-03-01", 4, 9))
        .when(ada, at("2024-03-02T00:00:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-02",
            5,
            9,
            "2024-03-02T00:00:00Z",
        )]);
}

#[test]
fn activity_on_the_next_day_raises_the_longest_when_the_streak_passes_it() {
    let ada = player(1);
    given(with_streak(ada, "2024-02-29", 3, 3))
        .when(ada, at("2024-03-01T08:00:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-01",
            4,
            4,
            "2024-03-01T08:00:00Z",
        )]);
}

#[test]
fn a_gap_of_a_day_or_more_resets_the_streak_to_1_and_keeps_the_longest() {
    let ada = player(1);
    given(with_streak(ada, "2024-03-01", 5, 5))
        .when(ada, at("2024-03-03T08:00:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-03",
            1,
            5,
            "2024-03-03T08:00:00Z",
        )]);
}

#[test]
fn a_local_day_before_the_last_one_changes_nothing() {
    // Moving from Auckland to Los Angeles can put today's local date before the last active day.
    let ada = player(1);
    given(history([
        with_streak(ada, "2024-03-02", 2, 2),
        vec![on_player(
            ada,
            Event::TimezoneSet {
                timezone: tz("America/Los_Angeles"),
            },
        )],
    ]))
    .when(ada, at("2024-03-02T03:00:00Z"), Command::UpdateStreak)
    .then(vec![]);
}

#[test]
fn the_day_that_counts_is_the_players_local_day_not_the_utc_date() {
    let ada = player(1);
    // 06:00 UTC on March 2 is 22:00 on March 1 in Los Angeles (PST, UTC-8): still the local day
    // of the last activity, though the UTC date has moved on.
    let in_la = history([
        with_streak(ada, "2024-03-01", 3, 3),
        vec![on_player(
            ada,
            Event::TimezoneSet {
                timezone: tz("America/Los_Angeles"),
            },
        )],
    ]);
    given(in_la.clone())
        .when(ada, at("2024-03-02T06:00:00Z"), Command::UpdateStreak)
        .then(vec![]);
    // 09:00 UTC on March 3 is 01:00 on March 3 in Los Angeles: two local days after March 1, a gap.
    given(in_la)
        .when(ada, at("2024-03-03T09:00:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-03",
            1,
            3,
            "2024-03-03T09:00:00Z",
        )]);
}

#[test]
fn the_next_local_day_extends_the_streak_even_when_the_utc_date_is_the_same() {
    let ada = player(1);
    // 11:30 UTC on March 1 is 00:30 on March 2 in Auckland (NZDT, UTC+13).
    given(history([
        registered(ada, "ada"),
        vec![
            on_player(
                ada,
                Event::TimezoneSet {
                    timezone: tz("Pacific/Auckland"),
                },
            ),
            streak_updated(ada, "2024-03-01", 1, 1, "2024-03-01T01:00:00Z"),
        ],
    ]))
    .when(ada, at("2024-03-01T11:30:00Z"), Command::UpdateStreak)
    .then(vec![streak_updated(
        ada,
        "2024-03-02",
        2,
        2,
        "2024-03-01T11:30:00Z",
    )]);
}

#[test]
fn the_seventh_day_in_a_row_unlocks_streak_7() {
    let ada = player(1);
    given(with_streak(ada, "2024-03-06", 6, 6))
        .when(ada, at("2024-03-07T12:00:00Z"), Command::UpdateStreak)
        .then(vec![
            streak_updated(ada, "2024-03-07", 7, 7, "2024-03-07T12:00:00Z"),
            unlocked(ada, Achievement::STREAK_7),
        ]);
}

#[test]
fn the_thirtieth_day_in_a_row_unlocks_streak_30() {
    let ada = player(1);
    given(history([
        with_streak(ada, "2024-03-29", 29, 29),
        vec![unlocked(ada, Achievement::STREAK_7)],
    ]))
    .when(ada, at("2024-03-30T12:00:00Z"), Command::UpdateStreak)
    .then(vec![
        streak_updated(ada, "2024-03-30", 30, 30, "2024-03-30T12:00:00Z"),
        unlocked(ada, Achievement::STREAK_30),
    ]);
}

#[test]
fn a_streak_achievement_already_held_is_not_unlocked_again() {
    let ada = player(1);
    given(history([
        with_streak(ada, "2024-03-10", 10, 10),
        vec![unlocked(ada, Achievement::STREAK_7)],
    ]))
    .when(ada, at("2024-03-11T12:00:00Z"), Command::UpdateStreak)
    .then(vec![streak_updated(
        ada,
        "2024-03-11",
        11,
        11,
        "2024-03-11T12:00:00Z",
    )]);
}

#[test]
fn a_streak_of_7_in_the_past_does_not_unlock_streak_7_after_a_reset() {
    let ada = player(1);
    // streak_7 is for the current run reaching 7; a longest of 7 from before is not looked at.
    given(with_streak(ada, "2024-03-01", 2, 7))
        .when(ada, at("2024-03-05T12:00:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-05",
            1,
            7,
            "2024-03-05T12:00:00Z",
        )]);
}

#[test]
fn the_sixth_day_in_a_row_unlocks_no_streak_achievement() {
    let ada = player(1);
    given(with_streak(ada, "2024-03-05", 5, 5))
        .when(ada, at("2024-03-06T12:00:00Z"), Command::UpdateStreak)
        .then(vec![streak_updated(
            ada,
            "2024-03-06",
            6,
            6,
            "2024-03-06T12:00:00Z",
        )]);
}

#[test]
fn the_twenty_ninth_day_in_a_row_does_not_unlock_streak_30() {
    let ada = player(1);
    given(history([
        with_streak(ada, "2024-03-28", 28, 28),
        vec![unlocked(ada, Achievement::STREAK_7)],
    ]))
    .when(ada, at("2024-03-29T12:00:00Z"), Command::UpdateStreak)
    .then(vec![streak_updated(
        ada,
        "2024-03-29",
        29,
        29,
        "2024-03-29T12:00:00Z",
    )]);
}
