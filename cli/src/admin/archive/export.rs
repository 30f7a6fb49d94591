//! `questlog export`: one snapshot of the log and what is kept beside it, streamed to a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _};
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use questlog_store::archive::{ArchiveSection, Column};

use super::format::{
    Cell, Counts, Event, Header, IdempotencyKey, Layout, Line, Writer, FORMAT, VERSION,
};
use super::{progress, quoted, ArchiveSummary};

/// Events read from the log per query: what an export holds in memory at most.
pub const PAGE: i64 = 1000;

/// Writes the log of `pool`'s database, with what the running modules keep beside it (their
/// archive sections) and the idempotency keys, to `path` (which must not exist), then prints the
/// summary to `out`.
///
/// # Errors
/// When the database cannot be read or the file cannot be written; no file is left behind then.
pub async fn export(
    pool: &PgPool,
    path: &Path,
    progress: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ArchiveSummary> {
    ensure!(
        !path.exists(),
        "{} already exists: export never overwrites, choose another file or remove it",
        path.display()
    );
    let layout = super::layout();
    let partial = partial_path(path);
    let written = write(pool, &partial, &layout, progress).await;
    let (database, counts, sha256) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
    let summary = ArchiveSummary::of_file(path, database, counts, sha256)?;
    summary.print(out, json, None, &layout)?;
    Ok(summary)
}

/// `<file>.partial`, beside the file: a rename within one directory is atomic.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

async fn write(
    pool: &PgPool,
    path: &Path,
    layout: &Layout,
    progress: bool,
) -> anyhow::Result<(String, Counts, String)> {
    let mut tx = pool.begin().await.context("connecting to the database")?;
    // One snapshot for everything: what is kept beside the log matches the log, however many
    // commands the running services commit meanwhile.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .context("starting the snapshot")?;
    let row = sqlx::query(
        "SELECT current_database(), \
                (SELECT count(*) FROM events), \
                (SELECT coalesce(max(position), 0) FROM events), \
                (SELECT count(*) FROM idempotency_keys)",
    )
    .fetch_one(&mut *tx)
    .await
    .context("counting the log")?;
    let database: String = row.get(0);
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut expected = Counts {
        events: count(row.get(1)),
        head: row.get(2),
        idempotency_keys: count(row.get(3)),
        ..layout.zero()
    };
    for section in layout.sections() {
        let rows: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quoted(section.table)))
                .fetch_one(&mut *tx)
                .await
                .with_context(|| format!("counting the {}", section.plural))?;
        expected
            .beside
            .insert(section.count.to_owned(), count(rows));
    }

    let mut file = Writer::create(path, layout.clone())?;
    file.write(&Line::Header(Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: Utc::now(),
        source: database.clone(),
        counts: expected.clone(),
    }))?;
    let mut written = layout.zero();
    let bar = progress::bar(progress, expected.events, "export");
    write_events(&mut tx, &mut file, &mut written, &bar).await?;
    bar.finish_and_clear();
    write_beside(&mut tx, &mut file, layout, &mut written).await?;
    tx.rollback().await.context("ending the snapshot")?;
    ensure!(
        written == expected,
        "the snapshot changed while it was read: counted {expected:?}, read {written:?}"
    );
    let sha256 = file.finish(written.clone())?;
    Ok((database, written, sha256))
}

/// The log, a page at a time by position.
async fn write_events(
    conn: &mut PgConnection,
    file: &mut Writer,
    written: &mut Counts,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    loop {
        // `jsonb` as Postgres prints it, so that it goes back in unchanged.
        let rows = sqlx::query(
            "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, \
                    data::text, metadata::text, recorded_at \
               FROM events WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(written.head)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .context("reading the log")?;
        for row in &rows {
            let event = Event {
                position: row.get(0),
                event_id: row.get(1),
                stream_id: row.get(2),
                stream_version: row.get(3),
                event_type: row.get(4),
                schema_version: row.get(5),
                data: raw(row.get(6))?,
                metadata: raw(row.get(7))?,
                recorded_at: row.get(8),
            };
            written.events += 1;
            written.head = event.position;
            file.write(&Line::Event(event))?;
        }
        bar.inc(rows.len() as u64);
        if rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            return Ok(());
        }
    }
}

/// What the modules keep beside the log, section by section, then the idempotency keys, streamed
/// row by row.
async fn write_beside(
    conn: &mut PgConnection,
    file: &mut Writer,
    layout: &Layout,
    written: &mut Counts,
) -> anyhow::Result<()> {
    for (at, section) in layout.sections().iter().enumerate() {
        let sql = select(section);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        while let Some(row) = rows
            .try_next()
            .await
            .with_context(|| format!("reading the {}", section.plural))?
        {
            let cells =
                cells(section, &row).with_context(|| format!("reading the {}", section.plural))?;
            file.write(&Line::Beside(at, cells))?;
            *written.beside.entry(section.count.to_owned()).or_default() += 1;
        }
    }

    let mut rows = sqlx::query_as::<_, (Uuid, String, String, Uuid, Vec<i64>, i64, DateTime<Utc>)>(
        "SELECT identity, key, request_hash, command_id, positions, head, created_at \
           FROM idempotency_keys ORDER BY identity, key",
    )
    .fetch(&mut *conn);
    while let Some((identity, key, request_hash, command_id, positions, head, created_at)) = rows
        .try_next()
        .await
        .context("reading the idempotency keys")?
    {
        file.write(&Line::IdempotencyKey(IdempotencyKey {
            identity,
            key,
            request_hash,
            command_id,
            positions,
            head,
            created_at,
        }))?;
        written.idempotency_keys += 1;
    }
    Ok(())
}

/// The section's rows, its key's order, `jsonb` as text.
fn select(section: &ArchiveSection) -> String {
    let columns: Vec<String> = section
        .columns
        .iter()
        .map(|(name, column)| match column {
            Column::Jsonb => format!("{}::text", quoted(name)),
            _ => quoted(name),
        })
        .collect();
    let order: Vec<String> = section.order_by.iter().map(|c| quoted(c)).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        quoted(section.table),
        order.join(", ")
    )
}

/// One row's values, by its columns' types.
fn cells(section: &ArchiveSection, row: &PgRow) -> anyhow::Result<Vec<Cell>> {
    fn cell<T>(value: Option<T>, wrap: fn(T) -> Cell) -> Cell {
        value.map_or(Cell::Null, wrap)
    }
    section
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, column))| {
            Ok(match column {
                Column::Uuid => cell(row.try_get(i)?, Cell::Uuid),
                Column::Text => cell(row.try_get(i)?, Cell::Text),
                Column::Jsonb => match row.try_get::<Option<String>, _>(i)? {
                    Some(text) => Cell::Json(raw(text)?),
                    None => Cell::Null,
                },
                Column::Integer => cell(row.try_get(i)?, Cell::Integer),
                Column::Timestamptz => cell(row.try_get(i)?, Cell::Time),
            })
        })
        .collect()
}

fn raw(json: String) -> anyhow::Result<Box<RawValue>> {
    RawValue::from_string(json).context("Postgres printed jsonb that is not JSON")
}
