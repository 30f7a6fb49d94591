//! What other modules' decisions read of the academy, through the kernel's one [`Context`]: a
//! registered player (the sender or another), the catalog, a lab the player has unlocked. Each
//! read stream must be among the command's `streams` (the player's `StreamId::Player`, the
//! `StreamId::Catalog`).

use questlog_domain::{Context, Rejection};

use crate::catalog::{CatalogState, Lab};
use crate::player::PlayerState;
use crate::stream::StreamId;
use crate::values::{LabId, PlayerId};

/// The academy's reads on a decision's context.
pub trait AcademyContext {
    /// The player's state (registered or not).
    fn player(&self, id: PlayerId) -> &PlayerState;

    /// The catalog of modules and labs.
    fn catalog(&self) -> &CatalogState;

    /// The sender's player, or `not_registered`.
    ///
    /// # Errors
    /// `not_registered` (not found) when the sender has no player yet.
    fn registered_self(&self) -> Result<&PlayerState, Rejection>;

    /// Another player, or `player_not_found`.
    ///
    /// # Errors
    /// `player_not_found` when no player has that id.
    fn registered_other(&self, id: PlayerId) -> Result<&PlayerState, Rejection>;

    /// The catalog's lab, if it is unlocked for `player`.
    ///
    /// # Errors
    /// `unknown_lab` when the catalog has no such lab, `module_locked` when its module is locked.
    fn unlocked_lab(&self, player: &PlayerState, lab_id: &LabId) -> Result<&Lab, Rejection>;
}

impl AcademyContext for Context<'_> {
    fn player(&self, id: PlayerId) -> &PlayerState {
        self.view::<PlayerState>(&StreamId::Player(id).id())
    }

    fn catalog(&self) -> &CatalogState {
        self.view::<CatalogState>(&StreamId::Catalog.id())
    }

    fn registered_self(&self) -> Result<&PlayerState, Rejection> {
        let me = self.player(self.actor.identity);
        if me.is_registered() {
            Ok(me)
        } else {
            Err(Rejection::not_found(
                "not_registered",
                "this identity has no player yet: send register_player first",
            ))
        }
    }

    fn registered_other(&self, id: PlayerId) -> Result<&PlayerState, Rejection> {
        let player = self.player(id);
        if player.is_registered() {
            Ok(player)
        } else {
            Err(Rejection::not_found(
                "player_not_found",
                format!("there is no player {id}"),
            ))
        }
    }

    fn unlocked_lab(&self, player: &PlayerState, lab_id: &LabId) -> Result<&Lab, Rejection> {
        let catalog = self.catalog();
        let lab = catalog.labs.get(lab_id).ok_or_else(|| {
            Rejection::not_found("unknown_lab", format!("there is no lab {lab_id}"))
        })?;
        if !catalog.is_unlocked(lab.module, &player.completed_modules) {
            return Err(Rejection::forbidden(
                "module_locked",
                format!(
                    "module {} is locked: complete the modules it requires first",
                    lab.module
                ),
            ));
        }
        Ok(lab)
    }
}
