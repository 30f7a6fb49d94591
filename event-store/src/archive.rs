//! Archive sections: what a module keeps beside the log (rows its commands write in the append's
//! transaction, which no replay can rebuild) and that `questlog export` must therefore carry with
//! the log. A module declares each table once — its line in the file, its count, its columns —
//! and registers it on the [`App`]; the archive reads and writes every registered section the
//! same way and names no table of its own.

use questlog_domain::App;

/// The type of a column, as the archive reads and writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Uuid,
    Text,
    /// `jsonb`, carried as Postgres prints it so that it goes back in unchanged.
    Jsonb,
    /// `integer`.
    Integer,
    /// `timestamptz`, to the microsecond.
    Timestamptz,
}

/// One table kept beside the log, as an archive carries it: one line per row,
/// `{"<line>":{"<column>":…,…}}`, after the events.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSection {
    /// The key of its lines (`saved_file`).
    pub line: &'static str,
    /// The key of its count in the header and the trailer (`saved_files`).
    pub count: &'static str,
    /// What a row is, for messages (`saved file`).
    pub noun: &'static str,
    /// What rows are, for messages (`saved files`).
    pub plural: &'static str,
    /// The table (created by a migration).
    pub table: &'static str,
    /// Every column a row carries, in the order its lines list them.
    pub columns: &'static [(&'static str, Column)],
    /// The columns rows are exported in order of (the table's key), so an export is repeatable.
    pub order_by: &'static [&'static str],
}

/// The sections the running modules registered (an [`App`] part), in registration order: the
/// order of their lines in a file.
#[derive(Debug, Clone, Default)]
pub struct ArchiveSections {
    sections: Vec<ArchiveSection>,
}

impl ArchiveSections {
    /// The sections of `app`.
    pub fn of(app: &App) -> Self {
        app.part::<Self>().cloned().unwrap_or_default()
    }

    /// Every section, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &ArchiveSection> {
        self.sections.iter()
    }

    pub fn len(&self) -> usize {
        self.sections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

/// Registering archive sections on an [`App`].
pub trait ArchiveExt {
    /// Registers a table the archive carries.
    ///
    /// # Panics
    /// When another section has its line, its count or its table, or it names a key column it
    /// does not carry: both are a module's mistake, found when the app is built.
    fn add_archive_section(&mut self, section: ArchiveSection) -> &mut Self;
}

impl ArchiveExt for App {
    fn add_archive_section(&mut self, section: ArchiveSection) -> &mut Self {
        let sections = &mut self.part_mut::<ArchiveSections>().sections;
        // The kernel's own lines and counts.
        const KERNEL: [&str; 7] = [
            "header",
            "event",
            "idempotency_key",
            "trailer",
            "events",
            "head",
            "idempotency_keys",
        ];
        assert!(
            !KERNEL.contains(&section.line) && !KERNEL.contains(&section.count),
            "archive section {} takes a name of the kernel's",
            section.line
        );
        for other in sections.iter() {
            assert!(
                other.line != section.line
                    && other.count != section.count
                    && other.table != section.table,
                "archive section {} is registered twice",
                section.line
            );
        }
        for key in section.order_by {
            assert!(
                section.columns.iter().any(|(name, _)| name == key),
                "archive section {}: ordered by {key}, which it does not carry",
                section.line
            );
        }
        sections.push(section);
        self
    }
}
