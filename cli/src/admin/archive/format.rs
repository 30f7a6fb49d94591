//! The archive's lines, and the writer and reader that frame, hash and check them (the layout is
//! described in the parent module).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context as _};
use chrono::{DateTime, Utc};
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use questlog_store::archive::{ArchiveSection, ArchiveSections, Column};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The header's `format`: what the file is.
pub const FORMAT: &str = "questlog-archive";
/// The header's `version`: the layout of the lines. An import refuses any other.
pub const VERSION: u32 = 1;

/// The longest line a reader accepts: far above any event or beside row the command side
/// accepts, so that a damaged file cannot make the reader buffer without bound.
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// One line of the file, tagged by its one key.
#[derive(Debug)]
pub enum Line {
    Header(Header),
    Event(Event),
    /// A row of a section a module keeps beside the log: the section's place in the [`Layout`]
    /// and the row's values in its columns' order.
    Beside(usize, Vec<Cell>),
    IdempotencyKey(IdempotencyKey),
    Trailer(Trailer),
}

/// One value of a beside row, by its column's type.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Uuid(Uuid),
    Text(String),
    /// `jsonb` as Postgres prints it.
    Json(Box<RawValue>),
    Integer(i32),
    Time(DateTime<Utc>),
}

impl Cell {
    /// The `jsonb` text or the JSON value of the cell, as the file carries it.
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Cell::Null => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            Cell::Uuid(u) => serde_json::to_writer(out, u),
            Cell::Text(t) => serde_json::to_writer(out, t),
            Cell::Json(j) => {
                out.extend_from_slice(j.get().as_bytes());
                Ok(())
            }
            Cell::Integer(i) => serde_json::to_writer(out, i),
            Cell::Time(t) => serde_json::to_writer(out, t),
        }
    }

    fn read(column: Column, raw: Box<RawValue>) -> serde_json::Result<Self> {
        if raw.get() == "null" {
            return Ok(Cell::Null);
        }
        Ok(match column {
            Column::Uuid => Cell::Uuid(serde_json::from_str(raw.get())?),
            Column::Text => Cell::Text(serde_json::from_str(raw.get())?),
            Column::Jsonb => Cell::Json(raw),
            Column::Integer => Cell::Integer(serde_json::from_str(raw.get())?),
            Column::Timestamptz => Cell::Time(serde_json::from_str(raw.get())?),
        })
    }

    /// Bytes of `jsonb` text: what a batch of inserts counts against its size.
    pub fn json_len(&self) -> usize {
        match self {
            Cell::Json(j) => j.get().len(),
            _ => 0,
        }
    }
}

/// Which lines a file may hold, in their order: the header, the events, each registered beside
/// section in registration order, the idempotency keys, the trailer.
#[derive(Debug, Clone)]
pub struct Layout {
    sections: Vec<ArchiveSection>,
}

impl Layout {
    /// The layout of files with `sections` beside the log.
    pub fn new(sections: &ArchiveSections) -> Self {
        Self {
            sections: sections.iter().copied().collect(),
        }
    }

    /// The beside sections, in file order.
    pub fn sections(&self) -> &[ArchiveSection] {
        &self.sections
    }

    /// Counts with every section at zero.
    pub fn zero(&self) -> Counts {
        Counts {
            beside: self
                .sections
                .iter()
                .map(|s| (s.count.to_owned(), 0))
                .collect(),
            ..Counts::default()
        }
    }

    /// The place of the line's section in the file: sections come in this order.
    fn rank(&self, line: &Line) -> usize {
        let n = self.sections.len();
        match line {
            Line::Header(_) => 0,
            Line::Event(_) => 1,
            Line::Beside(i, _) => 2 + i,
            Line::IdempotencyKey(_) => 2 + n,
            Line::Trailer(_) => 3 + n,
        }
    }

