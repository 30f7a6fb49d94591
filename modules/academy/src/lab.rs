//! A player's session of one lab, folded from its `lab-<player>-<lab>` stream.
//!
//! The log records what a session went through (started, each new furthest step, deleted); the
//! virtual file system a client saves is a working copy, kept beside the log (latest only), so
//! that saving every few seconds never grows the log. See ARCHITECTURE.md, "Lab sessions".

pub mod projection;
pub mod workspace;

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
            _ => {}
        }
    }
}
