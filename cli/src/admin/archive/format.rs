//! The archive's lines, and the writer and reader that frame, hash and check them (the layout is
//! described in the parent module).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context as _};
use chrono::{DateTime, Utc};
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The header's `format`: what the file is.
pub const FORMAT: &str = "questlog-archive";
/// The header's `version`: the layout of the lines. An import refuses any other.
pub const VERSION: u32 = 1;

/// The longest line a reader accepts: far above any event or working copy the command side
/// accepts, so that a damaged file cannot make the reader buffer without bound.
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// One line of the file, tagged by its one key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Event(Event),
    WorkingCopy(WorkingCopy),
    PresenceSeen(PresenceSeen),
    IdempotencyKey(IdempotencyKey),
    Trailer(Trailer),
}

impl Line {
    /// The section the line belongs to: sections come in this order.
    fn section(&self) -> u8 {
        match self {
            Line::Header(_) => 0,
            Line::Event(_) => 1,
            Line::WorkingCopy(_) => 2,
            Line::PresenceSeen(_) => 3,
            Line::IdempotencyKey(_) => 4,
            Line::Trailer(_) => 5,
        }
    }
}

/// The sections' names, by [`Line::section`], for messages.
const SECTIONS: [&str; 6] = [
    "header",
    "event",
    "working copy",
    "presence time",
    "idempotency key",
    "trailer",
];

/// How much a file holds, in its header and again in its trailer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub events: u64,
    /// The last event's position (0 for an empty log).
    pub head: i64,
    pub working_copies: u64,
    pub presence_seen: u64,
    pub idempotency_keys: u64,
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

/// A `lab_workspaces` row.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkingCopy {
    pub player_id: Uuid,
    pub lab_id: String,
    pub vfs_snapshot: Box<RawValue>,
    pub current_step: i32,
    pub saved_at: DateTime<Utc>,
}

/// A `presence_seen` row.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSeen {
    pub player_id: Uuid,
    pub last_seen: DateTime<Utc>,
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
    gz: GzEncoder<BufWriter<File>>,
    hasher: Sha256,
    line: Vec<u8>,
}

impl Writer {
    /// Creates `path`, which must not exist yet.
    ///
    /// # Errors
    /// When the file exists or cannot be created.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file =
            File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
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
        serde_json::to_writer(&mut self.line, line).context("encoding a line")?;
        self.line.push(b'\n');
        Ok(())
    }
}

/// Reads a file line by line and checks it: its order as it goes, and at the trailer its counts,
/// head and checksum, and that nothing follows. Every error names the line.
pub struct Reader {
    lines: BufReader<GzDecoder<BufReader<File>>>,
    hasher: Sha256,
    header: Header,
    seen: Counts,
    section: u8,
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
    pub fn new(file: File) -> anyhow::Result<Self> {
        let mut reader = Self {
            lines: BufReader::new(GzDecoder::new(BufReader::new(file))),
            hasher: Sha256::new(),
            header: Header::default(),
            seen: Counts::default(),
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
            line.section() >= self.section,
            "line {at}: {} line after the {} section",
            SECTIONS[usize::from(line.section())],
            SECTIONS[usize::from(self.section)]
        );
        self.section = line.section();
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
            Line::WorkingCopy(_) => self.seen.working_copies += 1,
            Line::PresenceSeen(_) => self.seen.presence_seen += 1,
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
        let line: Line = serde_json::from_slice(&self.buf)
            .with_context(|| format!("line {next}: not a line of this format"))?;
        if !matches!(line, Line::Trailer(_)) {
            self.hasher.update(&self.buf);
        }
        Ok(Some(line))
    }
}
