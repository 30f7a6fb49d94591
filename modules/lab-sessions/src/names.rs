//! The lab sessions' names on the kernel's seams: their projection (checkpoint, leadership lock,
//! announcement subject) and their live topic, declared once for the projector that produces them
//! and the reads that follow them.

use questlog_bus::{ProjectionName, TopicKind};

/// Players' lab sessions (`rm_lab_sessions`).
pub const LABS: ProjectionName = ProjectionName::new("labs");

/// A player's session of a lab: `lab:<player>:<lab_id>`.
pub const LAB_TOPIC: TopicKind = TopicKind::new("lab");
