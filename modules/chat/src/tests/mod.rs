//! The chat's tests: given the academy's and the chat's events, when a command, then events or a
//! rejection, decided by the kernel's harness over a domain of the academy and the chat; the
//! parsing of its commands and the serde of its events.

mod decide;
mod parse;
mod serde_round_trip;

use chrono::{DateTime, Utc};
use questlog_academy::fixtures;
use questlog_domain::testing::{self as kernel, Then};
use questlog_domain::{Actor, Event as Erased, StreamId};

use crate::{message_stream, Chat, Command, Event, MessageId};

/// One event of the log, as the kernel holds it.
pub(crate) type Logged = (StreamId, Erased);

/// The academy's events (its fixtures') as the log holds them.
pub(crate) fn academy(
    events: Vec<(questlog_academy::StreamId, questlog_academy::Event)>,
) -> Vec<Logged> {
    fixtures::erased(events)
}

/// A chat event on its message's stream.
pub(crate) fn on_message(id: MessageId, event: Event) -> Logged {
    (message_stream(id), Erased::new(event))
}

/// Concatenates event lists, to write `given` histories in parts.
pub(crate) fn history<const N: usize>(parts: [Vec<Logged>; N]) -> Vec<Logged> {
    parts.into_iter().flatten().collect()
}

/// The history a decision is made against.
pub(crate) struct Given(Vec<Logged>);

/// The log so far, in order.
pub(crate) fn given(events: Vec<Logged>) -> Given {
    Given(events)
}

impl Given {
    /// Decides `command`, sent by `actor` at `now`, as the writer would.
    #[track_caller]
    pub(crate) fn when(self, actor: Actor, now: DateTime<Utc>, command: Command) -> Then {
        let domain = fixtures::domain(&[&Chat]);
        kernel::given(&domain, self.0).when(actor, now, &command)
    }
}
