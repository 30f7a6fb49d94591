//! A chat message, folded from its `message-<id>` stream: who sent it where, and what it says now.

use questlog_academy::values::PlayerId;
use questlog_domain::View;

use crate::event::Event;
use crate::values::{Channel, MessageContent};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageState {
    /// `None` until sent.
    pub sent: Option<Message>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    pub sender: PlayerId,
    /// `None` once deleted, or once its sender is erased.
    pub content: Option<MessageContent>,
    pub deleted: bool,
}

impl MessageState {
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::MessageSent {
                channel,
                sender,
                content,
                ..
            } => {
                self.sent = Some(Message {
                    channel: channel.clone(),
                    sender: *sender,
                    content: content.value().cloned(),
                    deleted: false,
                });
            }
            Event::MessageEdited { content, .. } => {
                if let Some(m) = &mut self.sent {
                    m.content = content.value().cloned();
                }
            }
            Event::MessageDeleted { .. } => {
                if let Some(m) = &mut self.sent {
                    m.content = None;
                    m.deleted = true;
                }
            }
        }
    }
}

/// The chat folds each `message-<id>` stream into its message.
impl View for MessageState {
    fn initial(_stream: &questlog_domain::StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &questlog_domain::Event) {
        if let Some(event) = event.get::<Event>() {
            MessageState::evolve(self, event);
        }
    }
}

/// The JSON an admin sees for a message's folded state (`GET /v1/admin/streams/message-<id>`).
pub(crate) fn state_json(message: &MessageState) -> serde_json::Value {
    let sent = message.sent.as_ref();
    serde_json::to_value(MessageJson {
        kind: "message",
        sent: sent.is_some(),
        channel: sent.map(|m| m.channel.to_string()),
        sender: sent.map(|m| m.sender),
        content: sent.and_then(|m| m.content.as_ref()).map(|c| c.as_str()),
        deleted: sent.is_some_and(|m| m.deleted),
    })
    // A plain struct of strings and booleans: serialisation cannot fail.
    .unwrap_or(serde_json::Value::Null)
}

#[derive(serde::Serialize)]
struct MessageJson<'a> {
    kind: &'static str,
    sent: bool,
    channel: Option<String>,
    sender: Option<PlayerId>,
    content: Option<&'a str>,
    deleted: bool,
}
