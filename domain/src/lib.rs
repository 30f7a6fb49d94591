//! What every module's domain shares: commands are decided by pure functions into events, and
//! state is a pure fold of events ([`Command`], [`View`], [`DomainEvent`]); the [`App`] on which
//! modules register them ([`Module`]); the values every module uses; the given/when/then harness
//! ([`testing`]). Nothing here does IO, and nothing here names a game: the modules bring the
//! nouns.

pub mod app;
pub mod command;
pub mod event;
pub mod json;
pub mod personal;
pub mod stream;
pub mod testing;
pub mod values;

#[cfg(test)]
mod tests;

use std::fmt;

pub use app::{App, Domain, Module, Parser};
pub use command::{
    body, refused_when_decided, Actor, Beside, Command, Context, Edge, Role, States,
};
pub use event::{DecodeError, DomainEvent, Event};
pub use personal::{ErasureEvent, LegacyField, NameKey, Personal};
pub use stream::{StreamId, StreamKind, StreamState, UnknownStream, View};

/// Decides `command` in `ctx`, refusing an admin-only command from anyone but an admin before
/// its decision: what every writer and test runs.
///
/// # Errors
/// `forbidden`, or the command's own [`Rejection`].
pub fn decide(
    command: &dyn Command,
    ctx: &Context<'_>,
) -> Result<Vec<(StreamId, Event)>, Rejection> {
    if command.admin_only() && ctx.actor.role != Role::Admin {
        return Err(Rejection::forbidden(
            "forbidden",
            format!("{} needs an admin token", command.name()),
        ));
    }
    command.decide(ctx)
}

/// What kind of refusal a [`Rejection`] is; the HTTP edge maps each to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Malformed input: wrong shape or types (400).
    BadRequest,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// Something named does not exist (404).
    NotFound,
    /// Conflicts with current state (409).
    Conflict,
    /// Well-formed but invalid values (422).
    Invalid,
    /// A value over a size limit the domain enforces (413).
    TooLarge,
}

/// A command refused by the domain, with a stable snake_case `code` a client can switch on, and
/// any members the refusal carries beside it for the client to act on (problem+json extension
/// members, such as the current state a conflicting write lost to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub code: &'static str,
    pub detail: String,
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Rejection {
    pub fn new(kind: RejectionKind, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }
    /// This refusal with the extension member `name` (never `type`, `title`, `status`, `detail`
    /// or `code`, which the problem itself carries).
    #[must_use]
    pub fn with(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(name.to_owned(), value);
        self
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(RejectionKind::BadRequest, "bad_request", detail)
    }
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(RejectionKind::Forbidden, code, detail)
    }
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(RejectionKind::NotFound, code, detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(RejectionKind::Conflict, code, detail)
    }
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(RejectionKind::Invalid, code, detail)
    }
    pub fn too_large(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(RejectionKind::TooLarge, code, detail)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Rejection {}
