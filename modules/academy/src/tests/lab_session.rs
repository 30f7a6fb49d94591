//! `start_lab`, `save_lab_state`, `delete_lab_state`: a lab session's facts in the log.

use serde_json::json;

use super::{admin, at, history, lab_defined, lab_id, module_defined, player, registered};
use crate::testing::given;
use crate::{Command, Event, StreamId};

const NOW: &str = "2024-03-01T09:00:00Z";

fn catalog() -> Vec<(StreamId, Event)> {
    vec![
        module_defined(1, &[]),
        lab_defined("ls", 1, 100),
        module_defined(2, &[1]),
        lab_defined("pipes", 2, 100),
    ]
}

fn session(actor: crate::Actor, lab: &str) -> StreamId {
    StreamId::Lab(actor.identity, lab_id(lab))
}

fn started(actor: crate::Actor, lab: &str) -> (StreamId, Event) {
    (
        session(actor, lab),
        Event::LabStarted {
            lab_id: lab_id(lab),
        },
    )
}

fn save(lab: &str, step: u32) -> Command {
    Command::SaveLabState {
        lab_id: lab_id(lab),
        vfs_snapshot: json!({"/home/ada/a.txt": "hi"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        current_step: step,
    }
}

#[test]
fn starting_an_unlocked_lab_records_the_session() {
    let ada = player(1);
    given(history([catalog(), registered(ada, "ada")]))
        .when(
            ada,
            at(NOW),
            Command::StartLab {
                lab_id: lab_id("ls"),
            },
        )
        .then(vec![started(ada, "ls")]);
}

#[test]
fn starting_an_unknown_or_locked_lab_is_refused() {
    let ada = player(1);
    given(history([catalog(), registered(ada, "ada")]))
        .when(
            ada,
            at(NOW),
            Command::StartLab {
                lab_id: lab_id("nope"),
            },
        )
        .then_rejected("unknown_lab");
    given(history([catalog(), registered(ada, "ada")]))
        .when(
            ada,
            at(NOW),
            Command::StartLab {
                lab_id: lab_id("pipes"),
            },
        )
        .then_rejected("module_locked");
}

#[test]
fn starting_a_lab_already_started_resumes_it_and_records_nothing() {
    let ada = player(1);
    given(history([
        catalog(),
        registered(ada, "ada"),
        vec![started(ada, "ls")],
    ]))
    .when(
        ada,
        at(NOW),
        Command::StartLab {
            lab_id: lab_id("ls"),
        },
    )
    .then(vec![]);
}

#[test]
fn a_save_records_only_a_step_further_than_any_before() {
    let ada = player(1);
    let base = || history([catalog(), registered(ada, "ada"), vec![started(ada, "ls")]]);
    let progressed = |step| {
        (
            session(ada, "ls"),
            Event::LabProgressed {
                lab_id: lab_id("ls"),
                step,
            },
        )
    };
    given(base())
        .when(ada, at(NOW), save("ls", 2))
        .then(vec![progressed(2)]);
    // The same step, or going back, is a save of the working copy only.
    given(history([base(), vec![progressed(2)]]))
        .when(ada, at(NOW), save("ls", 2))
        .then(vec![]);
    given(history([base(), vec![progressed(2)]]))
        .when(ada, at(NOW), save("ls", 1))
        .then(vec![]);
    given(history([base(), vec![progressed(2)]]))
        .when(ada, at(NOW), save("ls", 0))
        .then(vec![]);
}

#[test]
fn saving_a_lab_never_started_or_deleted_is_lab_not_started() {
    let ada = player(1);
    given(history([catalog(), registered(ada, "ada")]))
        .when(ada, at(NOW), save("ls", 1))
        .then_rejected("lab_not_started");
    given(history([
        catalog(),
        registered(ada, "ada"),
        vec![
            started(ada, "ls"),
            (
                session(ada, "ls"),
                Event::LabStateDeleted {
                    lab_id: lab_id("ls"),
                },
            ),
        ],
    ]))
    .when(ada, at(NOW), save("ls", 1))
    .then_rejected("lab_not_started");
}

#[test]
fn a_player_deletes_its_own_state_and_an_admin_anyones_but_nobody_another_players() {
    let ada = player(1);
    let bob = player(2);
    let base = || history([catalog(), registered(ada, "ada"), vec![started(ada, "ls")]]);
    let deleted = (
        session(ada, "ls"),
        Event::LabStateDeleted {
            lab_id: lab_id("ls"),
        },
    );
    given(base())
        .when(
            ada,
            at(NOW),
            Command::DeleteLabState {
                lab_id: lab_id("ls"),
                player_id: None,
            },
        )
        .then(vec![deleted.clone()]);
    given(base())
        .when(
            admin(),
            at(NOW),
            Command::DeleteLabState {
                lab_id: lab_id("ls"),
                player_id: Some(ada.identity),
            },
        )
        .then(vec![deleted]);
    given(base())
        .when(
            bob,
            at(NOW),
            Command::DeleteLabState {
                lab_id: lab_id("ls"),
                player_id: Some(ada.identity),
            },
        )
        .then_rejected("forbidden");
    given(base())
        .when(
            ada,
            at(NOW),
            Command::DeleteLabState {
                lab_id: lab_id("pipes"),
                player_id: None,
            },
        )
        .then_rejected("lab_not_started");
}
