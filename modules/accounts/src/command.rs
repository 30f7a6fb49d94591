//! The accounts' commands. They are not sent to `POST /v1/commands/{name}` (a registration needs
//! its password hashed first, a password change its current password checked): the accounts'
//! routes build them and submit them through the writer, so they are decided and appended like
//! any command, with what they keep beside the log written in the append's transaction.

use std::any::Any;

use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, Beside, Command, Context, Event, Rejection, StreamId};
use serde_json::json;

use crate::event::AccountEvent;
use crate::state::Account;
use crate::values::{Email, Username};
use crate::ACCOUNT;

/// The beside kind that records a new account (`questlog_beside_account`): its email, username
/// and password hash; it claims the email and the username.
pub const BESIDE_ACCOUNT: &str = "account";
/// The beside kind that replaces an account's password hash.
pub const BESIDE_PASSWORD: &str = "account_password";

const EMAIL_CLAIM: &str = "account_email: ";
const USERNAME_CLAIM: &str = "account_username: ";

/// The stream of `player`'s account.
pub fn stream(player: PlayerId) -> StreamId {
    ACCOUNT.stream(player.to_string())
}

/// Gives `player` an account. `upgraded`: the identity existed (it played anonymously).
#[derive(Debug)]
pub struct RegisterAccount {
    pub player: PlayerId,
    pub email: Email,
    pub username: Option<Username>,
    pub password_hash: String,
    pub upgraded: bool,
}

impl Command for RegisterAccount {
    fn name(&self) -> &'static str {
        "register_account"
    }

    fn streams(&self, _: &Actor) -> Vec<StreamId> {
        vec![stream(self.player)]
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
        let stream = stream(self.player);
        if ctx.view::<Account>(&stream).registered {
            return Err(Rejection::conflict(
                "already_registered",
                "this identity has an account already",
            ));
        }
        let registered = AccountEvent::AccountRegistered {
            player_id: self.player,
            upgraded: self.upgraded,
        };
        Ok(vec![(stream, registered.into())])
    }

    fn beside(&self, _: &Actor) -> Vec<Beside> {
        vec![Beside {
            kind: BESIDE_ACCOUNT,
            item: json!({
                "player_id": self.player,
                "email": self.email.address,
                "email_key": self.email.key,
                "username": self.username.as_ref().map(|u| &u.name),
                "username_key": self.username.as_ref().map(|u| &u.key),
                "password_hash": self.password_hash,
            }),
        }]
    }

    fn conflict(&self, conflict: &str) -> Option<Rejection> {
        let me = self.player.to_string();
        if conflict.strip_prefix(EMAIL_CLAIM) == Some(me.as_str()) {
            return Some(Rejection::conflict(
                "email_taken",
                "an account with this email exists",
            ));
        }
        if conflict.strip_prefix(USERNAME_CLAIM) == Some(me.as_str()) {
            return Some(Rejection::conflict(
                "username_taken",
                "an account with this username exists",
            ));
        }
        None
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Replaces `player`'s password hash (the current password was checked by the route).
#[derive(Debug)]
pub struct ChangePassword {
    pub player: PlayerId,
    pub password_hash: String,
}

impl Command for ChangePassword {
    fn name(&self) -> &'static str {
        "change_password"
    }

    fn streams(&self, _: &Actor) -> Vec<StreamId> {
        vec![stream(self.player)]
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
        let stream = stream(self.player);
        if !ctx.view::<Account>(&stream).registered {
            return Err(Rejection::not_found(
                "no_account",
                "this identity has no account",
            ));
        }
        let changed = AccountEvent::PasswordChanged {
            player_id: self.player,
        };
        Ok(vec![(stream, changed.into())])
    }

    fn beside(&self, _: &Actor) -> Vec<Beside> {
        vec![Beside {
            kind: BESIDE_PASSWORD,
            item: json!({ "player_id": self.player, "password_hash": self.password_hash }),
        }]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
