//! `questlog export` and `questlog import`: the whole write side of a deployment — the event log
//! and what commands keep beside it — in one compressed, checksummed file, and back.
//!
//! # The file
//!
//! A gzip stream (one member) of JSON lines, each an object with one key naming its kind:
//!
//! ```text
//! {"header":{"format":"questlog-archive","version":1,"exported_at":"…","source":"questlog","counts":{…}}}
//! {"event":{"position":1,"event_id":"…","stream_id":"…","stream_version":1,"event_type":"…","schema_version":1,"data":{…},"metadata":{…},"recorded_at":"…"}}
//! … every event, by increasing position …
//! … every row of each beside section, section by section:
//! {"<the section's line>":{"<column>":…,"<column>":…}}
//! {"idempotency_key":{"identity":"…","key":"…","request_hash":"…","command_id":"…","positions":[…],"head":7,"created_at":"…"}}
//! {"trailer":{"counts":{…},"sha256":"…"}}
//! ```
//!
//! - `counts` is `{"events","head",<each section's count>…,"idempotency_keys"}`, in the header
//!   (so an import can say what it will do before reading on) and again in the trailer.
//! - A beside section is registered by the module that keeps the table
//!   (`questlog_store::archive::ArchiveSection`: its line, its count, its table and its columns,
//!   listed in the order the lines carry them); the archive reads and writes every registered one
//!   alike, in registration order. A file with rows of a section no running module registers is
//!   refused: importing it would lose them. A section a file does not count holds no rows.
//! - `sha256` is the hex SHA-256 of every uncompressed byte before the trailer line (the header
//!   included, each line with its `\n`). gzip's own CRC-32 catches damage to the compressed bytes;
//!   the checksum and the counts catch a file that was cut, edited or assembled wrongly.
//! - Sections come in the order above. `data`, `metadata` and every `jsonb` column are Postgres's
//!   own `jsonb` text, carried verbatim (never through a float), and times are RFC 3339 with
//!   Postgres's microseconds, so an import reproduces every row exactly.
//! - The file holds all that the database holds, direct messages included: keep it as you keep
//!   the database.
//!
//! # What travels, and why
//!
//! The log, and the tables the command side writes in the log's transaction (ARCHITECTURE.md,
//! invariant 8), because they are not derivable from the log: each module's beside sections (what
//! its commands keep beside the log; each section says why it travels) and the idempotency keys
//! (a client retrying across the move gets its first answer, not a second execution). Read models
//! are left out: the target rebuilds them by replay. The `settings` table is left out on purpose:
//! it may hold a generated token-signing secret, and a file that carries one would let its holder
//! forge admin tokens; configure `QUESTLOG_TOKEN_SECRET` on both sides instead.
//!
//! # Export
//!
//! Reads one REPEATABLE READ snapshot — the log and the tables beside it as of one instant, while
//! the services keep running — the log in pages of [`PAGE`] events by position and the rest as
//! row streams, writing as it goes; memory stays at one page whatever the size of the log. It
//! writes `<file>.partial` and renames it to `<file>` only when complete, and never overwrites.
//!
//! # Import
//!
//! Only into a database whose log is empty (the binary migrates it first). Without `--yes` it reads and
//! verifies the whole file, says what it would import where, writes nothing and exits with
//! status 2. With `--yes` it says the same, then inserts everything in one transaction — holding
//! the append lock, with the events' own positions — and commits only once the trailer has checked
//! out (counts, head, checksum, nothing after it); then later appends continue after the imported
//! head. Any damage refuses the whole file and leaves nothing behind.

mod export;
mod format;
mod import;
mod progress;

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::output;

pub use export::{export, PAGE};
pub use format::{Counts, FORMAT, VERSION};
pub use import::{import, ImportOutcome};

use format::Layout;

/// The lines of this binary's archives: the beside sections of the modules it runs.
fn layout() -> Layout {
    Layout::new(&questlog_store::archive::ArchiveSections::of(
        &crate::modules::app(),
    ))
}

/// A module's table or column name as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What an export wrote or an import loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The archive file.
    pub file: PathBuf,
    /// The database read (export) or written (import).
    pub database: String,
    pub counts: Counts,
    /// Size of the (compressed) file.
    pub bytes: u64,
    /// Hex SHA-256 of the file's content, as its trailer records it.
    pub sha256: String,
}

impl ArchiveSummary {
    /// The summary of the archive at `path`, its size read from the file.
    ///
    /// # Errors
    /// When the file's size cannot be read.
    pub fn of_file(
        path: &std::path::Path,
        database: String,
        counts: Counts,
        sha256: String,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let bytes = std::fs::metadata(path)
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        Ok(Self {
            file: path.to_owned(),
            database,
            counts,
            bytes,
            sha256,
        })
    }

    /// Prints the summary as a record (or JSON), each beside section's count in `layout`'s order;
    /// an import says whether it wrote anything.
    ///
    /// # Errors
    /// When writing fails.
    fn print(
        &self,
        out: &mut dyn Write,
        json: bool,
        imported: Option<bool>,
        layout: &Layout,
    ) -> anyhow::Result<()> {
        let mut fields = vec![
            ("file", json!(self.file.display().to_string())),
            ("database", json!(self.database)),
            ("events", json!(self.counts.events)),
            ("head", json!(self.counts.head)),
        ];
        for section in layout.sections() {
            fields.push((section.count, json!(self.counts.beside(section.count))));
        }
        fields.extend([
            ("idempotency_keys", json!(self.counts.idempotency_keys)),
            ("bytes", json!(self.bytes)),
            ("sha256", json!(self.sha256)),
        ]);
        if let Some(imported) = imported {
            fields.push(("imported", json!(imported)));
        }
        output::record(out, json, &fields)
    }
}
