//! A given/when/then harness for `decide`: given the events already in the log, when an actor sends
//! a command at some instant, then these events (or this rejection) come out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{decide, Actor, Command, Context, Event, Rejection, States, StreamId, StreamState};

/// The history a decision is made against.
pub struct Given {
    events: Vec<(StreamId, Event)>,
}

/// The log so far, each event with the stream it belongs to, in order.
pub fn given(events: Vec<(StreamId, Event)>) -> Given {
    Given { events }
}

/// The states of exactly the streams a command declares it reads.
struct Folded(HashMap<StreamId, StreamState>);

impl States for Folded {
    fn state(&self, stream: &StreamId) -> &StreamState {
        self.0.get(stream).unwrap_or_else(|| {
            panic!("decide read {stream}, which the command does not list in Command::streams")
        })
    }
}

impl Given {
    /// Runs `decide` for `command`, sent by `actor` at `now`.
    #[track_caller]
    pub fn when(self, actor: Actor, now: DateTime<Utc>, command: Command) -> Then {
        let read = command.streams(&actor);
        let states = Folded(
            read.iter()
                .map(|stream| {
                    let events = self
                        .events
                        .iter()
                        .filter(|(s, _)| s == stream)
                        .map(|(_, e)| e);
                    (stream.clone(), StreamState::fold(stream, events))
                })
                .collect(),
        );
        let ctx = Context {
            actor,
            now,
            states: &states,
        };
        let outcome = decide(&command, &ctx);
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
}
