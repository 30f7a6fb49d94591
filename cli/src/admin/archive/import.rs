//! `questlog import`: a whole archive into a database whose log is empty, in one transaction that
//! commits only once the file has checked out to its last byte.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context as _};
use chrono::SecondsFormat;
use sqlx::{PgConnection, PgPool};

use chrono::{DateTime, Utc};
use questlog_store::archive::{ArchiveSection, Column};
use uuid::Uuid;

use super::format::{Cell, Event, IdempotencyKey, Layout, Line, Reader};
use super::{progress, quoted, ArchiveSummary};

/// The append lock of `questlog_append` (migrations/20261121000001_event_log.sql): held by the
/// import so that nothing appends between its check that the log is empty and its commit.
const APPEND_LOCK: i64 = 4_242_424_242;

/// The outermost word of every refusal and failure.
const NOTHING: &str = "nothing was imported";

/// Rows inserted per statement, and the most `jsonb` text (bytes) gathered for one.
const BATCH_ROWS: usize = 1000;
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Without `yes`: the file checked out and the target's log is empty; nothing was written.
    Planned(ArchiveSummary),
    /// Everything was imported and committed.
    Imported(ArchiveSummary),
}

/// Imports the archive at `path` into `pool`'s database (already migrated), whose log must be
/// empty. Says first what it will do; without `yes` it verifies the whole file and stops there.
///
/// # Errors
/// When the target's log is not empty, or the file is damaged, truncated or inconsistent, or the
/// database fails. Nothing is written then.
pub async fn import(
    pool: &PgPool,
    path: &Path,
    yes: bool,
    progress: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ImportOutcome> {
    let damaged = || format!("{} is damaged or incomplete", path.display());
    let file = File::open(path)
        .with_context(|| format!("opening {}", path.display()))
        .context(NOTHING)?;
    let layout = super::layout();
    let mut reader = Reader::new(file, layout.clone())
        .with_context(damaged)
        .context(NOTHING)?;
    let counts = reader.header().counts.clone();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .context("connecting to the target database")?;
    refuse_unless_empty(pool, &database)
        .await
        .context(NOTHING)?;
    if !json {
        let header = reader.header();
        let mut holds = vec![format!("{} events (head {})", counts.events, counts.head)];
        holds.extend(
            layout
                .sections()
                .iter()
                .map(|s| format!("{} {}", counts.beside(s.count), s.plural)),
        );
        let keys = format!("{} idempotency keys", counts.idempotency_keys);
        writeln!(
            out,
            "{} {} and {keys}\n  from {} (exported from database {} at {})\n  into database {}",
            if yes { "importing" } else { "would import" },
            holds.join(", "),
            path.display(),
            header.source,
            header
                .exported_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            database,
        )?;
    }
    let bar = progress::bar(progress, counts.events, "import");
    let sha256 = if yes {
        load(pool, &database, &mut reader, &damaged, &bar).await
    } else {
        verify(&mut reader, &bar).with_context(damaged)
    }
    .context(NOTHING)?;
    bar.finish_and_clear();
    let summary = ArchiveSummary::of_file(path, database, counts, sha256)?;
    summary.print(out, json, Some(yes), &layout)?;
    if !yes && !json {
        writeln!(
            out,
            "the file is intact; nothing was written: run again with --yes to import"
        )?;
    }
    Ok(if yes {
        ImportOutcome::Imported(summary)
    } else {
        ImportOutcome::Planned(summary)
    })
}

async fn refuse_unless_empty(
    conn: impl sqlx::PgExecutor<'_>,
    database: &str,
) -> anyhow::Result<()> {
    // The primary key answers this at once, however long the log (count(*) would scan it).
    let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(conn)
        .await
        .context("reading the target's log")?;
    if let Some(head) = head {
        bail!(
            "database {database} already has an event log (head {head}): import only into a \
             database whose log is empty"
        );
    }
    Ok(())
}

/// Reads the file to its verified end, writing nothing; returns its checksum.
fn verify(reader: &mut Reader, bar: &indicatif::ProgressBar) -> anyhow::Result<String> {
    while let Some(line) = reader.next()? {
        if matches!(line, Line::Event(_)) {
            bar.inc(1);
        }
    }
    Ok(reader.checksum().expect("the trailer was read").to_owned())
}

/// Inserts the whole file in one transaction, committed only after its trailer checked out.
/// On any error the transaction is dropped, which rolls it back.
async fn load(
    pool: &PgPool,
    database: &str,
    reader: &mut Reader,
    damaged: &dyn Fn() -> String,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<String> {
    let mut tx = pool
        .begin()
        .await
        .context("connecting to the target database")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *tx)
        .await
        .context("taking the append lock")?;
    // Checked again under the lock: an append may have committed since the first look.
    refuse_unless_empty(&mut *tx, database).await?;
    // Beside an empty log, a section holds only what a process made for itself when it started
    // (the name key), and that process may still be running with it: refused, saying so.
    for section in reader.layout().sections() {
        let held: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quoted(section.table)
        ))
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("reading the target's {}", section.plural))?;
        if held {
            bail!(
                "{NOTHING}: the target database already holds {} though its log is empty (a \
                 questlog process has served on it and may still be running with them); import \
                 into a database no process has served",
                section.plural
            );
        }
    }
    let mut batch = Batch::new(reader.layout());
    while let Some(line) = reader.next().with_context(damaged)? {
        if matches!(line, Line::Event(_)) {
            bar.inc(1);
        }
        batch.push(line);
        if batch.full() {
            batch.insert(&mut tx).await?;
        }
    }
    batch.insert(&mut tx).await?;
    let head = reader.header().counts.head;
    if head > 0 {
        // Later appends draw their positions after the imported head.
        sqlx::query("SELECT setval(pg_get_serial_sequence('events', 'position'), $1)")
            .bind(head)
            .execute(&mut *tx)
            .await
            .context("moving the position sequence past the head")?;
        // Wakes a relay already running on this database (delivered on commit).
        sqlx::query("SELECT pg_notify('questlog_appended', $1)")
            .bind(head.to_string())
            .execute(&mut *tx)
            .await
            .context("announcing the import")?;
    }
    tx.commit().await.context("committing the import")?;
    Ok(reader.checksum().expect("the trailer was read").to_owned())
}

