//! The lab sessions' events, serde-stable: each is stored as its `type` and its `data` object, as
//! the academy's are (the names and shapes are the log's, unchanged since lab sessions were split
//! out of the academy).

use questlog_academy::values::LabId;
use questlog_domain::DomainEvent;
use serde::{Deserialize, Serialize};

/// Every event a lab session records, on its `lab-<player>-<lab>` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// The player started the lab (again, after a deletion).
    LabStarted { lab_id: LabId },
    /// The player reached a step further than any before in this session. Saves that reach no
    /// new step append nothing (their file system is kept as the working copy).
    LabProgressed { lab_id: LabId, step: u32 },
    /// The saved state was deleted (by the player or an admin).
    LabStateDeleted { lab_id: LabId },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &["lab_started", "lab_progressed", "lab_state_deleted"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::LabStarted { .. } => "lab_started",
            Self::LabProgressed { .. } => "lab_progressed",
            Self::LabStateDeleted { .. } => "lab_state_deleted",
        }
    }
}

impl Event {
    /// The lab the event is about.
    pub fn lab_id(&self) -> &LabId {
        match self {
            Self::LabStarted { lab_id }
            | Self::LabProgressed { lab_id, .. }
            | Self::LabStateDeleted { lab_id } => lab_id,
        }
    }
}