    /// What the lines of a rank are, for messages.
    fn what(&self, rank: usize) -> &'static str {
        let n = self.sections.len();
        match rank {
            0 => "header",
            1 => "event",
            r if r < 2 + n => self.sections[r - 2].noun,
            r if r == 2 + n => "idempotency key",
            _ => "trailer",
        }
    }

    /// Writes `line` as JSON (without its `\n`).
    fn encode(&self, line: &Line, out: &mut Vec<u8>) -> serde_json::Result<()> {
        fn tagged<T: Serialize>(out: &mut Vec<u8>, key: &str, value: &T) -> serde_json::Result<()> {
            out.push(b'{');
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, value)?;
            out.push(b'}');
            Ok(())
        }
        match line {
            Line::Header(h) => tagged(out, "header", h),
            Line::Event(e) => tagged(out, "event", e),
            Line::IdempotencyKey(k) => tagged(out, "idempotency_key", k),
            Line::Trailer(t) => tagged(out, "trailer", t),
            Line::Beside(i, cells) => {
                let section = &self.sections[*i];
                out.push(b'{');
                serde_json::to_writer(&mut *out, section.line)?;
                out.extend_from_slice(b":{");
                for (at, ((name, _), cell)) in section.columns.iter().zip(cells).enumerate() {
                    if at > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, name)?;
                    out.push(b':');
                    cell.write(out)?;
                }
                out.extend_from_slice(b"}}");
                Ok(())
            }
        }
    }

    /// Parses one line: an object with one key naming its kind.
    fn decode(&self, bytes: &[u8]) -> anyhow::Result<Line> {
        let tagged: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(bytes)?;
        ensure!(tagged.len() == 1, "a line is an object with one key");
        let Some((key, raw)) = tagged.into_iter().next() else {
            bail!("a line is an object with one key");
        };
        Ok(match key.as_str() {
            "header" => Line::Header(serde_json::from_str(raw.get())?),
            "event" => Line::Event(serde_json::from_str(raw.get())?),
            "idempotency_key" => Line::IdempotencyKey(serde_json::from_str(raw.get())?),
            "trailer" => Line::Trailer(serde_json::from_str(raw.get())?),
            other => {
                let Some(at) = self.sections.iter().position(|s| s.line == other) else {
                    bail!(
                        "no running module keeps {other:?} rows (a module the exporting \
                         questlog ran and this one does not?)"
                    );
                };
                Line::Beside(at, Self::row(&self.sections[at], &raw)?)
            }
        })
    }

    /// A beside row's values, in its columns' order: every column once, nothing else.
    fn row(section: &ArchiveSection, raw: &RawValue) -> anyhow::Result<Vec<Cell>> {
        let mut fields: BTreeMap<String, Box<RawValue>> = serde_json::from_str(raw.get())?;
        let mut cells = Vec::with_capacity(section.columns.len());
        for (name, column) in section.columns {
            let value = fields
                .remove(*name)
                .with_context(|| format!("missing field `{name}`"))?;
            cells.push(Cell::read(*column, value).with_context(|| format!("field `{name}`"))?);
        }
        if let Some(unknown) = fields.keys().next() {
            bail!("unknown field `{unknown}`");
        }
        Ok(cells)
    }
}

/// How much a file holds, in its header and again in its trailer.
#[derive(Debug, Clone, Default, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    /// The last event's position (0 for an empty log).
    pub head: i64,
    /// The rows of each beside section, by the section's count key.
    #[serde(flatten)]
    pub beside: BTreeMap<String, u64>,
    pub idempotency_keys: u64,
}

impl Counts {
    /// The rows of the beside section counted under `key`.
    pub fn beside(&self, key: &str) -> u64 {
        self.beside.get(key).copied().unwrap_or(0)
    }
}

/// A section absent from one side and counted zero on the other holds the same: nothing.
impl PartialEq for Counts {
    fn eq(&self, other: &Self) -> bool {
        let held = |c: &Counts| -> BTreeMap<String, u64> {
            c.beside
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.clone(), *n))
                .collect()
        };
        self.events == other.events
            && self.head == other.head
            && self.idempotency_keys == other.idempotency_keys
            && held(self) == held(other)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub exported_at: DateTime<Utc>,
    /// The name of the database it was exported from.
    pub source: String,
    pub counts: Counts,
}

/// An `events` row.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Box<RawValue>,
    pub metadata: Box<RawValue>,
    pub recorded_at: DateTime<Utc>,
}

/// An `idempotency_keys` row.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyKey {
    pub identity: Uuid,
    pub key: String,
    pub request_hash: String,
    pub command_id: Uuid,
    pub positions: Vec<i64>,
    pub head: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    pub counts: Counts,
    pub sha256: String,
}

/// Writes a file line by line, hashing what it writes.
pub struct Writer {
    layout: Layout,
    gz: GzEncoder<BufWriter<File>>,
    hasher: Sha256,
    line: Vec<u8>,
}

