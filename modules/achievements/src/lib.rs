//! Achievements as data: an admin defines them (`define_achievement`: texts, hidden, a goal, an
//! optional rule over the player's own history, whether only the server sets them); players
//! (or the server, for them) set rising progress and unlock them; an admin grants and revokes
//! them. A rule is evaluated by the projection over the log, and defining one awards it
//! retroactively to every player whose history already meets it, at the position and time it
//! was met ([`projection`]). A module may define achievements in code ([`builtin`]: the
//! academy's), folded and read like those defined as data. [`Achievements`] registers it all; it needs no other module, and
//! takes over `grant_achievement` from a module that registered it before (the academy's
//! built-in achievements keep being granted by name: see [`command`]).

pub mod builtin;
pub mod command;
pub mod event;
pub mod names;
pub mod projection;
pub mod read;
pub mod values;

#[cfg(test)]
mod tests;

use questlog_domain::values::PlayerId;
use questlog_domain::{App, Module, StreamId, StreamKind};
use questlog_projector::ProjectorExt as _;
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;

pub use builtin::{BuiltinAchievement, BuiltinAchievements, BuiltinAchievementsExt};
pub use command::{AchievementView, Command, ProgressView, COMMAND_NAMES};
pub use event::Event;
pub use values::AchievementId;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// An achievement's definition: `achievement-<id>`.
pub const ACHIEVEMENT: StreamKind = StreamKind::new("achievement");
/// One player's progress on one achievement: `player_achievement-<achievement>:<player id>`.
pub const PLAYER_ACHIEVEMENT: StreamKind = StreamKind::new("player_achievement");

pub fn achievement_stream(id: &AchievementId) -> StreamId {
    ACHIEVEMENT.stream(id.as_str())
}

pub fn progress_stream(id: &AchievementId, player: PlayerId) -> StreamId {
    PLAYER_ACHIEVEMENT.stream(format!("{id}:{player}"))
}

fn valid_progress_key(key: &str) -> bool {
    key.split_once(':').is_some_and(|(id, player)| {
        AchievementId::valid(id) && uuid::Uuid::parse_str(player).is_ok()
    })
}

/// The achievements' registration on the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Achievements;

impl Module for Achievements {
    fn name(&self) -> &'static str {
        "achievements"
    }

    fn build(&self, app: &mut App) {
        let builtins = app.builtin_achievements();
        app.add_events::<Event>()
            .add_commands(COMMAND_NAMES, Command::parse_boxed)
            .add_command_docs(command::docs())
            .extend_command("grant_achievement", command::grant_parser)
            .add_stream(ACHIEVEMENT, AchievementId::valid)
            .add_stream(PLAYER_ACHIEVEMENT, valid_progress_key)
            .add_view::<AchievementView>(ACHIEVEMENT)
            .add_view::<ProgressView>(PLAYER_ACHIEVEMENT);
        // Its own name (registered above, so a clash still panics), parsed knowing the built-in
        // achievements, whichever module registers them.
        let define = builtins.clone();
        app.extend_command("define_achievement", move |_| {
            command::define_parser(define)
        });
        app.add_projection(projection::Achievements {
            builtins: builtins.clone(),
        });
        read::register(app, builtins);
        app.add_migrations(self.name(), &MIGRATIONS);
    }
}
