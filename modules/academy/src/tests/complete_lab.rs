//! `complete_lab`: XP from the catalog, levels, modules, achievements and the day's streak activity.

use super::{
    at, complete, history, lab_completed, lab_defined, module_defined, on_player, player,
    registered, streak_updated, tz, unlocked,
};
use crate::testing::given;
use crate::values::{Achievement, LabId, LabSet};
use crate::{Actor, Event, RejectionKind, StreamId};

/// Module 1 (two labs, 200 XP in all) and module 2 which requires it.
fn catalog() -> Vec<(StreamId, Event)> {
    vec![
        module_defined(1, &[]),
        lab_defined("m1-a", 1, 50),
        lab_defined("m1-b", 1, 150),
        module_defined(2, &[1]),
        lab_defined("m2-a", 2, 300),
    ]
}

/// A registered player who has already been active on 2024-03-01 (UTC), so completing a lab
/// later that day moves no streak.
fn active_on_march_1(actor: Actor) -> Vec<(StreamId, Event)> {
    history([
        registered(actor, "ada"),
        vec![streak_updated(
            actor,
            "2024-03-01",
            1,
            1,
            "2024-03-01T07:00:00Z",
        )],
    ])
}

const LATER_ON_MARCH_1: &str = "2024-03-01T18:00:00Z";

#[test]
fn completing_a_lab_grants_its_catalog_xp_counts_as_activity_and_unlocks_first_lab() {
    let ada = player(1);
    given(history([catalog(), registered(ada, "ada")]))
        .when(ada, at("2024-03-01T09:00:00Z"), complete("m1-a"))
        .then(vec![
            lab_completed(ada, "m1-a", 1, 50),
            streak_updated(ada, "2024-03-01", 1, 1, "2024-03-01T09:00:00Z"),
            unlocked(ada, Achievement::FIRST_LAB),
        ]);
}

