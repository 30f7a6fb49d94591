//! A given/when/then harness for every module's decisions: given the events already in the log,
//! when an actor sends a command at some instant, then these events (or this rejection) come
//! out. The states are folded by the views the modules under test register, exactly as the
//! writer folds them. And what every module's parse tests assert: a body parsed at one [`edge`],
//! refused with a code and a kind ([`Parsing`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::app::Domain;
use crate::command::{Actor, Command, Context, Edge, States};
use crate::event::Event;
use crate::stream::{StreamId, StreamState};
use crate::values::PlayerId;
use crate::{Rejection, RejectionKind};

/// The history a decision is made against.
pub struct Given<'d> {
    domain: &'d Domain,
    events: Vec<(StreamId, Event)>,
}

/// The log so far, each event with the stream it belongs to, in order, folded by `domain`'s views.
pub fn given(domain: &Domain, events: Vec<(StreamId, Event)>) -> Given<'_> {
    Given { domain, events }
}

/// The states of exactly the streams a command declares it reads.
struct Folded<'a> {
    states: HashMap<StreamId, StreamState>,
    /// The earlier events the command names that the given history has.
    earlier: HashMap<(StreamId, u64), &'a Event>,
}

impl States for Folded<'_> {
    fn state(&self, stream: &StreamId) -> &StreamState {
        self.states.get(stream).unwrap_or_else(|| {
            panic!("decide read {stream}, which the command does not list in its streams")
        })
    }

    fn event(&self, stream: &StreamId, version: u64) -> Option<&Event> {
        self.earlier.get(&(stream.clone(), version)).copied()
    }
}

impl Given<'_> {
    /// The given events of `stream`, in order.
    fn history<'s, 'a>(
        &'s self,
        stream: &'a StreamId,
    ) -> impl Iterator<Item = &'s Event> + use<'s, 'a> {
        self.events
            .iter()
            .filter(move |(s, _)| s == stream)
            .map(|(_, e)| e)
    }

    /// Decides `command`, sent by `actor` at `now`, as the writer would (an admin-only command
    /// from a player is refused before its decision).
    #[track_caller]
    pub fn when(self, actor: Actor, now: DateTime<Utc>, command: &dyn Command) -> Then {
        let read = command.streams(&actor);
        let states = Folded {
            // As the writer loads them: a kind folded from its latest event gets only that one.
            states: read
                .iter()
                .map(|stream| {
                    let state = if self.domain.folds_from_latest(stream) {
                        self.domain.fold(stream, self.history(stream).last())
                    } else {
                        self.domain.fold(stream, self.history(stream))
                    };
                    (stream.clone(), state)
                })
                .collect(),
            earlier: command
                .earlier_events(&actor)
                .into_iter()
                .filter_map(|(stream, version)| {
                    let index = usize::try_from(version.checked_sub(1)?).ok()?;
                    let event = self.history(&stream).nth(index)?;
                    Some(((stream, version), event))
                })
                .collect(),
        };
        let ctx = Context {
            actor,
            now,
            states: &states,
        };
        let outcome = crate::decide(command, &ctx);
        if let Ok(events) = &outcome {
            for (stream, event) in events {
                assert!(
                    read.contains(stream),
                    "{command:?} appended {event:?} to {stream}, a stream it did not read"
                );
            }
        }
        Then { outcome }
    }
}

/// The outcome of one decision, to assert on.
#[must_use = "a decision is only tested once `then` or `then_rejected` is called"]
pub struct Then {
    outcome: Result<Vec<(StreamId, Event)>, Rejection>,
}

impl Then {
    /// Asserts the decision accepted the command with exactly these events, in this order.
    #[track_caller]
    pub fn then(self, expected: Vec<(StreamId, Event)>) {
        match self.outcome {
            Ok(events) => assert_eq!(events, expected),
            Err(rejection) => panic!("expected events {expected:?}, got rejected: {rejection}"),
        }
    }

    /// Asserts the decision refused the command with this code.
    #[track_caller]
    pub fn then_rejected(self, code: &str) -> Rejection {
        match self.outcome {
            Ok(events) => panic!("expected rejection {code}, got events {events:?}"),
            Err(rejection) => {
                assert_eq!(rejection.code, code, "rejected with {rejection}");
                rejection
            }
        }
    }

    /// The events decided, or the rejection.
    pub fn outcome(self) -> Result<Vec<(StreamId, Event)>, Rejection> {
        self.outcome
    }
}

