//! Events survive being stored as (type, schema version, data); stream ids survive being written.

use crate::DomainEvent as _;
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::{achievement, at, day, lab_id, tz, username};
use crate::values::PlayerId;
use crate::{Event, StreamId};

/// One of every variant, with values that exercise their serialisation.
fn one_of_each() -> Vec<Event> {
    let ada = PlayerId(Uuid::from_u128(0x0123_4567_89ab_cdef));
    vec![
        Event::ModuleDefined {
            module: 2,
            title: "Pipes & \"redirects\" — ünïcode".into(),
            requires: vec![1],
        },
        Event::LabDefined {
            lab_id: lab_id("pipes-1.b_2"),
            module: 2,
            title: "Your first pipe".into(),
            xp: 100_000,
        },
        Event::UsernameClaimed {
            player_id: ada,
            username: questlog_domain::Personal::new(ada, username("Ada.L")),
        },
        Event::PlayerRegistered {
            player_id: ada,
            username: questlog_domain::Personal::new(ada, username("Ada.L")),
        },
        Event::TimezoneSet {
            timezone: tz("America/Argentina/Buenos_Aires"),
        },
        Event::LabCompleted {
            lab_id: lab_id("pipes-1.b_2"),
            module: 2,
            xp: 75,
        },
        Event::ModuleCompleted { module: 2 },
        Event::LeveledUp { level: 11 },
        Event::AchievementUnlocked {
            achievement: achievement("streak_30"),
        },
        Event::StreakUpdated {
            day: day("2024-02-29"),
            streak: 30,
            longest: 31,
            at: at("2024-02-29T23:59:59.123456Z"),
        },
        Event::XpRevoked {
            xp: u32::MAX,
            reason: "scripted completions".into(),
        },
        Event::CameOnline {
            current_lab: Some(lab_id("pipes-1.b_2")),
        },
        Event::CurrentLabChanged { current_lab: None },
        Event::WentOffline {
            last_seen: at("2024-02-29T23:59:59.123456Z"),
        },
    ]
}

#[test]
fn every_event_variant_survives_its_stored_parts() {
    let events = one_of_each();
    let mut types: Vec<&str> = events.iter().map(Event::event_type).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), 14, "one_of_each holds every variant once");
    for e in events {
        let back = Event::from_parts(e.event_type(), Event::SCHEMA_VERSION, &e.data())
            .unwrap_or_else(|err| panic!("{e:?}: {err}"));
        assert_eq!(back, e);
    }
}

#[test]
fn an_events_data_is_a_json_object_of_its_fields() {
    for e in one_of_each() {
        assert!(e.data().is_object(), "{e:?} stores {}", e.data());
    }
    assert_eq!(
        Event::StreakUpdated {
            day: day("2024-03-01"),
            streak: 2,
            longest: 5,
            at: at("2024-03-01T09:00:00Z"),
        }
        .data(),
        json!({"day": "2024-03-01", "streak": 2, "longest": 5, "at": "2024-03-01T09:00:00Z"})
    );
    assert_eq!(
        Event::TimezoneSet {
            timezone: tz("Europe/Berlin")
        }
        .data(),
        json!({"timezone": "Europe/Berlin"})
    );
}

#[test]
fn an_event_of_a_newer_schema_version_is_not_read() {
    let e = Event::LeveledUp { level: 3 };
    assert!(Event::from_parts(e.event_type(), Event::SCHEMA_VERSION + 1, &e.data()).is_err());
}

#[test]
fn an_event_of_an_unknown_type_or_shape_is_not_read() {
    assert!(Event::from_parts("player_teleported", 1, &json!({})).is_err());
    assert!(Event::from_parts("leveled_up", 1, &json!({"level": "three"})).is_err());
    assert!(Event::from_parts("leveled_up", 1, &json!({})).is_err());
    assert!(Event::from_parts("timezone_set", 1, &json!({"timezone": "Mars/Base"})).is_err());
}

#[test]
fn stream_ids_are_written_as_documented() {
    let id = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    assert_eq!(StreamId::Catalog.to_string(), "catalog");
    assert_eq!(
        StreamId::Player(PlayerId(id)).to_string(),
        "player-67e55044-10b1-426f-9247-bb680e5fe0c8"
    );
    assert_eq!(
        StreamId::Username("ada.l-x".into()).to_string(),
        "username-ada.l-x"
    );
}

#[test]
fn strings_that_are_not_stream_ids_do_not_parse() {
    for raw in [
        "",
        "catalogue",
        "Catalog",
        "player",
        "player-",
        "player-not-a-uuid",
        "username-",
        "username",
        "username-a b",
        "username-ada/../catalog",
        &format!("username-{}", "a".repeat(31)),
        "lab-intro",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8-",
        "lab-67e55044-10b1-426f-9247-bb680e5fe0c8_ls",
        "message-",
        "message-42",
        "-catalog",
    ] {
        assert!(raw.parse::<StreamId>().is_err(), "{raw:?} parsed");
    }
}

#[test]
fn a_username_stream_id_is_read_as_the_names_lowercase_key() {
    assert_eq!(
        "username-Ada.L".parse::<StreamId>(),
        Ok(StreamId::Username("ada.l".into()))
    );
}

#[test]
fn a_claim_s_digest_is_a_stream_id_as_written_and_only_in_lowercase_hex() {
    let digest = questlog_domain::testing::NAMES.digest("ada");
    let id = format!("username-{digest}");
    assert_eq!(
        id.parse::<StreamId>(),
        Ok(StreamId::Username(digest.clone()))
    );
    assert_eq!(StreamId::Username(digest.clone()).to_string(), id);
    for raw in [
        format!("username-{}", digest.to_uppercase()),
        format!("username-{}", &digest[1..]),
        format!("username-{digest}0"),
    ] {
        assert!(raw.parse::<StreamId>().is_err(), "{raw:?} parsed");
    }
}

#[test]
fn a_player_stream_id_is_read_whatever_the_uuids_spelling() {
    let canonical = "player-67e55044-10b1-426f-9247-bb680e5fe0c8";
    for raw in [
        canonical,
        "player-67E55044-10B1-426F-9247-BB680E5FE0C8",
        "player-67e5504410b1426f9247bb680e5fe0c8",
    ] {
        let id: StreamId = raw.parse().unwrap();
        assert_eq!(id.to_string(), canonical);
    }
}

fn any_stream_id() -> impl Strategy<Value = StreamId> {
    prop_oneof![
        Just(StreamId::Catalog),
        any::<u128>().prop_map(|n| StreamId::Player(PlayerId(Uuid::from_u128(n)))),
        "[a-z0-9_.-]{1,30}".prop_map(StreamId::Username),
    ]
}

proptest! {
    #[test]
    fn a_stream_id_parses_back_from_how_it_is_written(stream in any_stream_id()) {
        let written = stream.to_string();
        prop_assert_eq!(written.parse::<StreamId>(), Ok(stream.clone()));
        prop_assert!(written.starts_with(stream.kind().name()));
    }
}
