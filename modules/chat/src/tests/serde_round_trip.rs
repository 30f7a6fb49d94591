//! The chat's events survive being stored as (type, schema version, data); message stream ids
//! survive being written.

use proptest::prelude::*;
use questlog_academy::values::PlayerId;
use questlog_domain::DomainEvent as _;
use uuid::Uuid;

use crate::values::{Channel, MessageContent, MessageId};
use crate::{message_of, message_stream, Chat, Event};

/// One of every variant, with values that exercise their serialisation.
fn one_of_each() -> Vec<Event> {
    let ada = PlayerId(Uuid::from_u128(0x0123_4567_89ab_cdef));
    vec![
        Event::MessageSent {
            message_id: MessageId(Uuid::from_u128(7)),
            channel: Channel::direct(PlayerId(Uuid::from_u128(9)), ada),
            sender: ada,
            content: questlog_domain::Personal::new(
                ada,
                MessageContent::parse("ünïcode \"quotes\" 🚀").unwrap(),
            ),
        },
        Event::MessageEdited {
            message_id: MessageId(Uuid::from_u128(7)),
            content: questlog_domain::Personal::new(ada, MessageContent::parse("fixed").unwrap()),
        },
        Event::MessageDeleted {
            message_id: MessageId(Uuid::from_u128(7)),
            by: ada,
        },
    ]
}

#[test]
fn every_event_variant_survives_its_stored_parts() {
    let events = one_of_each();
    let mut types: Vec<&str> = events.iter().map(Event::event_type).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), 3, "one_of_each holds every variant once");
    for e in events {
        assert!(e.data().is_object(), "{e:?} stores {}", e.data());
        let back = Event::from_parts(e.event_type(), Event::SCHEMA_VERSION, &e.data())
            .unwrap_or_else(|err| panic!("{e:?}: {err}"));
        assert_eq!(back, e);
    }
}

#[test]
fn strings_that_are_not_message_stream_ids_do_not_parse() {
    let domain = questlog_academy::fixtures::domain(&[&Chat]);
    for raw in [
        "message-",
        "message-42",
        "message",
        "messages-67e55044-10b1-426f-9247-bb680e5fe0c8",
    ] {
        assert!(domain.stream(raw).is_err(), "{raw:?} parsed");
        assert_eq!(message_of(raw), None, "{raw:?}");
    }
}

proptest! {
    #[test]
    fn a_message_stream_id_parses_back_from_how_it_is_written(n in any::<u128>()) {
        let id = MessageId(Uuid::from_u128(n));
        let written = message_stream(id).to_string();
        let domain = questlog_academy::fixtures::domain(&[&Chat]);
        prop_assert_eq!(domain.stream(&written).map(|s| s.to_string()), Ok(written.clone()));
        prop_assert_eq!(message_of(&written), Some(id));
        prop_assert!(written.starts_with("message-"));
    }
}
