//! Lab sessions' events survive being stored as (type, schema version, data) with the shapes the
//! log has always held; their stream ids survive being written.

use proptest::prelude::*;
use questlog_academy::fixtures::lab_id;
use questlog_academy::values::PlayerId;
use questlog_domain::DomainEvent as _;
use serde_json::json;
use uuid::Uuid;

use crate::{lab_stream, session_of, Event, LabSessions, LAB};

fn one_of_each() -> Vec<Event> {
    vec![
        Event::LabStarted {
            lab_id: lab_id("pipes-1.b_2"),
        },
        Event::LabProgressed {
            lab_id: lab_id("pipes-1.b_2"),
            step: 1000,
        },
        Event::LabStateDeleted {
            lab_id: lab_id("pipes-1.b_2"),
        },
    ]
}

#[test]
fn every_event_variant_survives_its_stored_parts() {
    for e in one_of_each() {
        let back = Event::from_parts(e.event_type(), Event::SCHEMA_VERSION, &e.data())
            .unwrap_or_else(|err| panic!("{e:?}: {err}"));
        assert_eq!(back, e);
    }
}

#[test]
fn events_keep_the_types_and_data_the_log_holds() {
    let stored = [
        ("lab_started", json!({"lab_id": "ls"})),
        ("lab_progressed", json!({"lab_id": "ls", "step": 7})),
        ("lab_state_deleted", json!({"lab_id": "ls"})),
    ];
    for (event_type, data) in stored {
        let event =
            Event::from_parts(event_type, 1, &data).unwrap_or_else(|e| panic!("{event_type}: {e}"));
        assert_eq!((event.event_type(), event.data()), (event_type, data));
    }
}

#[test]
fn the_running_domain_decodes_stored_session_events_as_the_modules() {
    let mut app = questlog_domain::App::new();
    app.add_module(&questlog_academy::Academy)
        .add_module(&LabSessions);
    let domain = app.domain();
    let event = domain
        .decode("lab_progressed", 1, &json!({"lab_id": "ls", "step": 2}))
        .expect("decodes");
    assert_eq!(
        event.get::<Event>(),
        Some(&Event::LabProgressed {
            lab_id: lab_id("ls"),
            step: 2
        })
    );
}

#[test]
fn a_session_stream_is_written_as_documented() {
    let id = PlayerId(Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap());
    assert_eq!(
        lab_stream(id, &lab_id("intro-1")).to_string(),
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8-intro-1"
    );
}

#[test]
fn strings_that_are_not_session_streams_do_not_parse() {
    let mut app = questlog_domain::App::new();
    app.add_module(&questlog_academy::Academy)
        .add_module(&LabSessions);
    let domain = app.domain();
    for raw in [
        "lab",
        "lab-",
        "lab-intro",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8-",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8_ls",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8-a b",
        "player-67e55044-10b1-426f-9247-bb680e5fe0c8-ls",
    ] {
        assert_eq!(session_of(raw), None, "{raw:?} parsed");
        if raw.starts_with("lab") {
            assert!(domain.stream(raw).is_err(), "{raw:?} is a stream");
        }
    }
}

proptest! {
    #[test]
    fn a_session_stream_parses_back_from_how_it_is_written(
        n in any::<u128>(),
        lab in "[A-Za-z0-9_.-]{1,64}",
    ) {
        let player = PlayerId(Uuid::from_u128(n));
        let stream = lab_stream(player, &lab_id(&lab));
        let written = stream.to_string();
        prop_assert_eq!(stream.kind(), LAB);
        prop_assert_eq!(session_of(&written), Some((player, lab_id(&lab))));
    }
}
