//! The chat's events, serde-stable: each is stored as its `type` and its `data` object, as the
//! academy's are (the names and shapes are the log's, unchanged since the chat was split out).

use questlog_academy::values::PlayerId;
use questlog_domain::{DomainEvent, LegacyField, Personal};
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
        /// The sender's personal data: sealed in the log, erased with the sender.
        content: Personal<MessageContent>,
    },
    /// Its sender changed its text.
    MessageEdited {
        message_id: MessageId,
        content: Personal<MessageContent>,
    },
    /// Deleted by its sender or an admin; its text is gone from the read models.
    MessageDeleted { message_id: MessageId, by: PlayerId },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &["message_sent", "message_edited", "message_deleted"];

    /// A message's text was recorded in plain text before it was sealed. (An edit names no
    /// sender: the text of an edit recorded then stays readable in the log; every read model
    /// drops it at the erasure.)
    const LEGACY_PERSONAL: &'static [LegacyField] = &[LegacyField {
        event_type: "message_sent",
        field: "content",
        subject: "sender",
    }];

    fn event_type(&self) -> &'static str {
        match self {
            Self::MessageSent { .. } => "message_sent",
            Self::MessageEdited { .. } => "message_edited",
            Self::MessageDeleted { .. } => "message_deleted",
        }
    }
}