/// The name key of every test's edge ([`edge`]).
pub const NAMES: crate::NameKey = crate::NameKey::new([0x5e; 32]);

/// The edge every parse test runs at: the sender (the player with id 1), the id it draws and the
/// tests' name key ([`NAMES`]).
pub fn edge() -> Edge {
    Edge {
        caller: PlayerId(uuid::Uuid::from_u128(1)),
        new_id: uuid::Uuid::from_u128(0x5e17),
        names: NAMES,
    }
}

/// A module's command parser under test: a name and a JSON body in, a command or a rejection out,
/// at [`edge`].
pub struct Parsing<C>(pub fn(&str, &[u8], &Edge) -> Result<C, Rejection>);

impl<C: std::fmt::Debug> Parsing<C> {
    /// Parses `body`, written as JSON, as the command `name`.
    pub fn parse(&self, name: &str, body: &serde_json::Value) -> Result<C, Rejection> {
        (self.0)(name, body.to_string().as_bytes(), &edge())
    }

    /// Asserts that `body` is refused as `name` with this code and kind.
    #[track_caller]
    pub fn rejected(&self, name: &str, body: &serde_json::Value, code: &str, kind: RejectionKind) {
        match self.parse(name, body) {
            Ok(cmd) => panic!("{name} {body} parsed as {cmd:?}, expected {code}"),
            Err(r) => {
                assert_eq!((r.code, r.kind), (code, kind), "{name} {body}: {r}");
            }
        }
    }

    /// Asserts that `body` is refused as `name` for its shape: `bad_request`.
    #[track_caller]
    pub fn bad_request(&self, name: &str, body: &serde_json::Value) {
        self.rejected(name, body, "bad_request", RejectionKind::BadRequest);
    }

    /// Asserts that `body` is refused as `name` for a value: an invalid value's `code`.
    #[track_caller]
    pub fn invalid(&self, name: &str, body: &serde_json::Value, code: &str) {
        self.rejected(name, body, code, RejectionKind::Invalid);
    }

    /// Parses `body` as sent, byte for byte (JSON no `serde_json::Value` can hold: a key twice,
    /// nesting beyond the limit, numbers out of range).
    pub fn raw(&self, name: &str, body: &str) -> Result<C, Rejection> {
        (self.0)(name, body.as_bytes(), &edge())
    }

    /// Asserts that `body`, as sent, is a `bad_request` whose detail says `detail`.
    #[track_caller]
    pub fn raw_bad_request(&self, name: &str, body: &str, detail: &str) {
        match self.raw(name, body) {
            Ok(cmd) => panic!("{name} {body} parsed as {cmd:?}"),
            Err(r) => {
                assert_eq!(
                    (r.code, r.kind),
                    ("bad_request", RejectionKind::BadRequest),
                    "{r}"
                );
                assert!(r.detail.contains(detail), "{name} {body}: {}", r.detail);
            }
        }
    }
}

/// What every module's commands share at the edge, checked from a valid body of each name.
impl<C: Command> Parsing<C> {
    /// Asserts that the valid body of each name parses into the command of that name.
    #[track_caller]
    pub fn each_parses_as_named(
        &self,
        names: &[&str],
        valid_body: impl Fn(&str) -> serde_json::Value,
    ) {
        for name in names {
            let cmd = self
                .parse(name, &valid_body(name))
                .unwrap_or_else(|r| panic!("{name}: {r}"));
            assert_eq!(cmd.name(), *name);
        }
    }

    /// Asserts that a field no command of these names knows makes each body a `bad_request`.
    #[track_caller]
    pub fn unknown_field_refused(
        &self,
        names: &[&str],
        valid_body: impl Fn(&str) -> serde_json::Value,
    ) {
        for name in names {
            let mut body = valid_body(name);
            body["xp_bonus"] = serde_json::json!(1000);
            self.bad_request(name, &body);
        }
    }

    /// Asserts that each body without one of its fields (but the `optional` ones) is a
    /// `bad_request`.
    #[track_caller]
    pub fn missing_field_refused(
        &self,
        names: &[&str],
        valid_body: impl Fn(&str) -> serde_json::Value,
        optional: &[&str],
    ) {
        for name in names {
            let body = valid_body(name);
            let fields = body
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>());
            for field in fields.unwrap_or_default() {
                if optional.contains(&field.as_str()) {
                    continue;
                }
                let mut without = body.clone();
                if let Some(object) = without.as_object_mut() {
                    object.remove(&field);
                }
                self.bad_request(name, &without);
            }
        }
    }
}
