//! `set_timezone`: the zone whose local days count for streaks.

use super::{at, history, on_player, player, registered, streak_updated, tz};
use crate::testing::given;
use crate::{Command, Event};

fn set(name: &str) -> Command {
    Command::SetTimezone { timezone: tz(name) }
}

#[test]
fn setting_a_timezone_records_it() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(ada, at("2024-03-01T09:00:00Z"), set("Asia/Tokyo"))
        .then(vec![on_player(
            ada,
            Event::TimezoneSet {
                timezone: tz("Asia/Tokyo"),
            },
        )]);
}

#[test]
fn setting_the_timezone_already_set_appends_nothing() {
    let ada = player(1);
    given(history([
        registered(ada, "ada"),
        vec![on_player(
            ada,
            Event::TimezoneSet {
                timezone: tz("Asia/Tokyo"),
            },
        )],
    ]))
    .when(ada, at("2024-03-01T09:00:00Z"), set("Asia/Tokyo"))
    .then(vec![]);
}

#[test]
fn setting_utc_on_a_new_player_appends_nothing_as_utc_is_the_default() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(ada, at("2024-03-01T09:00:00Z"), set("UTC"))
        .then(vec![]);
}

#[test]
fn setting_a_timezone_does_not_touch_the_streak() {
    let ada = player(1);
    given(history([
        registered(ada, "ada"),
        vec![streak_updated(
            ada,
            "2024-03-01",
            3,
            3,
            "2024-03-01T09:00:00Z",
        )],
    ]))
    .when(ada, at("2024-03-02T09:00:00Z"), set("Europe/Berlin"))
    .then(vec![on_player(
        ada,
        Event::TimezoneSet {
            timezone: tz("Europe/Berlin"),
        },
    )]);
}