impl Writer {
    /// Creates `path`, which must not exist yet.
    ///
    /// # Errors
    /// When the file exists or cannot be created.
    pub fn create(path: &Path, layout: Layout) -> anyhow::Result<Self> {
        let file =
            File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            layout,
            gz: GzEncoder::new(BufWriter::new(file), Compression::default()),
            hasher: Sha256::new(),
            line: Vec::with_capacity(4096),
        })
    }

    /// Writes one line (anything but the trailer).
    ///
    /// # Errors
    /// When writing fails.
    pub fn write(&mut self, line: &Line) -> anyhow::Result<()> {
        self.frame(line)?;
        self.hasher.update(&self.line);
        self.gz.write_all(&self.line).context("writing the archive")
    }

    /// Writes the trailer, completes the gzip stream and syncs the file; returns the checksum.
    ///
    /// # Errors
    /// When writing or syncing fails.
    pub fn finish(mut self, counts: Counts) -> anyhow::Result<String> {
        let sha256 = hex::encode(self.hasher.clone().finalize());
        self.frame(&Line::Trailer(Trailer {
            counts,
            sha256: sha256.clone(),
        }))?;
        self.gz
            .write_all(&self.line)
            .context("writing the archive")?;
        let file = self
            .gz
            .finish()
            .context("completing the archive")?
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .context("completing the archive")?;
        file.sync_all().context("syncing the archive")?;
        Ok(sha256)
    }

    fn frame(&mut self, line: &Line) -> anyhow::Result<()> {
        self.line.clear();
        self.layout
            .encode(line, &mut self.line)
            .context("encoding a line")?;
        self.line.push(b'\n');
        Ok(())
    }
}

/// Reads a file line by line and checks it: its order as it goes, and at the trailer its counts,
/// head and checksum, and that nothing follows. Every error names the line.
pub struct Reader {
    layout: Layout,
    lines: BufReader<GzDecoder<BufReader<File>>>,
    hasher: Sha256,
    header: Header,
    seen: Counts,
    section: usize,
    line_no: u64,
    buf: Vec<u8>,
    /// Set once the trailer has checked out.
    checksum: Option<String>,
}

impl Reader {
    /// Reads the header of an open file.
    ///
    /// # Errors
    /// When the file does not start with a header of this format and version.
    pub fn new(file: File, layout: Layout) -> anyhow::Result<Self> {
        let seen = layout.zero();
        let mut reader = Self {
            layout,
            lines: BufReader::new(GzDecoder::new(BufReader::new(file))),
            hasher: Sha256::new(),
            header: Header::default(),
            seen,
            section: 0,
            line_no: 0,
            buf: Vec::with_capacity(4096),
            checksum: None,
        };
        let Some(Line::Header(header)) = reader.read_line()? else {
            bail!("line 1: the file does not start with a header");
        };
        ensure!(
            header.format == FORMAT,
            "line 1: the file is a {:?}, not a {FORMAT:?}",
            header.format
        );
        ensure!(
            header.version == VERSION,
            "line 1: format version {} is not the version this questlog reads ({VERSION})",
            header.version
        );
        reader.header = header;
        Ok(reader)
    }

    /// The header, as the file states it (checked against the content when the trailer is read).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The lines it reads.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The next line after the header, or `None` once the trailer has checked out.
    ///
    /// # Errors
    /// When the file is damaged, out of order, cut short or inconsistent with its trailer.
    pub fn next(&mut self) -> anyhow::Result<Option<Line>> {
        if self.checksum.is_some() {
            return Ok(None);
        }
        let Some(line) = self.read_line()? else {
            bail!(
                "the file ends after line {} without its trailer: it is truncated",
                self.line_no
            );
        };
        let at = self.line_no;
        ensure!(
            self.layout.rank(&line) >= self.section,
            "line {at}: {} line after the {} section",
            self.layout.what(self.layout.rank(&line)),
            self.layout.what(self.section)
        );
        self.section = self.layout.rank(&line);
        match &line {
            Line::Header(_) => bail!("line {at}: a second header"),
            Line::Event(event) => {
                ensure!(
                    event.position > self.seen.head,
                    "line {at}: event at position {} after position {}",
                    event.position,
                    self.seen.head
                );
                self.seen.events += 1;
                self.seen.head = event.position;
            }
            Line::Beside(i, _) => {
                let key = self.layout.sections[*i].count;
                *self.seen.beside.entry(key.to_owned()).or_default() += 1;
            }
            Line::IdempotencyKey(_) => self.seen.idempotency_keys += 1,
            Line::Trailer(trailer) => {
                self.check_trailer(trailer)?;
                return Ok(None);
            }
        }
        Ok(Some(line))
    }

    /// The checksum the trailer recorded and the content matched, once the trailer is read.
    pub fn checksum(&self) -> Option<&str> {
        self.checksum.as_deref()
    }

