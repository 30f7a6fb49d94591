//! Commands as the kernel sees them: a module parses a command's JSON body at the edge into its
//! own typed command, which names the streams its decision reads and decides them into events.

use std::any::Any;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::Event;
use crate::json::UniqueKeys;
use crate::personal::NameKey;
use crate::stream::{StreamId, StreamState, View};
use crate::values::PlayerId;
use crate::Rejection;

/// Who sends a command: the identity in the token and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub identity: PlayerId,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Player,
    Admin,
}

/// What the edge knows when it parses a command: who sends it, a fresh id (time-ordered) for
/// whatever the command creates, and the deployment's key for names a stream is named for
/// ([`NameKey`]).
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub caller: PlayerId,
    pub new_id: Uuid,
    pub names: NameKey,
}

/// What a command keeps beside the log: state that is not history (only the latest value counts),
/// written in the append's transaction so it is durable exactly when the events are. `kind` names
/// the SQL function the module's migration defines to write it (`questlog_beside_<kind>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Beside {
    pub kind: &'static str,
    pub item: serde_json::Value,
}

/// A command that passed parsing: every value in it is valid on its own.
pub trait Command: Send + Sync + fmt::Debug + 'static {
    /// The command's wire name.
    fn name(&self) -> &'static str;

    /// Whether only an admin may send it.
    fn admin_only(&self) -> bool {
        false
    }

    /// Whether the edge limits how often one sender may send it (a flood limit, per sender).
    fn rate_limited(&self) -> bool {
        false
    }

    /// What a sender over its limit is told (the module words it for what it limits).
    fn rate_limit_detail(&self) -> &'static str {
        "too many requests; wait before sending more"
    }

    /// The streams the decision reads. Its events land only on these streams, and the append is
    /// checked against the versions they had when they were read.
    fn streams(&self, actor: &Actor) -> Vec<StreamId>;

    /// The events the command causes, each with the stream it lands on, or why it is refused.
    ///
    /// # Errors
    /// A [`Rejection`] with the contract's code when the command may not happen now.
    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection>;

    /// Earlier events of the streams it reads that the decision needs by version, beside the
    /// streams' views ([`Context::event`]): a stream of a kind folded from its latest event alone
    /// ([`crate::App::fold_from_latest`]) keeps no older ones in its views. Read for this
    /// decision only.
    fn earlier_events(&self, _actor: &Actor) -> Vec<(StreamId, u64)> {
        Vec::new()
    }

    /// What the accepted command keeps beside the log.
    fn beside(&self, _actor: &Actor) -> Vec<Beside> {
        Vec::new()
    }

    /// What the command's answer carries beside its events (`result`), computed from the events it
    /// decided: a summary a client would otherwise count itself. `None` (the default) leaves it
    /// out.
    fn result(&self, _events: &[Event]) -> Option<serde_json::Value> {
        None
    }

    /// The answer to a conflict the append reported that is this command's own (a claim its
    /// [`Command::beside`] made that no longer holds), or `None` to decide it again.
    fn conflict(&self, _conflict: &str) -> Option<Rejection> {
        None
    }

    fn as_any(&self) -> &dyn Any;
}

/// The folded state of every stream a command reads ([`Command::streams`]), and the earlier
/// events it names ([`Command::earlier_events`]).
pub trait States {
    fn state(&self, stream: &StreamId) -> &StreamState;

    /// The event at `version` of `stream`, when the command names it in
    /// [`Command::earlier_events`] and the stream has that version (or a decision before it in
    /// the same batch wrote it).
    fn event(&self, stream: &StreamId, version: u64) -> Option<&Event>;
}

/// Everything a decision may depend on besides the command: who sends it, when, and the states.
pub struct Context<'a> {
    pub actor: Actor,
    pub now: DateTime<Utc>,
    pub states: &'a dyn States,
}

impl Context<'_> {
    /// The event at `version` of `stream`, which the command names in
    /// [`Command::earlier_events`]; `None` when the stream has no such version.
    pub fn event(&self, stream: &StreamId, version: u64) -> Option<&Event> {
        self.states.event(stream, version)
    }

    /// The view `V` of `stream`, which the command lists in [`Command::streams`].
    ///
    /// # Panics
    /// When no running module folds `V` for the stream's kind: a registration bug, never input.
    #[track_caller]
    pub fn view<V: View>(&self, stream: &StreamId) -> &V {
        self.states.state(stream).view::<V>().unwrap_or_else(|| {
            panic!(
                "no module folds {} for {stream}",
                std::any::type_name::<V>()
            )
        })
    }
}

/// Parses a command's body: a JSON object (no key named twice, nesting at most 128 deep) of the
/// shape `T` declares.
///
/// # Errors
/// `bad_request` for malformed JSON, another value than an object, or the wrong shape.
pub fn body<T: DeserializeOwned>(raw: &[u8]) -> Result<T, Rejection> {
    let value = UniqueKeys::from_slice(raw)
        .map_err(|e| Rejection::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Rejection::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| Rejection::bad_request(e.to_string()))
}

/// `command`, refused with `rejection` when decided: what a parser hands back for a command it
/// reads but its module refuses for what it names (a built-in definition's id, say), so that the
/// kernel's checks still come first (a player sending an admin's command gets 403, not the
/// module's refusal) and nothing is appended.
pub fn refused_when_decided(command: Box<dyn Command>, rejection: Rejection) -> Box<dyn Command> {
    Box::new(RefusedWhenDecided { command, rejection })
}

#[derive(Debug)]
struct RefusedWhenDecided {
    command: Box<dyn Command>,
    rejection: Rejection,
}

impl Command for RefusedWhenDecided {
    fn name(&self) -> &'static str {
        self.command.name()
    }

    fn admin_only(&self) -> bool {
        self.command.admin_only()
    }

    fn rate_limited(&self) -> bool {
        self.command.rate_limited()
    }

    fn rate_limit_detail(&self) -> &'static str {
        self.command.rate_limit_detail()
    }

    fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        self.command.streams(actor)
    }

    fn decide(&self, _: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
        Err(self.rejection.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
