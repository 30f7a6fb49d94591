//! Lab sessions: a player's session of one lab, on its own `lab-<player>-<lab>` stream. The log
//! keeps the session's facts (`lab_started`, `lab_progressed` when a save reaches a step further
//! than any before, `lab_state_deleted`); the virtual file system a client saves every few
//! seconds is a working copy kept beside the log (`lab_workspaces`, latest only), so saving never
//! grows the log. See ARCHITECTURE.md, "Lab sessions".
//!
//! [`LabSessions`] registers on the kernel its events, its commands (`start_lab`,
//! `save_lab_state`, `delete_lab_state`), the `lab` stream kind and its [`LabSession`] view, what
//! the commands keep beside the log and its SQL, the `labs` projection (`rm_lab_sessions`), `GET
//! /v1/players/{id}/labs/{lab_id}` and the `lab:` topic, and the working copies' archive section.
//! It needs the academy for its players and the catalog's labs; a lab's completion is the
//! academy's `lab_completed`.

pub mod command;
pub mod event;
pub mod names;
pub mod projection;
pub mod read;
pub mod session;

#[cfg(test)]
mod tests;

use questlog_academy::values::{LabId, PlayerId};
use questlog_domain::{App, Module, StreamId, StreamKind};
use questlog_projector::ProjectorExt as _;
use questlog_query_api::QueryApp as _;
use questlog_store::archive::{ArchiveExt as _, ArchiveSection, Column};
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;
use uuid::Uuid;

pub use command::{Command, COMMAND_NAMES, WORKSPACE};
pub use event::Event;
pub use session::LabSession;

/// One player's session of one lab (`lab-<player uuid>-<lab id>`).
pub const LAB: StreamKind = StreamKind::new("lab");

/// A lab's steps are numbered from 0 up to this.
pub const MAX_STEP: u32 = 1000;
/// The largest saved virtual file system, as compact JSON.
pub const MAX_VFS_BYTES: usize = 32 * 1024;

/// The stream of `player`'s session of `lab`.
pub fn lab_stream(player: PlayerId, lab: &LabId) -> StreamId {
    LAB.stream(format!("{player}-{lab}"))
}

/// The player and lab a `lab` stream's key names: a UUID (36 characters), `-`, a lab id.
pub fn session_key(key: &str) -> Option<(PlayerId, LabId)> {
    let player = Uuid::parse_str(key.get(..36)?).ok()?;
    let lab = LabId::parse(key.get(36..)?.strip_prefix('-')?).ok()?;
    Some((PlayerId(player), lab))
}

/// The session a written stream id names, if it is a lab session's stream.
pub fn session_of(stream: &str) -> Option<(PlayerId, LabId)> {
    session_key(stream.strip_prefix("lab-")?)
}

/// The module's own SQL (`modules/lab-sessions/migrations/`), run with the kernel's.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The working copies travel with the log, which holds only the sessions' facts: without them a
/// replay would restore every session and lose its files.
pub const ARCHIVE: ArchiveSection = ArchiveSection {
    line: "working_copy",
    count: "working_copies",
    noun: "working copy",
    plural: "working copies",
    table: "lab_workspaces",
    columns: &[
        ("player_id", Column::Uuid),
        ("lab_id", Column::Text),
        ("vfs_snapshot", Column::Jsonb),
        ("current_step", Column::Integer),
        ("saved_at", Column::Timestamptz),
    ],
    order_by: &["player_id", "lab_id"],
};

/// The lab sessions' registration on the kernel: after the academy's (whose players and catalog
/// its decisions read and whose completions its read model folds), before presence's (an
/// archive's working copies come before its presence times).
#[derive(Debug, Clone, Copy, Default)]
pub struct LabSessions;

impl Module for LabSessions {
    fn name(&self) -> &'static str {
        "lab_sessions"
    }

    fn build(&self, app: &mut App) {
        app.add_events::<Event>()
            .add_commands(COMMAND_NAMES, Command::parse_boxed)
            .add_command_docs(command::docs())
            .add_stream(LAB, |key| session_key(key).is_some())
            .add_view::<LabSession>(LAB);
        app.add_projection(projection::Labs);
        read::register(app);
        app.add_state_json(LAB, session::state_json);
        app.add_migrations(self.name(), &MIGRATIONS)
            .add_archive_section(ARCHIVE);
    }
}
