//! The accounts' events: the facts of an account's life worth keeping forever. What is not
//! history (credentials, sessions, failed logins) is kept beside the log; see ARCHITECTURE.md,
//! "Accounts".

use questlog_domain::values::PlayerId;
use questlog_domain::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum AccountEvent {
    /// The identity got an account (email and password). `upgraded`: it played anonymously
    /// before, and keeps what it did.
    AccountRegistered { player_id: PlayerId, upgraded: bool },
    /// The account's password changed (its other sessions ended).
    PasswordChanged { player_id: PlayerId },
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] = &["account_registered", "password_changed"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::AccountRegistered { .. } => "account_registered",
            Self::PasswordChanged { .. } => "password_changed",
        }
    }
}
