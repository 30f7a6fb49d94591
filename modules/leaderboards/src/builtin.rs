//! Boards a module defines in code: built in, not appended as events. A built-in board is
//! defined from the log's start ("at position 0"): it has one season that never resets, and is
//! authoritative (its scores are what its module folds, never a `submit_score`). Its rows are a
//! read model of the module that registers it, kept by that module's projection, which the
//! board's reads follow (`min_position`, `as_of`, the live topic's labels). Every read of the
//! leaderboards answers it like a defined board: the list, a page, a player and its neighbours,
//! a friends board, the seasons, `as_of`, and `leaderboard:<id>`.
//!
//! A module registers one with [`BuiltinBoardsExt::add_builtin_leaderboard`]; the academy's XP
//! board is one (`xp`, over its players' read model).

use std::sync::{Arc, PoisonError, RwLock};

use questlog_bus::ProjectionName;
use questlog_domain::App;
use questlog_query_api::params::At;

use crate::values::{BoardId, Operator, Order};

/// A board defined in code.
#[derive(Debug)]
pub struct BuiltinBoard {
    /// Its id, a [`BoardId`] (`[a-z0-9_]{1,64}`).
    pub id: &'static str,
    pub title: &'static str,
    pub order: Order,
    pub operator: Operator,
    /// The projections its rows are read from.
    pub projections: &'static [ProjectionName],
    /// The change topic on which those projections announce a change of its rows.
    pub changes: &'static str,
    /// Its rows valid at `At`: a `FROM` item named `e`, one row per entry, with the columns
    /// every board's entries have (`player_id`, `score`, `subscore`, `metadata`, `updated_at`,
    /// and the ranking's `sort_score`, `sort_subscore` — both descending —, `reached`), and any
    /// of the module's own. At a past position the rows name it as [`crate::read::AS_OF`], a
    /// parameter the reads bind, never as a literal: one prepared statement for every position.
    pub rows: fn(At) -> String,
}

impl BuiltinBoard {
    /// The board's id, parsed.
    ///
    /// # Panics
    /// When the id is not a board id: a module's constant, checked when it is registered.
    pub fn board(&self) -> BoardId {
        BoardId::parse(self.id).expect("a built-in board's id is checked when registered")
    }
}

/// The built-in boards of the running modules, shared by the leaderboards' commands, reads and
/// topic, whichever module registered first.
#[derive(Debug, Clone, Default)]
pub struct BuiltinBoards(Arc<RwLock<Vec<Arc<BuiltinBoard>>>>);

impl BuiltinBoards {
    /// The built-in board `id`, if there is one.
    pub fn get(&self, id: &str) -> Option<Arc<BuiltinBoard>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|b| b.id == id)
            .cloned()
    }

    /// Every built-in board, in registration order.
    pub fn all(&self) -> Vec<Arc<BuiltinBoard>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Registers built-in boards on the [`App`].
pub trait BuiltinBoardsExt {
    /// Registers `board`.
    ///
    /// # Panics
    /// When its id is not a board id, or another built-in board has it.
    fn add_builtin_leaderboard(&mut self, board: BuiltinBoard) -> &mut Self;

    /// The built-in boards registered on this app (and any registered later).
    fn builtin_leaderboards(&mut self) -> BuiltinBoards;
}

impl BuiltinBoardsExt for App {
    fn add_builtin_leaderboard(&mut self, board: BuiltinBoard) -> &mut Self {
        assert!(BoardId::valid(board.id), "{:?} is not a board id", board.id);
        let boards = self.builtin_leaderboards();
        assert!(
            boards.get(board.id).is_none(),
            "built-in leaderboard {} is registered twice",
            board.id
        );
        boards
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(board));
        self
    }

    fn builtin_leaderboards(&mut self) -> BuiltinBoards {
        self.part_mut::<BuiltinBoards>().clone()
    }
}
