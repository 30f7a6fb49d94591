//! `start_lab`, `save_lab_state`, `delete_lab_state`: a lab session's facts in the log.

use chrono::{DateTime, Utc};
use questlog_academy::fixtures::{
    self, admin, at, erased, history, lab_defined, lab_id, module_defined, player, Logged,
};
use questlog_domain::testing::Then;
use questlog_domain::{Actor, Event as Erased, StreamId};
use serde_json::json;

use crate::{lab_stream, Command, Event, LabSessions};

const NOW: &str = "2024-03-01T09:00:00Z";

/// Decides `command` against `events`, over a domain of the academy and lab sessions.
struct Given(Vec<Logged>);

fn given(events: Vec<Logged>) -> Given {
    Given(events)
}

impl Given {
    #[track_caller]
    fn when(self, actor: Actor, now: DateTime<Utc>, command: Command) -> Then {
        fixtures::given(&[&LabSessions], self.0).when(actor, now, &command)
    }
}

fn catalog() -> Vec<Logged> {
    erased(vec![
        module_defined(1, &[]),
        lab_defined("ls", 1, 100),
        module_defined(2, &[1]),
        lab_defined("pipes", 2, 100),
    ])
}

fn registered(actor: Actor, name: &str) -> Vec<Logged> {
    erased(fixtures::registered(actor, name))
}

fn session(actor: Actor, lab: &str) -> StreamId {
    lab_stream(actor.identity, &lab_id(lab))
}

fn on_session(actor: Actor, lab: &str, event: Event) -> Logged {
    (session(actor, lab), Erased::new(event))
}

fn started(actor: Actor, lab: &str) -> Logged {
    on_session(
        actor,
        lab,
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
        on_session(
            ada,
            "ls",
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
            on_session(
                ada,
                "ls",
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
    let deleted = on_session(
        ada,
        "ls",
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
