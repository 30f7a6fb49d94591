//! A player's session of one lab, folded from its `lab-<player>-<lab>` stream.
//!
//! The log records what a session went through (started, each new furthest step, deleted); the
//! virtual file system a client saves is a working copy, kept beside the log (latest only), so
//! that saving every few seconds never grows the log. See ARCHITECTURE.md, "Lab sessions".

use questlog_domain::View;
use serde::Serialize;

use crate::event::Event;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabSession {
    /// Started and not deleted since.
    pub active: bool,
    /// The furthest step reached since the session started.
    pub furthest_step: u32,
}

impl LabSession {
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::LabStarted { .. } => {
                *self = Self {
                    active: true,
                    furthest_step: 0,
                };
            }
            Event::LabProgressed { step, .. } => {
                self.furthest_step = self.furthest_step.max(*step);
            }
            Event::LabStateDeleted { .. } => *self = Self::default(),
        }
    }
}

/// The module folds each `lab-<player>-<lab>` stream into its session.
impl View for LabSession {
    fn initial(_stream: &questlog_domain::StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &questlog_domain::Event) {
        if let Some(event) = event.get::<Event>() {
            LabSession::evolve(self, event);
        }
    }
}

/// The JSON an admin sees for a session's folded state (`GET /v1/admin/streams/lab-…`).
pub(crate) fn state_json(session: &LabSession) -> serde_json::Value {
    serde_json::to_value(SessionJson {
        kind: "lab",
        active: session.active,
        furthest_step: session.furthest_step,
    })
    // A plain struct of a boolean and a number: serialisation cannot fail.
    .unwrap_or(serde_json::Value::Null)
}

#[derive(Serialize)]
struct SessionJson {
    kind: &'static str,
    active: bool,
    furthest_step: u32,
}
