//! A chat message, folded from its `message-<id>` stream: who sent it where, and what it says now.

pub mod projection;
pub mod read;

use crate::event::Event;
use crate::values::{Channel, MessageContent, PlayerId};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageState {
    /// `None` until sent.
    pub sent: Option<Message>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    pub sender: PlayerId,
    /// `None` once deleted.
    pub content: Option<MessageContent>,
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
                    content: Some(content.clone()),
                });
            }
            Event::MessageEdited { content, .. } => {
                if let Some(m) = &mut self.sent {
                    m.content = Some(content.clone());
                }
            }
            Event::MessageDeleted { .. } => {
                if let Some(m) = &mut self.sent {
                    m.content = None;
                }
            }
            _ => {}
        }
    }
}