/// Rows waiting to be inserted, a statement per table.
struct Batch {
    layout: Layout,
    events: Vec<Event>,
    /// Each beside section's rows, by its place in the layout.
    beside: Vec<Vec<Vec<Cell>>>,
    idempotency_keys: Vec<IdempotencyKey>,
    rows: usize,
    bytes: usize,
}

impl Batch {
    fn new(layout: &Layout) -> Self {
        Self {
            layout: layout.clone(),
            events: Vec::new(),
            beside: vec![Vec::new(); layout.sections().len()],
            idempotency_keys: Vec::new(),
            rows: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, line: Line) {
        self.rows += 1;
        match line {
            Line::Event(e) => {
                self.bytes += e.data.get().len() + e.metadata.get().len();
                self.events.push(e);
            }
            Line::Beside(at, cells) => {
                self.bytes += cells.iter().map(Cell::json_len).sum::<usize>();
                self.beside[at].push(cells);
            }
            Line::IdempotencyKey(k) => self.idempotency_keys.push(k),
            Line::Header(_) | Line::Trailer(_) => {
                unreachable!("the reader hands out neither header nor trailer")
            }
        }
    }

    fn full(&self) -> bool {
        self.rows >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    async fn insert(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            sqlx::query(
                "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, \
                                     schema_version, data, metadata, recorded_at) \
                 SELECT p, id, s, v, t, sv, d::jsonb, m::jsonb, r \
                   FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], \
                               $6::integer[], $7::text[], $8::text[], $9::timestamptz[]) \
                        AS u(p, id, s, v, t, sv, d, m, r)",
            )
            .bind(events.iter().map(|e| e.position).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.stream_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.stream_version).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.schema_version).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.data.get()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.metadata.get()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .context("inserting events")?;
        }
        for at in 0..self.beside.len() {
            let rows = std::mem::take(&mut self.beside[at]);
            if !rows.is_empty() {
                let section = self.layout.sections()[at];
                insert_rows(conn, &section, &rows)
                    .await
                    .with_context(|| format!("inserting {}", section.plural))?;
            }
        }
        if !self.idempotency_keys.is_empty() {
            let keys = std::mem::take(&mut self.idempotency_keys);
            // unnest flattens a two-dimensional array: each key's positions travel as the text
            // of a one-dimensional one.
            let positions: Vec<String> = keys
                .iter()
                .map(|k| {
                    let list: Vec<String> = k.positions.iter().map(i64::to_string).collect();
                    format!("{{{}}}", list.join(","))
                })
                .collect();
            sqlx::query(
                "INSERT INTO idempotency_keys (identity, key, request_hash, command_id, positions, \
                                               head, created_at) \
                 SELECT i, k, h, c, p::bigint[], hd, t \
                   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], \
                               $6::bigint[], $7::timestamptz[]) AS u(i, k, h, c, p, hd, t)",
            )
            .bind(keys.iter().map(|k| k.identity).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.request_hash.as_str()).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.command_id).collect::<Vec<_>>())
            .bind(positions)
            .bind(keys.iter().map(|k| k.head).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.created_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .context("inserting idempotency keys")?;
        }
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }
}

