//! The chat's names on the kernel's seams: its projection and its live topic, declared once for
//! the projector that produces them and the reads that follow them.

use questlog_bus::{ProjectionName, TopicKind};

/// Chat messages (`rm_messages`).
pub const CHAT: ProjectionName = ProjectionName::new("chat");

/// A chat channel's messages: `channel:<canonical channel>`.
pub const CHANNEL_TOPIC: TopicKind = TopicKind::new("channel");
