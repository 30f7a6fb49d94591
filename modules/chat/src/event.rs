//! The chat's events, serde-stable: each is stored as its `type` and its `data` object, as the
//! academy's are (the names and shapes are the log's, unchanged since the chat was split out).

use questlog_academy::values::PlayerId;
use questlog_domain::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::{Channel, MessageContent, MessageId};

/// Every event the chat records, on a message's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// Sent to a channel (canonical name).
    MessageSent {
        message_id: MessageId,
        channel: Channel,
        sender: PlayerId,
        content: MessageContent,
    },
    /// Its sender changed its text.
    MessageEdited {
        message_id: MessageId,
        content: MessageContent,
    },
    /// Deleted by its sender or an admin; its text is gone from the read models.
    MessageDeleted { message_id: MessageId, by: PlayerId },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &["message_sent", "message_edited", "message_deleted"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::MessageSent { .. } => "message_sent",
            Self::MessageEdited { .. } => "message_edited",
            Self::MessageDeleted { .. } => "message_deleted",
        }
    }
}
