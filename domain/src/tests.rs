//! The kernel's registry and folds, with a module made up for the purpose: a counter whose
//! stream counts `bumped` events and refuses to go past a limit.

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::testing::given;
use crate::values::PlayerId;
use crate::{
    Actor, App, Command, Context, Domain, DomainEvent, Edge, Event, Module, Rejection, Role,
    StreamId, StreamKind, View,
};

const COUNTER: StreamKind = StreamKind::new("counter");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum CounterEvent {
    Bumped { by: u32 },
}

impl DomainEvent for CounterEvent {
    const TYPES: &'static [&'static str] = &["bumped"];
    fn event_type(&self) -> &'static str {
        "bumped"
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Count(u32);

impl View for Count {
    fn initial(_: &StreamId) -> Self {
        Self(0)
    }
    fn evolve(&mut self, event: &Event) {
        if let Some(CounterEvent::Bumped { by }) = event.get() {
            self.0 += by;
        }
    }
}

/// A second module's view of the same stream: how many events it saw.
#[derive(Debug, Clone, Default, PartialEq)]
struct Seen(usize);

impl View for Seen {
    fn initial(_: &StreamId) -> Self {
        Self(0)
    }
    fn evolve(&mut self, _: &Event) {
        self.0 += 1;
    }
}

#[derive(Debug)]
struct Bump {
    counter: String,
    by: u32,
}

impl Command for Bump {
    fn name(&self) -> &'static str {
        "bump"
    }
    fn streams(&self, _: &Actor) -> Vec<StreamId> {
        vec![COUNTER.stream(self.counter.clone())]
    }
    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
        let stream = COUNTER.stream(self.counter.clone());
        if ctx.view::<Count>(&stream).0 + self.by > 10 {
            return Err(Rejection::conflict("too_many", "a counter stops at 10"));
        }
        Ok(vec![(stream, CounterEvent::Bumped { by: self.by }.into())])
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BumpBody {
    counter: String,
    by: u32,
}

fn parse(_: &str, raw: &[u8], _: &Edge) -> Result<Box<dyn Command>, Rejection> {
    let b: BumpBody = crate::body(raw)?;
    Ok(Box::new(Bump {
        counter: b.counter,
        by: b.by,
    }))
}

struct Counters;

impl Module for Counters {
    fn name(&self) -> &'static str {
        "counters"
    }
    fn build(&self, app: &mut App) {
        app.add_events::<CounterEvent>()
            .add_commands(&["bump"], parse)
            .add_stream(COUNTER, |key| !key.is_empty())
            .add_view::<Count>(COUNTER);
    }
}

struct Audit;

impl Module for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }
    fn build(&self, app: &mut App) {
        app.add_view::<Seen>(COUNTER);
    }
}

fn domain() -> std::sync::Arc<Domain> {
    let mut app = App::new();
    app.add_module(&Counters)
        .add_module(&Audit)
        .add_module(&Counters);
    assert_eq!(
        app.modules(),
        ["counters", "audit"],
        "a module is built once"
    );
    app.domain()
}

fn ada() -> Actor {
    Actor {
        identity: PlayerId(Uuid::from_u128(1)),
        role: Role::Player,
    }
}

fn edge() -> Edge {
    Edge {
        caller: ada().identity,
        new_id: Uuid::from_u128(2),
        names: crate::testing::NAMES,
    }
}

fn bumped(counter: &str, by: u32) -> (StreamId, Event) {
    (COUNTER.stream(counter), CounterEvent::Bumped { by }.into())
}

