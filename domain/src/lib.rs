//! questlog's domain: commands are decided by pure functions into events, and state is a pure
//! fold of events. Nothing here does IO, so the command API, the projectors, time-travel reads and
//! the admin CLI all run the same code.

pub mod catalog;
pub mod chat;
pub mod command;
pub mod decide;
pub mod event;
pub mod json;
pub mod lab;
pub mod player;
pub mod rules;
pub mod stream;
pub mod values;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::fmt;

pub use command::{Actor, Command, Edge, Role};
pub use decide::{decide, Context, States};
pub use event::Event;
pub use stream::{StreamId, StreamState};

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
}

/// A command refused by the domain, with a stable snake_case `code` a client can switch on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub code: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(kind: RejectionKind, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            detail: detail.into(),
        }
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
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Rejection {}