    fn check_trailer(&mut self, trailer: &Trailer) -> anyhow::Result<()> {
        let at = self.line_no;
        let actual = hex::encode(self.hasher.clone().finalize());
        ensure!(
            trailer.sha256 == actual,
            "line {at}: checksum mismatch: the trailer records sha256 {}, the content hashes to {actual}",
            trailer.sha256
        );
        ensure!(
            trailer.counts == self.seen,
            "line {at}: count mismatch: the trailer records {:?}, the file holds {:?}",
            trailer.counts,
            self.seen
        );
        ensure!(
            self.header.counts == self.seen,
            "line {at}: count mismatch: the header records {:?}, the file holds {:?}",
            self.header.counts,
            self.seen
        );
        // Reading on to the end makes gzip check its CRC and length, and finds anything appended.
        let mut after = [0u8; 1];
        let appended = self
            .lines
            .read(&mut after)
            .with_context(|| format!("after line {at}: reading the end of the gzip stream"))?;
        ensure!(appended == 0, "after line {at}: data after the trailer");
        let trailing = self
            .lines
            .get_mut()
            .get_mut()
            .read(&mut after)
            .context("reading the end of the file")?;
        ensure!(trailing == 0, "bytes after the end of the gzip stream");
        self.checksum = Some(actual);
        Ok(())
    }

    /// Reads, hashes (unless it is the trailer) and parses one line; `None` at a clean end.
    fn read_line(&mut self) -> anyhow::Result<Option<Line>> {
        self.buf.clear();
        let next = self.line_no + 1;
        let n = (&mut self.lines)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| format!("line {next}: reading the gzip stream"))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no = next;
        if self.buf.last() != Some(&b'\n') {
            if n as u64 == MAX_LINE {
                bail!("line {next} is longer than {MAX_LINE} bytes");
            }
            bail!("the file ends in the middle of line {next}: it is truncated");
        }
        let line = self
            .layout
            .decode(&self.buf)
            .with_context(|| format!("line {next}: not a line of this format"))?;
        if !matches!(line, Line::Trailer(_)) {
            self.hasher.update(&self.buf);
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use questlog_store::archive::ArchiveExt as _;

    const NOTES: ArchiveSection = ArchiveSection {
        line: "note",
        count: "notes",
        noun: "note",
        plural: "notes",
        table: "notes",
        columns: &[
            ("owner", Column::Uuid),
            ("body", Column::Jsonb),
            ("rank", Column::Integer),
            ("title", Column::Text),
            ("at", Column::Timestamptz),
        ],
        order_by: &["owner"],
    };

    fn layout() -> Layout {
        let mut app = questlog_domain::App::new();
        app.add_archive_section(NOTES);
        Layout::new(&ArchiveSections::of(&app))
    }

    #[test]
    fn a_beside_row_goes_out_and_comes_back_in_its_columns_order_jsonb_verbatim() {
        let line = br#"{"note":{"owner":"00000000-0000-0000-0000-000000000001","body":{"b": 1.10, "a": [1]},"rank":null,"title":"t","at":"2026-12-01T09:00:00.000001Z"}}"#;
        let layout = layout();
        let decoded = layout.decode(line).expect("a note");
        assert!(matches!(&decoded, Line::Beside(0, cells) if cells.len() == 5));
        let mut out = Vec::new();
        layout.encode(&decoded, &mut out).expect("encoded");
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(line));
    }

    #[test]
    fn a_row_missing_a_column_or_carrying_another_is_refused() {
        let layout = layout();
        let missing = br#"{"note":{"owner":"00000000-0000-0000-0000-000000000001","body":{},"rank":1,"at":"2026-12-01T09:00:00Z"}}"#;
        let err = layout.decode(missing).expect_err("no title");
        assert!(
            format!("{err:#}").contains("missing field `title`"),
            "{err:#}"
        );
        let extra = br#"{"note":{"owner":"00000000-0000-0000-0000-000000000001","body":{},"rank":1,"title":"t","at":"2026-12-01T09:00:00Z","colour":2}}"#;
        let err = layout.decode(extra).expect_err("a colour");
        assert!(
            format!("{err:#}").contains("unknown field `colour`"),
            "{err:#}"
        );
    }

    #[test]
    fn rows_of_a_section_no_running_module_keeps_are_refused() {
        let err = layout()
            .decode(br#"{"sticker":{"owner":"x"}}"#)
            .expect_err("unknown section");
        assert!(
            format!("{err:#}").contains("no running module keeps \"sticker\" rows"),
            "{err:#}"
        );
    }

    #[test]
    fn a_section_counted_zero_equals_one_not_counted() {
        let layout = layout();
        let zero = layout.zero();
        assert_eq!(zero, Counts::default());
        let mut one = layout.zero();
        one.beside.insert("notes".to_owned(), 1);
        assert_ne!(one, Counts::default());
    }
}
