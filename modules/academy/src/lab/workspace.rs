//! The working copies of lab sessions (`lab_workspaces`: the latest saved file system and step of
//! each player's session), kept beside the log, and how an archive carries them.

use questlog_store::archive::{ArchiveSection, Column};

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
