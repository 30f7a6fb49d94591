//! Erasure on request (crypto-shredding, see `questlog_domain::personal`): `erase_me {"confirm":
//! "<the player's name>"}` by the player itself, `erase_player {"player_id"}` by an admin. Both
//! append `player_erased` to the player's account stream and, in the same append, destroy the
//! player's key and end its sessions (`questlog_beside_subject_erased`, the kernel's) and delete
//! its account — email, username, password hash — (`questlog_beside_account_erased`): from that
//! commit on, every personal field the log holds sealed for the player reads as erased, and the
//! identity can no longer log in.
//!
//! A player with an account but no name in the log (no module's `add_player_name` finds one)
//! may confirm with its account's username, which is kept beside the log, not in it: `decide`
//! accepts such a confirmation provisionally and the erasure's own append checks it against the
//! account (`questlog_beside_account_erased`), refusing the whole append as
//! `account_confirm: <player>` when it does not match, which is answered `confirmation_mismatch`.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use questlog_domain::app::NameFn;
use questlog_domain::personal::ErasureEvent;
use questlog_domain::values::PlayerId;
use questlog_domain::{
    body, Actor, Beside, Command, Context, Edge, Event, Parser, Rejection, Role, StreamId,
    StreamKind,
};
use questlog_store::sealing::BESIDE_SUBJECT_ERASED;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::command::stream;
use crate::state::Account;

/// The beside kind that deletes an erased player's account (`questlog_beside_account_erased`).
pub const BESIDE_ACCOUNT_ERASED: &str = "account_erased";

/// The conflict an erasure's append reports when the account's username does not match the
/// confirmation it was accepted on.
pub const ACCOUNT_CONFIRM: &str = "account_confirm: ";

/// The erasure commands' names.
pub const COMMAND_NAMES: &[&str] = &["erase_me", "erase_player"];

/// Erases a player: the caller itself (confirmed with its name), or any player for an admin.
#[derive(Debug)]
pub struct Erase {
    pub player: PlayerId,
    /// What the player typed to confirm (`erase_me`), checked against its names; `None` for an
    /// admin's `erase_player`.
    pub confirm: Option<String>,
    /// Where the player's names are read from (the running modules' registrations).
    names: Arc<[(StreamKind, NameFn)]>,
    /// Whether the last decision accepted the confirmation as the account's username, for the
    /// append to check ([`Command::beside`] follows each decision of the command).
    by_account: AtomicBool,
}

impl Erase {
    /// The streams that may name the player.
    fn name_streams(&self) -> impl Iterator<Item = (StreamId, NameFn)> + '_ {
        self.names
            .iter()
            .map(|(kind, name)| (kind.uuid(self.player.0), *name))
    }
}

/// `erase_me`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EraseMeIn {
    /// The player's username (any case); its id when it has none.
    confirm: String,
}

/// `erase_player`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ErasePlayerIn {
    player_id: Uuid,
}

/// The erasure commands as the OpenAPI document describes them.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    use questlog_web::openapi::CommandDoc;
    vec![
        CommandDoc::of::<EraseMeIn>(
            "erase_me",
            "Erase the caller's personal data for good (confirmed with its username)",
        ),
        CommandDoc::of::<ErasePlayerIn>("erase_player", "Erase a player's personal data for good")
            .admin(),
    ]
}

/// The erasure commands' parser, reading names from `names`.
pub fn parser(names: Arc<[(StreamKind, NameFn)]>) -> Parser {
    Arc::new(move |name: &str, raw: &[u8], edge: &Edge| {
        let command = if name == "erase_player" {
            let b: ErasePlayerIn = body(raw)?;
            Erase {
                player: PlayerId(b.player_id),
                confirm: None,
                names: names.clone(),
                by_account: AtomicBool::new(false),
            }
        } else {
            let b: EraseMeIn = body(raw)?;
            Erase {
                player: edge.caller,
                confirm: Some(b.confirm),
                names: names.clone(),
                by_account: AtomicBool::new(false),
            }
        };
        Ok(Box::new(command) as Box<dyn Command>)
    })
}