#[test]
fn the_xp_granted_is_the_catalogs_latest_definition_of_the_lab() {
    let ada = player(1);
    given(history([
        catalog(),
        vec![lab_defined("m1-a", 1, 80)],
        active_on_march_1(ada),
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m1-a"))
    .then(vec![
        lab_completed(ada, "m1-a", 1, 80),
        unlocked(ada, Achievement::FIRST_LAB),
    ]);
}

#[test]
fn a_lab_not_in_the_catalog_is_unknown_lab() {
    let ada = player(1);
    let r = given(history([catalog(), registered(ada, "ada")]))
        .when(ada, at(LATER_ON_MARCH_1), complete("m9-z"))
        .then_rejected("unknown_lab");
    assert_eq!(r.kind, RejectionKind::NotFound);
}

#[test]
fn a_lab_of_a_module_whose_requirements_are_incomplete_is_module_locked() {
    let ada = player(1);
    let r = given(history([
        catalog(),
        active_on_march_1(ada),
        // One of module 1's two labs is not enough.
        vec![lab_completed(ada, "m1-a", 1, 50)],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m2-a"))
    .then_rejected("module_locked");
    assert_eq!(r.kind, RejectionKind::Forbidden);
}

#[test]
fn a_lab_completed_before_is_lab_already_completed() {
    let ada = player(1);
    let r = given(history([
        catalog(),
        active_on_march_1(ada),
        vec![lab_completed(ada, "m1-a", 1, 50)],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m1-a"))
    .then_rejected("lab_already_completed");
    assert_eq!(r.kind, RejectionKind::Conflict);
}

#[test]
fn another_players_completion_does_not_count_as_mine() {
    let ada = player(1);
    let grace = player(2);
    given(history([
        catalog(),
        registered(grace, "grace"),
        vec![lab_completed(grace, "m1-a", 1, 50)],
        active_on_march_1(ada),
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m1-a"))
    .then(vec![
        lab_completed(ada, "m1-a", 1, 50),
        unlocked(ada, Achievement::FIRST_LAB),
    ]);
}

#[test]
fn completing_the_last_lab_of_a_module_completes_it_levels_up_and_unlocks_first_module() {
    let ada = player(1);
    given(history([
        catalog(),
        active_on_march_1(ada),
        vec![
            lab_completed(ada, "m1-a", 1, 50),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m1-b"))
    .then(vec![
        lab_completed(ada, "m1-b", 1, 150),
        on_player(ada, Event::LeveledUp { level: 2 }),
        on_player(ada, Event::ModuleCompleted { module: 1 }),
        unlocked(ada, Achievement::FIRST_MODULE),
    ]);
}

#[test]
fn a_completed_module_unlocks_the_modules_that_require_it() {
    let ada = player(1);
    given(history([
        catalog(),
        active_on_march_1(ada),
        vec![
            lab_completed(ada, "m1-a", 1, 50),
            unlocked(ada, Achievement::FIRST_LAB),
            lab_completed(ada, "m1-b", 1, 150),
            on_player(ada, Event::LeveledUp { level: 2 }),
            on_player(ada, Event::ModuleCompleted { module: 1 }),
            unlocked(ada, Achievement::FIRST_MODULE),
        ],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m2-a"))
    .then(vec![
        lab_completed(ada, "m2-a", 2, 300),
        on_player(ada, Event::LeveledUp { level: 5 }),
        on_player(ada, Event::ModuleCompleted { module: 2 }),
        unlocked(ada, Achievement::LEVEL_5),
    ]);
}

#[test]
fn a_module_with_no_requirements_is_unlocked_from_the_start() {
    let ada = player(1);
    given(history([
        catalog(),
        vec![module_defined(3, &[]), lab_defined("m3-a", 3, 10)],
        active_on_march_1(ada),
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m3-a"))
    .then(vec![
        lab_completed(ada, "m3-a", 3, 10),
        on_player(ada, Event::ModuleCompleted { module: 3 }),
        unlocked(ada, Achievement::FIRST_LAB),
        unlocked(ada, Achievement::FIRST_MODULE),
    ]);
}

#[test]
fn a_lab_that_stays_below_the_next_level_does_not_level_up() {
    let ada = player(1);
    given(history([
        catalog(),
        vec![
            module_defined(3, &[]),
            lab_defined("m3-a", 3, 149),
            lab_defined("m3-b", 3, 1),
        ],
        active_on_march_1(ada),
        vec![
            lab_completed(ada, "m1-a", 1, 50),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m3-a"))
    .then(vec![lab_completed(ada, "m3-a", 3, 149)]);
}

#[test]
fn jumping_several_levels_at_once_levels_up_once_to_the_level_reached() {
    let ada = player(1);
    given(history([
        vec![
            module_defined(1, &[]),
            lab_defined("big", 1, 1_200),
            lab_defined("small", 1, 1),
        ],
        active_on_march_1(ada),
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("big"))
    .then(vec![
        lab_completed(ada, "big", 1, 1_200),
        on_player(ada, Event::LeveledUp { level: 10 }),
        unlocked(ada, Achievement::FIRST_LAB),
        unlocked(ada, Achievement::LEVEL_5),
        unlocked(ada, Achievement::LEVEL_10),
    ]);
}

#[test]
fn reaching_500_xp_is_level_5_and_unlocks_level_5() {
    let ada = player(1);
    given(history([
        vec![
            module_defined(1, &[]),
            lab_defined("a", 1, 450),
            lab_defined("b", 1, 50),
            lab_defined("c", 1, 500),
        ],
        active_on_march_1(ada),
        vec![
            lab_completed(ada, "a", 1, 450),
            on_player(ada, Event::LeveledUp { level: 4 }),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("b"))
    .then(vec![
        lab_completed(ada, "b", 1, 50),
        on_player(ada, Event::LeveledUp { level: 5 }),
        unlocked(ada, Achievement::LEVEL_5),
    ]);
}

#[test]
fn reaching_1000_xp_is_level_10_and_unlocks_level_10() {
    let ada = player(1);
    given(history([
        vec![
            module_defined(1, &[]),
            lab_defined("a", 1, 999),
            lab_defined("b", 1, 1),
            lab_defined("c", 1, 500),
        ],
        active_on_march_1(ada),
        vec![
            lab_completed(ada, "a", 1, 999),
            on_player(ada, Event::LeveledUp { level: 9 }),
            unlocked(ada, Achievement::FIRST_LAB),
            unlocked(ada, Achievement::LEVEL_5),
        ],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("b"))
    .then(vec![
        lab_completed(ada, "b", 1, 1),
        on_player(ada, Event::LeveledUp { level: 10 }),
        unlocked(ada, Achievement::LEVEL_10),
    ]);
}

#[test]
fn the_tenth_completed_lab_unlocks_ten_labs() {
    let ada = player(1);
    let mut catalog = vec![module_defined(1, &[])];
    catalog.extend((1..=11).map(|n| lab_defined(&format!("lab-{n}"), 1, 1)));
    let done: Vec<_> = (1..=9)
        .map(|n| lab_completed(ada, &format!("lab-{n}"), 1, 1))
        .collect();
    given(history([
        catalog,
        active_on_march_1(ada),
        done,
        vec![unlocked(ada, Achievement::FIRST_LAB)],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("lab-10"))
    .then(vec![
        lab_completed(ada, "lab-10", 1, 1),
        unlocked(ada, Achievement::TEN_LABS),
    ]);
}

#[test]
fn an_achievement_already_held_is_not_unlocked_again() {
    let ada = player(1);
    // Granted by an admin before it was earned.
    given(history([
        catalog(),
        active_on_march_1(ada),
        vec![unlocked(ada, Achievement::FIRST_LAB)],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("m1-a"))
    .then(vec![lab_completed(ada, "m1-a", 1, 50)]);
}

#[test]
fn completing_a_lab_on_the_day_after_the_last_activity_extends_the_streak() {
    let ada = player(1);
    given(history([
        catalog(),
        active_on_march_1(ada),
        vec![unlocked(ada, Achievement::FIRST_LAB)],
    ]))
    .when(ada, at("2024-03-02T10:00:00Z"), complete("m1-a"))
    .then(vec![
        lab_completed(ada, "m1-a", 1, 50),
        streak_updated(ada, "2024-03-02", 2, 2, "2024-03-02T10:00:00Z"),
    ]);
}

#[test]
fn completing_a_lab_counts_for_the_streak_on_the_players_local_day_behind_utc() {
    let ada = player(1);
    // 03:00 UTC on March 3 is still 19:00 on March 2 in Los Angeles (PST, UTC-8): the local day
    // after March 1, not the gap the UTC date would make it.
    given(history([
        catalog(),
        registered(ada, "ada"),
        vec![
            on_player(
                ada,
                Event::TimezoneSet {
                    timezone: tz("America/Los_Angeles"),
                },
            ),
            streak_updated(ada, "2024-03-01", 1, 1, "2024-03-01T20:00:00Z"),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]))
    .when(ada, at("2024-03-03T03:00:00Z"), complete("m1-a"))
    .then(vec![
        lab_completed(ada, "m1-a", 1, 50),
        streak_updated(ada, "2024-03-02", 2, 2, "2024-03-03T03:00:00Z"),
    ]);
}

#[test]
fn completing_a_lab_on_the_same_local_day_but_a_later_utc_date_moves_no_streak() {
    let ada = player(1);
    given(history([
        catalog(),
        registered(ada, "ada"),
        vec![
            on_player(
                ada,
                Event::TimezoneSet {
                    timezone: tz("America/Los_Angeles"),
                },
            ),
            streak_updated(ada, "2024-03-02", 1, 1, "2024-03-02T17:00:00Z"),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]))
    .when(ada, at("2024-03-03T03:00:00Z"), complete("m1-a"))
    .then(vec![lab_completed(ada, "m1-a", 1, 50)]);
}

#[test]
fn completing_a_lab_counts_for_the_streak_on_the_players_local_day_ahead_of_utc() {
    let ada = player(1);
    // 20:00 UTC on March 1 is 09:00 on March 2 in Auckland (NZDT, UTC+13).
    given(history([
        catalog(),
        registered(ada, "ada"),
        vec![on_player(
            ada,
            Event::TimezoneSet {
                timezone: tz("Pacific/Auckland"),
            },
        )],
    ]))
    .when(ada, at("2024-03-01T20:00:00Z"), complete("m1-a"))
    .then(vec![
        lab_completed(ada, "m1-a", 1, 50),
        streak_updated(ada, "2024-03-02", 1, 1, "2024-03-01T20:00:00Z"),
        unlocked(ada, Achievement::FIRST_LAB),
    ]);
}

#[test]
fn completing_a_lab_on_the_seventh_day_in_a_row_unlocks_streak_7() {
    let ada = player(1);
    given(history([
        catalog(),
        registered(ada, "ada"),
        vec![
            streak_updated(ada, "2024-03-06", 6, 6, "2024-03-06T12:00:00Z"),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]))
    .when(ada, at("2024-03-07T12:00:00Z"), complete("m1-a"))
    .then(vec![
        lab_completed(ada, "m1-a", 1, 50),
        streak_updated(ada, "2024-03-07", 7, 7, "2024-03-07T12:00:00Z"),
        unlocked(ada, Achievement::STREAK_7),
    ]);
}

#[test]
fn level_4_and_level_9_unlock_no_level_achievement() {
    let ada = player(1);
    let catalog = vec![
        module_defined(1, &[]),
        lab_defined("a", 1, 350),
        lab_defined("b", 1, 100),
        lab_defined("c", 1, 449),
        // Never completed, so module 1 stays incomplete.
        lab_defined("d", 1, 1),
    ];
    let first = history([
        catalog,
        active_on_march_1(ada),
        vec![
            lab_completed(ada, "a", 1, 350),
            on_player(ada, Event::LeveledUp { level: 3 }),
            unlocked(ada, Achievement::FIRST_LAB),
        ],
    ]);
    given(first.clone())
        .when(ada, at(LATER_ON_MARCH_1), complete("b"))
        .then(vec![
            lab_completed(ada, "b", 1, 100),
            on_player(ada, Event::LeveledUp { level: 4 }),
        ]);
    // 899 XP is level 8; 100 more is 999, level 9, one short of level 10.
    let at_level_8 = history([
        first,
        vec![
            lab_completed(ada, "b", 1, 100),
            on_player(ada, Event::LeveledUp { level: 4 }),
            lab_completed(ada, "c", 1, 449),
            on_player(ada, Event::LeveledUp { level: 8 }),
            unlocked(ada, Achievement::LEVEL_5),
            lab_defined("e", 1, 100),
        ],
    ]);
    given(at_level_8)
        .when(ada, at(LATER_ON_MARCH_1), complete("e"))
        .then(vec![
            lab_completed(ada, "e", 1, 100),
            on_player(ada, Event::LeveledUp { level: 9 }),
        ]);
}

#[test]
fn the_ninth_completed_lab_does_not_unlock_ten_labs() {
    let ada = player(1);
    let mut catalog = vec![module_defined(1, &[])];
    catalog.extend((1..=11).map(|n| lab_defined(&format!("lab-{n}"), 1, 1)));
    let done: Vec<_> = (1..=8)
        .map(|n| lab_completed(ada, &format!("lab-{n}"), 1, 1))
        .collect();
    given(history([
        catalog,
        active_on_march_1(ada),
        done,
        vec![unlocked(ada, Achievement::FIRST_LAB)],
    ]))
    .when(ada, at(LATER_ON_MARCH_1), complete("lab-9"))
    .then(vec![lab_completed(ada, "lab-9", 1, 1)]);
}

#[test]
fn a_players_completed_labs_hold_each_lab_once_in_order_whatever_order_they_came_in() {
    let mut labs = LabSet::default();
    for raw in ["lab-2", "lab-10", "intro", "lab-2", "lab-1"] {
        labs.insert(&LabId::parse(raw).expect("a lab id"));
    }
    let listed: Vec<&str> = labs.iter().map(|l| l.as_str()).collect();
    assert_eq!(listed, ["intro", "lab-1", "lab-10", "lab-2"]);
    assert!(labs.contains(&LabId::parse("lab-10").expect("a lab id")));
    assert!(!labs.contains(&LabId::parse("lab-3").expect("a lab id")));
    let collected: LabSet = ["lab-2", "intro", "lab-2"]
        .into_iter()
        .map(|raw| LabId::parse(raw).expect("a lab id"))
        .collect();
    assert_eq!(collected.len(), 2);
    assert_eq!(
        collected.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
        ["intro", "lab-2"]
    );
}
