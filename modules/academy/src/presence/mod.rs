//! Presence: who is online and in which lab. The rule is the player stream's (`came_online`,
//! `current_lab_changed`, `went_offline`, folded by `PlayerState::evolve`); this feature holds its
//! read model (`projection`), its reads (`read`: `GET /v1/presence` and the `presence` topic), and
//! what it keeps beside the log: the reaper that takes players offline when their heartbeats stop
//! (`reaper`), and the last-seen times the archive carries.

pub mod projection;
pub mod read;
pub mod reaper;

pub(crate) use read::register_reads;

pub use reaper::ReaperConfig;

use questlog_store::archive::{ArchiveSection, Column};

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
