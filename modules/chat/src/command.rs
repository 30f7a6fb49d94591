//! The chat's commands as clients send them (`send_message`, `edit_message`, `delete_message`),
//! parsed at the edge into its values, and their decisions against the message's stream and what
//! the academy knows of the players and labs they name.

use std::any::Any;

use questlog_academy::context::AcademyContext as _;
use questlog_academy::stream::StreamId as AcademyStream;
use questlog_domain::{
    body, Actor, Context, Edge, Event as Erased, Personal, Rejection, Role, StreamId,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::event::Event;
use crate::message_stream;
use crate::state::{Message, MessageState};
use crate::values::{Channel, MessageContent, MessageId};

/// A chat command that passed parsing: every value in it is valid on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SendMessage {
        /// Drawn by the edge ([`Edge::new_id`]).
        message_id: MessageId,
        channel: Channel,
        content: MessageContent,
    },
    EditMessage {
        message_id: MessageId,
        content: MessageContent,
    },
    DeleteMessage {
        message_id: MessageId,
    },
}

/// The names `POST /v1/commands/{name}` accepts for the chat.
pub const COMMAND_NAMES: &[&str] = &["send_message", "edit_message", "delete_message"];

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SendMessageBody {
    /// `global`, `lab:<lab_id>`, `dm:<player_id>` or `dm:<a>:<b>`.
    channel: String,
    /// 1–2000 characters, not blank.
    content: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EditMessageBody {
    message_id: Uuid,
    content: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteMessageBody {
    message_id: Uuid,
}

/// The bodies of the chat's commands, for the API's document.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    use questlog_web::openapi::CommandDoc;
    vec![
        CommandDoc::of::<SendMessageBody>("send_message", "Send a message to a channel"),
        CommandDoc::of::<EditMessageBody>("edit_message", "Edit one's own message"),
        CommandDoc::of::<DeleteMessageBody>("delete_message", "Delete a message (soft)"),
    ]
}

impl Command {
    /// Parses a command from its name and its raw JSON body, as `edge` sees it.
    ///
    /// # Errors
    /// `unknown_command` (not found) for a name the chat does not know, `bad_request` for a body
    /// of the wrong shape, and a value's own code (`invalid_channel`, …) for an invalid value.
    pub fn parse(name: &str, raw: &[u8], edge: &Edge) -> Result<Self, Rejection> {
        Ok(match name {
            "send_message" => {
                let b: SendMessageBody = body(raw)?;
                Self::SendMessage {
                    message_id: MessageId(edge.new_id),
                    channel: Channel::parse(&b.channel, edge.caller)?,
                    content: MessageContent::parse(&b.content)?,
                }
            }
            "edit_message" => {
                let b: EditMessageBody = body(raw)?;
                Self::EditMessage {
                    message_id: MessageId(b.message_id),
                    content: MessageContent::parse(&b.content)?,
                }
            }
            "delete_message" => {
                let b: DeleteMessageBody = body(raw)?;
                Self::DeleteMessage {
                    message_id: MessageId(b.message_id),
                }
            }
            other => {
                return Err(Rejection::not_found(
                    "unknown_command",
                    format!("there is no command {other:?}"),
                ))
            }
        })
    }

    /// The kernel's parser for the chat's names.
    pub(crate) fn parse_boxed(
        name: &str,
        raw: &[u8],
        edge: &Edge,
    ) -> Result<Box<dyn questlog_domain::Command>, Rejection> {
        Self::parse(name, raw, edge).map(|c| Box::new(c) as Box<dyn questlog_domain::Command>)
    }

    fn message_id(&self) -> MessageId {
        match self {
            Self::SendMessage { message_id, .. }
            | Self::EditMessage { message_id, .. }
            | Self::DeleteMessage { message_id } => *message_id,
        }
    }
}

/// A message that was sent, or `message_not_found`.
fn sent(ctx: &Context<'_>, id: MessageId) -> Result<Message, Rejection> {
    ctx.view::<MessageState>(&message_stream(id))
        .sent
        .clone()
        .ok_or_else(|| {
            Rejection::not_found("message_not_found", format!("there is no message {id}"))
        })
}

impl questlog_domain::Command for Command {
    fn name(&self) -> &'static str {
        match self {
            Self::SendMessage { .. } => "send_message",
            Self::EditMessage { .. } => "edit_message",
            Self::DeleteMessage { .. } => "delete_message",
        }
    }

    fn rate_limited(&self) -> bool {
        true
    }

    fn rate_limit_detail(&self) -> &'static str {
        "too many chat messages; wait before sending more"
    }

    fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        let message = message_stream(self.message_id());
        match self {
            Self::SendMessage { channel, .. } => {
                let mut streams = vec![AcademyStream::Player(actor.identity).id(), message];
                match channel {
                    Channel::Global => {}
                    Channel::Lab(_) => streams.push(AcademyStream::Catalog.id()),
                    Channel::Direct(..) => {
                        if let Some(peer) = channel.peer(actor.identity) {
                            streams.push(AcademyStream::Player(peer).id());
                        }
                    }
                }
                streams
            }
            Self::EditMessage { .. } | Self::DeleteMessage { .. } => vec![message],
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Erased)>, Rejection> {
        let me = ctx.actor.identity;
        let on_message = |message_id: &MessageId, event: Event| {
            Ok(vec![(message_stream(*message_id), Erased::new(event))])
        };
        match self {
            Self::SendMessage {
                message_id,
                channel,
                content,
            } => {
                ctx.registered_self()?;
                match channel {
                    Channel::Global => {}
                    Channel::Lab(lab) => {
                        if !ctx.catalog().labs.contains_key(lab) {
                            return Err(Rejection::not_found(
                                "unknown_lab",
                                format!("there is no lab {lab}"),
                            ));
                        }
                    }
                    Channel::Direct(..) => {
                        if let Some(peer) = channel.peer(me) {
                            ctx.registered_other(peer)?;
                        }
                    }
                }
                on_message(
                    message_id,
                    Event::MessageSent {
                        message_id: *message_id,
                        channel: channel.clone(),
                        sender: me,
                        content: Personal::new(me, content.clone()),
                    },
                )
            }
            Self::EditMessage {
                message_id,
                content,
            } => {
                let message = sent(ctx, *message_id)?;
                if message.sender != me {
                    return Err(Rejection::forbidden(
                        "forbidden",
                        "only its sender may edit a message",
                    ));
                }
                match &message.content {
                    _ if message.deleted => Err(Rejection::conflict(
                        "message_deleted",
                        format!("message {message_id} was deleted"),
                    )),
                    Some(now) if now == content => Ok(vec![]),
                    _ => on_message(
                        message_id,
                        Event::MessageEdited {
                            message_id: *message_id,
                            content: Personal::new(me, content.clone()),
                        },
                    ),
                }
            }
            Self::DeleteMessage { message_id } => {
                let message = sent(ctx, *message_id)?;
                if message.sender != me && ctx.actor.role != Role::Admin {
                    return Err(Rejection::forbidden(
                        "forbidden",
                        "only its sender or an admin may delete a message",
                    ));
                }
                if message.deleted {
                    return Ok(vec![]);
                }
                on_message(
                    message_id,
                    Event::MessageDeleted {
                        message_id: *message_id,
                        by: me,
                    },
                )
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
