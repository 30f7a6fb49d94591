//! The presence module's names on the kernel's seams: its projection and its live topic,
//! declared once for the projector that produces them and the reads that follow them.

use questlog_bus::{ProjectionName, TopicKind};

/// Who is online (`rm_presence`, `rm_presence_history`).
pub const PRESENCE: ProjectionName = ProjectionName::new("presence");

/// Who is online: `presence`.
pub const PRESENCE_TOPIC: TopicKind = TopicKind::new("presence");
