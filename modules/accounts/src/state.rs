//! What an account's stream (`account-<player id>`) folds to, for the accounts' decisions.

use questlog_domain::{Event, StreamId, View};

use crate::event::AccountEvent;

/// An account as its commands decide against it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub registered: bool,
    pub password_changes: u64,
    /// The player was erased (`player_erased`).
    pub erased: bool,
}

impl View for Account {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Event) {
        match event.get::<AccountEvent>() {
            Some(AccountEvent::AccountRegistered { .. }) => self.registered = true,
            Some(AccountEvent::PasswordChanged { .. }) => self.password_changes += 1,
            None => {
                if questlog_domain::personal::erased_player(event).is_some() {
                    self.erased = true;
                }
            }
        }
    }
}
