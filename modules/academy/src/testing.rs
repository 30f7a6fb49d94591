//! The kernel's given/when/then harness in the academy's own types: given the academy's events
//! already in the log, when an actor sends a command at some instant, then these events (or this
//! rejection) come out, with the states folded by the views the academy registers.

use chrono::{DateTime, Utc};
use questlog_domain::testing as kernel;
use questlog_domain::{App, Domain, Module as _};

use crate::{Academy, Actor, Command, Event, Rejection, StreamId};

/// The history a decision is made against.
pub struct Given {
    events: Vec<(StreamId, Event)>,
}

/// The log so far, each event with the stream it belongs to, in order.
pub fn given(events: Vec<(StreamId, Event)>) -> Given {
    Given { events }
}

fn domain() -> Domain {
    let mut app = App::new();
    Academy.build(&mut app);
    app.domain().as_ref().clone()
}

fn erased(
    events: Vec<(StreamId, Event)>,
) -> Vec<(questlog_domain::StreamId, questlog_domain::Event)> {
    events
        .into_iter()
        .map(|(s, e)| (s.id(), questlog_domain::Event::new(e)))
        .collect()
}

impl Given {
    /// Decides `command`, sent by `actor` at `now`.
    #[track_caller]
    pub fn when(self, actor: Actor, now: DateTime<Utc>, command: Command) -> Then {
        let domain = domain();
        Then(kernel::given(&domain, erased(self.events)).when(actor, now, &command))
    }
}

/// The outcome of one decision, to assert on.
#[must_use = "a decision is only tested once `then` or `then_rejected` is called"]
pub struct Then(kernel::Then);

impl Then {
    /// Asserts the decision accepted the command with exactly these events, in this order.
    #[track_caller]
    pub fn then(self, expected: Vec<(StreamId, Event)>) {
        self.0.then(erased(expected));
    }

    /// Asserts the decision refused the command with this code.
    #[track_caller]
    pub fn then_rejected(self, code: &str) -> Rejection {
        self.0.then_rejected(code)
    }
}
