//! The chat: messages players send to everyone, to a lab's channel or to one another, edited
//! and deleted by their senders. [`Chat`] registers on the kernel its events, its commands (rate
//! limited per sender), the `message` stream kind and its [`MessageState`] view, the chat
//! projection, the channel history route and the `channel:` live topic. It needs the academy
//! for its players and the catalog's labs.

pub mod command;
pub mod event;
pub mod names;
pub mod projection;
pub mod read;
pub mod state;
pub mod values;

#[cfg(test)]
mod tests;

use questlog_domain::{App, Module, StreamKind};
use questlog_projector::ProjectorExt as _;
use questlog_query_api::QueryApp as _;
use questlog_web::openapi::ApiDocsExt as _;

pub use command::{Command, COMMAND_NAMES};
pub use event::Event;
pub use state::{Message, MessageState};
pub use values::{Channel, MessageContent, MessageId};

/// One chat message (`message-<uuid>`).
pub const MESSAGE: StreamKind = StreamKind::new("message");

/// The stream of one message.
pub fn message_stream(id: MessageId) -> questlog_domain::StreamId {
    MESSAGE.uuid(id.0)
}

/// The message a stream id names, if it is a message's stream.
pub fn message_of(stream: &str) -> Option<MessageId> {
    let key = stream.strip_prefix("message-")?;
    uuid::Uuid::parse_str(key).ok().map(MessageId)
}

/// The chat's registration on the kernel (after the academy's, whose streams it reads).
#[derive(Debug, Clone, Copy, Default)]
pub struct Chat;

impl Module for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn build(&self, app: &mut App) {
        app.add_events::<Event>()
            .add_commands(COMMAND_NAMES, Command::parse_boxed)
            .add_command_docs(command::docs())
            .add_stream(MESSAGE, |key| uuid::Uuid::parse_str(key).is_ok())
            .add_view::<MessageState>(MESSAGE);
        app.add_projection(projection::Chat);
        read::register(app);
        app.add_state_json::<MessageState>(MESSAGE, state::state_json);
    }
}

/// The chat's flood limit, as the binary reads it (flags and environment): the edge's per-sender
/// limit on the chat's rate-limited commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// Chat commands (send, edit, delete) a player may make per minute, on average.
    #[arg(long, env = "QUESTLOG_CHAT_PER_MINUTE", default_value_t = ChatArgs::default().chat_per_minute)]
    pub chat_per_minute: std::num::NonZeroU32,

    /// Chat commands a player may make at once before the per-minute rate applies.
    #[arg(long, env = "QUESTLOG_CHAT_BURST", default_value_t = ChatArgs::default().chat_burst)]
    pub chat_burst: std::num::NonZeroU32,
}

impl Default for ChatArgs {
    fn default() -> Self {
        Self {
            chat_per_minute: std::num::NonZeroU32::new(60).unwrap_or(std::num::NonZeroU32::MIN),
            chat_burst: std::num::NonZeroU32::new(10).unwrap_or(std::num::NonZeroU32::MIN),
        }
    }
}
