//! Presence: who is online and in which lab. The rule is the academy's player stream's
//! (`came_online`, `current_lab_changed`, `went_offline`, folded by `PlayerState::evolve`, which
//! the profile shows); [`Presence`] registers on the kernel the commands that record them
//! (`heartbeat`, the reaper's internal `go_offline`: `command`), what they keep beside the log,
//! the reaper that takes players offline when their heartbeats stop (`reaper`), the presence
//! read model (`projection`), its reads (`read`: `GET /v1/presence` and the `presence` topic), and
//! the last-seen times the archive carries. It needs the academy for its players and labs.

pub mod command;
pub mod names;
pub mod projection;
pub mod read;
pub mod reaper;

#[cfg(test)]
mod tests;

use std::time::Duration;

use questlog_command_api::jobs::JobsExt as _;
use questlog_domain::{App, Module};
use questlog_projector::ProjectorExt as _;
use questlog_store::archive::{ArchiveExt as _, ArchiveSection, Column};
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;

pub use command::{Command, COMMAND_NAMES, PRESENCE_CONFLICT};
pub use reaper::ReaperConfig;

/// The presence module's own SQL (`modules/presence/migrations/`), run with the kernel's.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The last-seen times (`presence_seen`) travel with the log, so that the reaper of the database
/// an archive is imported into takes the players who were online at the export offline.
pub const ARCHIVE: ArchiveSection = ArchiveSection {
    line: "presence_seen",
    count: "presence_seen",
    noun: "presence time",
    plural: "presence times",
    table: "presence_seen",
    columns: &[
        ("player_id", Column::Uuid),
        ("last_seen", Column::Timestamptz),
    ],
    order_by: &["player_id"],
};

/// The presence module's registration on the kernel (after the academy's, whose player streams
/// it writes and whose archive sections come first), with its configuration.
#[derive(Debug, Clone)]
pub struct Presence {
    /// Offline after this long without a heartbeat.
    pub timeout: Duration,
    /// Time between the reaper's rounds (a quarter of the timeout when unset).
    pub reaper_interval: Option<Duration>,
}

impl Default for Presence {
    fn default() -> Self {
        Self {
            timeout: reaper::DEFAULT_TIMEOUT,
            reaper_interval: None,
        }
    }
}

impl Module for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn build(&self, app: &mut App) {
        app.add_commands(COMMAND_NAMES, Command::parse_boxed)
            .add_command_docs(command::docs());
        app.add_projection(projection::Presence);
        read::register_reads(app);
        let timeout = self.timeout;
        let interval = self
            .reaper_interval
            .unwrap_or_else(|| reaper::interval_for(timeout));
        app.add_job(reaper::JOB, move |context| {
            reaper::job(timeout, interval, context)
        });
        app.add_migrations(self.name(), &MIGRATIONS)
            .add_archive_section(ARCHIVE);
    }
}

/// The presence module's settings, as the binary reads them (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct PresenceArgs {
    /// Seconds without a heartbeat after which a player goes offline.
    #[arg(long, env = "QUESTLOG_PRESENCE_TIMEOUT_SECS", default_value_t = 120)]
    pub presence_timeout_secs: u64,
}

impl Default for PresenceArgs {
    fn default() -> Self {
        Self {
            presence_timeout_secs: 120,
        }
    }
}

impl PresenceArgs {
    /// The module configured by these settings, its reaper every `reaper_interval` when set.
    pub fn module(&self, reaper_interval: Option<Duration>) -> Presence {
        Presence {
            timeout: Duration::from_secs(self.presence_timeout_secs),
            reaper_interval,
        }
    }
}