impl Command for Erase {
    fn name(&self) -> &'static str {
        if self.confirm.is_some() {
            "erase_me"
        } else {
            "erase_player"
        }
    }

    fn admin_only(&self) -> bool {
        self.confirm.is_none()
    }

    fn streams(&self, _: &Actor) -> Vec<StreamId> {
        let mut streams = vec![stream(self.player)];
        streams.extend(self.name_streams().map(|(s, _)| s));
        streams
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
        let account = stream(self.player);
        self.by_account.store(false, Ordering::Relaxed);
        if let Some(confirm) = &self.confirm {
            if ctx.actor.role != Role::Player || ctx.actor.identity != self.player {
                return Err(Rejection::forbidden(
                    "forbidden",
                    "erase_me erases the caller; an admin sends erase_player",
                ));
            }
            let names: Vec<String> = self
                .name_streams()
                .filter_map(|(stream, name)| name(ctx.states.state(&stream)))
                .collect();
            // No name in the log, but an account: its username (beside the log) is checked by
            // the append.
            let by_account = names.is_empty()
                && !is_id(confirm, self.player)
                && ctx.view::<Account>(&account).registered;
            if !by_account && !confirmed(confirm, &names, self.player) {
                return Err(mismatch());
            }
            self.by_account.store(by_account, Ordering::Relaxed);
        }
        if ctx.view::<Account>(&account).erased {
            return Err(Rejection::conflict(
                "already_erased",
                "this player is erased already",
            ));
        }
        let erased = ErasureEvent::PlayerErased {
            player_id: self.player,
        };
        Ok(vec![(account, erased.into())])
    }

    fn beside(&self, _: &Actor) -> Vec<Beside> {
        let item = json!({ "player_id": self.player });
        let mut account = item.clone();
        if let Some(confirm) = self
            .confirm
            .as_ref()
            .filter(|_| self.by_account.load(Ordering::Relaxed))
        {
            account["confirm_username"] = json!(confirm.to_lowercase());
        }
        vec![
            Beside {
                kind: BESIDE_SUBJECT_ERASED,
                item,
            },
            Beside {
                kind: BESIDE_ACCOUNT_ERASED,
                item: account,
            },
        ]
    }

    fn conflict(&self, conflict: &str) -> Option<Rejection> {
        (conflict.strip_prefix(ACCOUNT_CONFIRM) == Some(self.player.to_string().as_str()))
            .then(mismatch)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn mismatch() -> Rejection {
    Rejection::invalid(
        "confirmation_mismatch",
        "confirm must be the player's username (its id when it has none)",
    )
}

/// Whether `confirm` is the player's id.
fn is_id(confirm: &str, player: PlayerId) -> bool {
    confirm.trim().eq_ignore_ascii_case(&player.to_string())
}

/// Whether `confirm` names the player: one of its names (case aside), or its id when it has none.
fn confirmed(confirm: &str, names: &[String], player: PlayerId) -> bool {
    if names.is_empty() {
        return is_id(confirm, player);
    }
    names
        .iter()
        .any(|n| n.to_lowercase() == confirm.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_player_confirms_with_its_name_in_any_case() {
        let ada = PlayerId(Uuid::from_u128(1));
        assert!(confirmed("ADA", &["Ada".to_owned()], ada));
        assert!(!confirmed("Bob", &["Ada".to_owned()], ada));
        assert!(!confirmed(&ada.to_string(), &["Ada".to_owned()], ada));
    }

    #[test]
    fn a_player_without_a_name_confirms_with_its_id() {
        let ada = PlayerId(Uuid::from_u128(1));
        assert!(confirmed(&ada.to_string(), &[], ada));
        assert!(!confirmed("ada", &[], ada));
    }

    #[test]
    fn a_confirmation_the_account_refused_is_a_mismatch_of_that_player_only() {
        let ada = PlayerId(Uuid::from_u128(1));
        let erase = Erase {
            player: ada,
            confirm: Some("AdaAccount".to_owned()),
            names: Arc::from(Vec::new()),
            by_account: AtomicBool::new(true),
        };
        let refused = erase.conflict(&format!("{ACCOUNT_CONFIRM}{ada}"));
        assert_eq!(refused.map(|r| r.code), Some("confirmation_mismatch"));
        let other = PlayerId(Uuid::from_u128(2));
        assert!(erase
            .conflict(&format!("{ACCOUNT_CONFIRM}{other}"))
            .is_none());
        // What the append checks: the confirmation, lowercased, beside the account's erasure.
        let beside = erase.beside(&Actor {
            identity: ada,
            role: Role::Player,
        });
        assert_eq!(beside[1].item["confirm_username"], "adaaccount");
        erase.by_account.store(false, Ordering::Relaxed);
        let beside = erase.beside(&Actor {
            identity: ada,
            role: Role::Player,
        });
        assert!(beside[1].item.get("confirm_username").is_none());
    }
}
