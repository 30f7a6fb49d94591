//! `heartbeat` and the reaper's `go_offline`: presence changes only on transitions.

use questlog_academy::fixtures::{admin, at, history, lab_id, on_player, player, registered};
use questlog_academy::Event;

use super::given;
use crate::Command;

const NOW: &str = "2024-03-01T09:00:00Z";

fn beat(lab: Option<&str>) -> Command {
    Command::Heartbeat {
        current_lab: lab.map(lab_id),
    }
}

#[test]
fn the_first_heartbeat_brings_a_player_online_in_its_lab() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(ada, at(NOW), beat(Some("ls")))
        .then(vec![on_player(
            ada,
            Event::CameOnline {
                current_lab: Some(lab_id("ls")),
            },
        )]);
}

#[test]
fn heartbeats_that_change_nothing_record_nothing() {
    let ada = player(1);
    let online = || {
        history([
            registered(ada, "ada"),
            vec![on_player(
                ada,
                Event::CameOnline {
                    current_lab: Some(lab_id("ls")),
                },
            )],
        ])
    };
    given(online())
        .when(ada, at(NOW), beat(Some("ls")))
        .then(vec![]);
    given(online())
        .when(ada, at(NOW), beat(Some("cd")))
        .then(vec![on_player(
            ada,
            Event::CurrentLabChanged {
                current_lab: Some(lab_id("cd")),
            },
        )]);
    given(online())
        .when(ada, at(NOW), beat(None))
        .then(vec![on_player(
            ada,
            Event::CurrentLabChanged { current_lab: None },
        )]);
}

#[test]
fn the_reaper_takes_an_online_player_offline_once() {
    let ada = player(1);
    let last_seen = at("2024-03-01T08:55:00Z");
    let offline = Command::GoOffline {
        player_id: ada.identity,
        last_seen,
    };
    let went = on_player(ada, Event::WentOffline { last_seen });
    let online = history([
        registered(ada, "ada"),
        vec![on_player(ada, Event::CameOnline { current_lab: None })],
    ]);
    given(online.clone())
        .when(admin(), at(NOW), offline.clone())
        .then(vec![went.clone()]);
    given(history([online, vec![went]]))
        .when(admin(), at(NOW), offline.clone())
        .then(vec![]);
    // Only the reaper (an admin actor) sends it.
    given(registered(ada, "ada"))
        .when(ada, at(NOW), offline)
        .then_rejected("forbidden");
}

#[test]
fn after_going_offline_a_heartbeat_brings_the_player_back() {
    let ada = player(1);
    given(history([
        registered(ada, "ada"),
        vec![
            on_player(ada, Event::CameOnline { current_lab: None }),
            on_player(
                ada,
                Event::WentOffline {
                    last_seen: at("2024-03-01T08:55:00Z"),
                },
            ),
        ],
    ]))
    .when(ada, at(NOW), beat(None))
    .then(vec![on_player(
        ada,
        Event::CameOnline { current_lab: None },
    )]);
}

#[test]
fn a_heartbeat_before_registering_is_not_registered() {
    given(vec![])
        .when(player(1), at(NOW), beat(None))
        .then_rejected("not_registered");
}