#[test]
fn a_registered_command_parses_by_name_and_an_unknown_one_is_unknown_command() {
    let domain = domain();
    let cmd = domain
        .parse("bump", br#"{"counter": "a", "by": 2}"#, &edge())
        .expect("a valid bump");
    assert_eq!(cmd.name(), "bump");
    assert_eq!(domain.command_names(), ["bump"]);
    let unknown = domain.parse("jump", b"{}", &edge()).map(|c| c.name());
    assert_eq!(unknown.map_err(|r| r.code), Err("unknown_command"));
    let duplicate = domain.parse("bump", br#"{"counter": "a", "by": 1, "by": 2}"#, &edge());
    assert_eq!(
        duplicate.map(|c| c.name()).map_err(|r| r.code),
        Err("bad_request")
    );
}

#[test]
fn events_decode_once_to_their_modules_type_and_an_unknown_type_is_kept_as_stored() {
    let domain = domain();
    let event = domain
        .decode("bumped", 1, &serde_json::json!({ "by": 3 }))
        .expect("a stored bump");
    assert_eq!(
        event.get::<CounterEvent>(),
        Some(&CounterEvent::Bumped { by: 3 })
    );
    assert_eq!(event.data(), serde_json::json!({ "by": 3 }));
    assert!(domain
        .decode("bumped", 2, &serde_json::json!({ "by": 3 }))
        .is_err());
    assert!(domain
        .decode("bumped", 1, &serde_json::json!({ "by": "x" }))
        .is_err());
    let other = domain
        .decode("renamed", 1, &serde_json::json!({ "x": 1 }))
        .expect("a type nobody registers is kept");
    assert_eq!(other.get::<CounterEvent>(), None);
    assert_eq!(other.event_type(), "renamed");
    assert!(!domain.knows_event("renamed"));
}

#[test]
fn a_stream_id_parses_only_for_a_registered_kind_and_a_valid_key() {
    let domain = domain();
    let id = domain.stream("counter-a-b").expect("a counter");
    assert_eq!((id.kind(), &*id.key()), (COUNTER, "a-b"));
    assert_eq!(id.to_string(), "counter-a-b");
    assert!(domain.stream("counter").is_err(), "the key must be valid");
    assert!(
        domain.stream("player-1").is_err(),
        "the kind must be registered"
    );
}

#[test]
fn a_stream_keyed_by_a_uuid_is_one_stream_however_it_is_named() {
    use std::hash::BuildHasher as _;

    let id = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
    let written = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let by_uuid = COUNTER.uuid(id);
    let by_text = COUNTER.stream(written);
    assert_eq!(by_uuid, by_text);
    let hasher = std::collections::hash_map::RandomState::new();
    assert_eq!(hasher.hash_one(&by_uuid), hasher.hash_one(&by_text));
    assert_eq!(by_uuid.to_string(), format!("counter-{written}"));
    assert_eq!(by_uuid.key(), written);
    assert_eq!(domain().stream(&format!("counter-{written}")), Ok(by_uuid));
    // Another spelling of the UUID is another key, kept as written.
    let upper = COUNTER.stream(written.to_uppercase());
    assert_ne!(upper, by_text);
    assert_eq!(
        upper.to_string(),
        format!("counter-{}", written.to_uppercase())
    );
    assert_eq!(COUNTER.stream("").to_string(), "counter");
}

#[test]
fn every_module_folds_its_own_view_of_one_stream() {
    let domain = domain();
    let events = [bumped("a", 2), bumped("a", 3)];
    let state = domain.fold(&COUNTER.stream("a"), events.iter().map(|(_, e)| e));
    assert_eq!(state.view::<Count>(), Some(&Count(5)));
    assert_eq!(state.view::<Seen>(), Some(&Seen(2)));
}

#[test]
fn decisions_are_tested_given_when_then_with_the_registered_views() {
    let domain = domain();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let bump = |by| Bump {
        counter: "a".into(),
        by,
    };
    given(&domain, vec![bumped("a", 4), bumped("b", 9)])
        .when(ada(), now, &bump(6))
        .then(vec![bumped("a", 6)]);
    given(&domain, vec![bumped("a", 4)])
        .when(ada(), now, &bump(7))
        .then_rejected("too_many");
}
