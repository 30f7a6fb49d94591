//! Leaderboards as data: an admin defines a board (`define_leaderboard`: its order, its
//! operator, an optional reset schedule, whether only the server submits), players or the server
//! submit scores (`submit_score`), every season's standings are read by page, around a player or
//! among friends, as of any position, and followed live (`leaderboard:<id>`). A scheduled job
//! starts each season at its tick ([`seasons`]). Redefining a board's order or operator
//! recomputes every season from its submissions ([`record`]).
//!
//! A module may define boards in code ([`builtin`]: the academy's XP board), answered by every
//! read like a defined board.
//!
//! [`Leaderboards`] registers it all on the kernel; it needs no other module (usernames come from
//! the players read model when one is there).

pub mod board;
pub mod builtin;
pub mod command;
pub mod event;
pub mod names;
pub mod projection;
pub mod read;
pub mod record;
pub mod seasons;
pub mod values;

#[cfg(test)]
mod tests;

use std::time::Duration;

use questlog_command_api::jobs::JobsExt as _;
use questlog_domain::values::PlayerId;
use questlog_domain::{App, Module, StreamId, StreamKind};
use questlog_projector::ProjectorExt as _;
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;

pub use board::BoardView;
pub use builtin::{BuiltinBoard, BuiltinBoards, BuiltinBoardsExt};
pub use command::{Command, COMMAND_NAMES};
pub use event::Event;
pub use values::BoardId;

/// The leaderboards' own SQL (`modules/leaderboards/migrations/`), run with the kernel's.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A board's definition and seasons: `leaderboard-<id>`.
pub const LEADERBOARD: StreamKind = StreamKind::new("leaderboard");
/// One player's submissions to one board: `leaderboard_entry-<board>:<player id>`.
pub const LEADERBOARD_ENTRY: StreamKind = StreamKind::new("leaderboard_entry");

/// The stream of a board.
pub fn board_stream(board: &BoardId) -> StreamId {
    LEADERBOARD.stream(board.as_str())
}

/// The stream of a player's submissions to a board.
pub fn entry_stream(board: &BoardId, player: PlayerId) -> StreamId {
    LEADERBOARD_ENTRY.stream(format!("{board}:{player}"))
}

fn valid_entry_key(key: &str) -> bool {
    key.split_once(':').is_some_and(|(board, player)| {
        BoardId::valid(board) && uuid::Uuid::parse_str(player).is_ok()
    })
}

/// The leaderboards' registration on the kernel, with the time between the seasons job's rounds.
#[derive(Debug, Clone, Default)]
pub struct Leaderboards {
    /// Time between the seasons job's rounds (a second when unset).
    pub season_interval: Option<Duration>,
}

impl Module for Leaderboards {
    fn name(&self) -> &'static str {
        "leaderboards"
    }

    fn build(&self, app: &mut App) {
        let builtins = app.builtin_leaderboards();
        app.add_events::<Event>()
            .add_commands(COMMAND_NAMES, Command::parse_boxed)
            .add_command_docs(command::docs())
            .add_stream(LEADERBOARD, BoardId::valid)
            .add_stream(LEADERBOARD_ENTRY, valid_entry_key)
            .add_view::<BoardView>(LEADERBOARD);
        // The names are this module's (registered above, so a clash still panics); their parser
        // knows the built-in boards, whichever module registers them.
        for name in COMMAND_NAMES {
            let builtins = builtins.clone();
            app.extend_command(name, move |_| command::parser(builtins));
        }
        app.add_projection(projection::Leaderboards);
        read::register(app, builtins);
        let interval = self.season_interval.unwrap_or(seasons::DEFAULT_INTERVAL);
        app.add_job(seasons::JOB, move |context| seasons::job(interval, context));
        app.add_migrations(self.name(), &MIGRATIONS);
    }
}