/// Inserts a beside section's rows in one statement: one array per column, unnested.
async fn insert_rows(
    conn: &mut PgConnection,
    section: &ArchiveSection,
    rows: &[Vec<Cell>],
) -> anyhow::Result<()> {
    let names: Vec<String> = section.columns.iter().map(|(n, _)| quoted(n)).collect();
    let mut arrays = Vec::with_capacity(names.len());
    let mut selected = Vec::with_capacity(names.len());
    for (i, ((_, column), name)) in section.columns.iter().zip(&names).enumerate() {
        let (array, cast) = match column {
            Column::Uuid => ("uuid[]", ""),
            Column::Text => ("text[]", ""),
            Column::Jsonb => ("text[]", "::jsonb"),
            Column::Integer => ("integer[]", ""),
            Column::Timestamptz => ("timestamptz[]", ""),
        };
        arrays.push(format!("${}::{array}", i + 1));
        selected.push(format!("{name}{cast}"));
    }
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT {selected} FROM unnest({arrays}) AS u({columns})",
        table = quoted(section.table),
        columns = names.join(", "),
        selected = selected.join(", "),
        arrays = arrays.join(", "),
    );
    let mut query = sqlx::query(&sql);
    for (i, (_, column)) in section.columns.iter().enumerate() {
        let values = rows.iter().map(|row| &row[i]);
        query = match column {
            Column::Uuid => query.bind(
                values
                    .map(|c| match c {
                        Cell::Uuid(u) => Some(*u),
                        _ => None,
                    })
                    .collect::<Vec<Option<Uuid>>>(),
            ),
            Column::Text | Column::Jsonb => query.bind(
                values
                    .map(|c| match c {
                        Cell::Text(t) => Some(t.clone()),
                        Cell::Json(j) => Some(j.get().to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<Option<String>>>(),
            ),
            Column::Integer => query.bind(
                values
                    .map(|c| match c {
                        Cell::Integer(n) => Some(*n),
                        _ => None,
                    })
                    .collect::<Vec<Option<i32>>>(),
            ),
            Column::Timestamptz => query.bind(
                values
                    .map(|c| match c {
                        Cell::Time(t) => Some(*t),
                        _ => None,
                    })
                    .collect::<Vec<Option<DateTime<Utc>>>>(),
            ),
        };
    }
    query.execute(&mut *conn).await?;
    Ok(())
}
