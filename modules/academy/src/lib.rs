//! The academy: a Linux-terminal course's catalog of modules and labs, players with XP, levels,
//! streaks and achievements, and the presence events of the player stream (the presence module
//! records them). Its commands are decided by pure functions into its events, and each of its
//! stream kinds folds into a view of its own ([`CatalogState`], [`PlayerState`],
//! [`UsernameHolder`]); [`Academy`] registers them on the kernel, with its reads (routes, live
//! topics and state views, by feature: see `read.rs`).

pub mod achievements;
pub mod catalog;
pub mod command;
pub mod context;
pub mod decide;
pub mod event;
pub mod names;
pub mod player;
pub mod players;
mod read;
pub mod rules;
pub mod state_json;
pub mod stream;
pub mod values;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::any::Any;

pub use catalog::CatalogState;
pub use command::{Command, COMMAND_NAMES};
pub use decide::decide;
pub use event::Event;
pub use player::PlayerState;
pub use questlog_domain::{Actor, DomainEvent, Edge, Rejection, RejectionKind, Role};
pub use stream::{StreamId, UsernameHolder};

use questlog_domain as kernel;
use questlog_leaderboards::BuiltinBoardsExt as _;
use questlog_projector::ProjectorExt as _;
use questlog_store::archive::ArchiveExt as _;
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;

/// The academy's own SQL (`modules/academy/migrations/`), run with the kernel's.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The academy's registration on the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Academy;

impl kernel::Module for Academy {
    fn name(&self) -> &'static str {
        "academy"
    }

    fn build(&self, app: &mut kernel::App) {
        app.add_events::<Event>()
            .add_commands(COMMAND_NAMES, parse)
            .add_stream(stream::CATALOG, str::is_empty)
            .add_stream(stream::PLAYER, |key| {
                format!("player-{key}").parse::<StreamId>().is_ok()
            })
            .add_stream(stream::USERNAME, |key| {
                format!("username-{key}").parse::<StreamId>().is_ok()
            })
            .add_view::<CatalogState>(stream::CATALOG)
            .add_view::<PlayerState>(stream::PLAYER)
            .add_view::<UsernameHolder>(stream::USERNAME)
            // A player's name is its registration's (what an erasure is confirmed with).
            .add_player_name(stream::PLAYER, |state| {
                let registration = state.view::<PlayerState>()?.registered.as_ref()?;
                Some(registration.username.as_ref()?.as_str().to_owned())
            });
        app.add_projection(player::projection::Players)
            .add_projection(catalog::projection::Catalog);
        // The XP board is a board of the leaderboards module, built in.
        app.add_builtin_leaderboard(players::leaderboard::XP_BOARD);
        // Its achievements are achievements of the achievements module, built in.
        achievements::register(app);
        read::register(app);
        catalog::cli::register(app);
        app.add_command_docs(command::docs());
        // Its claims are named for digests under the deployment's name key: the key travels
        // with the log.
        app.add_migrations(self.name(), &MIGRATIONS)
            .add_archive_section(questlog_store::sealing::NAME_KEY_ARCHIVE);
    }
}

fn parse(name: &str, raw: &[u8], edge: &Edge) -> Result<Box<dyn kernel::Command>, Rejection> {
    Command::parse(name, raw, edge).map(|c| Box::new(c) as Box<dyn kernel::Command>)
}

impl kernel::Command for Command {
    fn name(&self) -> &'static str {
        Command::name(self)
    }

    fn admin_only(&self) -> bool {
        Command::admin_only(self)
    }

    fn streams(&self, actor: &Actor) -> Vec<kernel::StreamId> {
        Command::streams(self, actor)
            .iter()
            .map(StreamId::id)
            .collect()
    }

    fn decide(
        &self,
        ctx: &kernel::Context<'_>,
    ) -> Result<Vec<(kernel::StreamId, kernel::Event)>, Rejection> {
        Ok(decide(self, ctx)?
            .into_iter()
            .map(|(stream, event)| (stream.id(), kernel::Event::new(event)))
            .collect())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
