//! The presence module's tests: given the academy's events, when a presence command, then the
//! academy's events or a rejection, decided by the kernel's harness over a domain of the academy
//! and presence; the parsing of `heartbeat`; the `presence` topic among the academy's.

mod decide;
mod parse;
mod topics;

use chrono::{DateTime, Utc};
use questlog_academy::fixtures;
use questlog_academy::{Event, StreamId};
use questlog_domain::testing as kernel;
use questlog_domain::{Actor, Rejection};

use crate::{Command, Presence};

/// The history a decision is made against: the academy's events, as its fixtures write them.
pub(crate) struct Given(Vec<(StreamId, Event)>);

/// The log so far, in order.
pub(crate) fn given(events: Vec<(StreamId, Event)>) -> Given {
    Given(events)
}

impl Given {
    /// Decides `command`, sent by `actor` at `now`, as the writer would.
    #[track_caller]
    pub(crate) fn when(self, actor: Actor, now: DateTime<Utc>, command: Command) -> Then {
        let domain = fixtures::domain(&[&Presence::default()]);
        Then(kernel::given(&domain, fixtures::erased(self.0)).when(actor, now, &command))
    }
}

/// The outcome of a decision, compared with the academy's events.
pub(crate) struct Then(kernel::Then);

impl Then {
    /// The decision recorded exactly `expected`, in order.
    #[track_caller]
    pub(crate) fn then(self, expected: Vec<(StreamId, Event)>) {
        self.0.then(fixtures::erased(expected));
    }

    /// The decision was refused with `code`.
    #[track_caller]
    pub(crate) fn then_rejected(self, code: &str) -> Rejection {
        self.0.then_rejected(code)
    }
}
