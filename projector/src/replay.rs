//! Blue/green rebuilds: projections rebuilt from the log (not through NATS) by their own `apply`
//! code (each page decoded once, by the modules' registry, for every projection) into fresh tables in the `questlog_replay` schema, then switched in for the live rows in
//! one transaction, while reads stay up.
//!
//! 1. The new tables are made `LIKE` the live ones (with their indexes, under the live names) and
//!    filled up to each projection's live checkpoint, page by page, with `search_path` pointing
//!    at them. The live projector keeps going.
//! 2. The switch locks each projection's checkpoint row, which is the first thing a projector's
//!    batch does, so the live projector pauses between two batches; the rebuild applies what the
//!    projector committed meanwhile, replaces the live tables' rows with the rebuilt ones, and
//!    commits. The projector carries on from its unchanged checkpoint. Readers never wait and
//!    never see a half-built model: each sees the old rows or the new ones, by its snapshot.
//!
//! `build_until` alone (with `--to`) builds the tables as of a past position and leaves them in
//! their schema for inspection, switching nothing.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use questlog_domain::Domain;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use crate::{Bulk, Decoded, Projection};

/// The schema the new tables are built in.
pub const SCHEMA: &str = "questlog_replay";
/// Events read from the log per page (and applied per transaction) by `apply`: the size of a
/// live batch when the projector is far behind.
const PAGE: i64 = 2000;
/// Events read from the log per page of a bulk rebuild: a page's fixed costs (its transaction,
/// the keys of personal data, the other projections' statements) shared by more events.
const BULK_PAGE: i64 = 10_000;
/// Events folded in memory between two flushes of a bulk rebuild's final rows.
const SPAN: usize = 100_000;

/// What one rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rebuilt {
    pub projection: &'static str,
    /// The position the tables reflect (the live checkpoint at the switch, or the `--to` target).
    pub position: i64,
    /// Events applied from the log.
    pub events: u64,
}

/// How a rebuild folds the log into empty tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// In memory, written in bulk, for every projection that has a [`crate::Bulk`]; page by page
    /// by `apply` for the others.
    Bulk,
    /// Page by page by `apply`, for every projection: the live projector's own path, kept to
    /// measure and check the bulk one against.
    Pages,
}

impl Fold {
    /// Whether `projection` is rebuilt in bulk.
    pub(crate) fn bulk(self, projection: &dyn Projection) -> Option<Box<dyn Bulk>> {
        match self {
            Self::Bulk => projection.bulk(),
            Self::Pages => None,
        }
    }

    /// Events per page of the log.
    fn page(self) -> i64 {
        match self {
            Self::Bulk => BULK_PAGE,
            Self::Pages => PAGE,
        }
    }
}

/// Creates `schema` afresh with empty tables shaped like the live tables of `projections`: with
/// their indexes (under the live names) for a projection folded page by page, without them and
/// unlogged for one folded in bulk (its indexes come after the load, [`index`]).
///
/// # Errors
/// When the database fails.
pub async fn prepare(
    conn: &mut PgConnection,
    schema: &str,
    projections: &[&dyn Projection],
    fold: Fold,
) -> anyhow::Result<()> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *conn)
        .await?;
    for projection in projections {
        let bulk = fold.bulk(*projection).is_some();
        for table in projection.tables() {
            create_table(conn, Some(schema), table, bulk).await?;
        }
    }
    Ok(())
}

/// Creates an empty table shaped like the live `table`, in `schema` (a temporary table when
/// `None`): with the live table's indexes, or, for a bulk load, unlogged and without them.
///
/// # Errors
/// When the database fails.
pub async fn create_table(
    conn: &mut PgConnection,
    schema: Option<&str>,
    table: &str,
    bulk: bool,
) -> anyhow::Result<()> {
    let (kind, name) = match schema {
        None => ("TEMP", table.to_owned()),
        Some(_) if bulk => (
            "UNLOGGED",
            format!("{}.{table}", schema.unwrap_or_default()),
        ),
        Some(schema) => ("", format!("{schema}.{table}")),
    };
    let indexes = if bulk {
        "INCLUDING ALL EXCLUDING INDEXES"
    } else {
        "INCLUDING ALL"
    };
    let drop = if schema.is_none() {
        " ON COMMIT DROP"
    } else {
        ""
    };
    sqlx::query(&format!(
        "CREATE {kind} TABLE {name} (LIKE public.{table} {indexes}){drop}"
    ))
    .execute(&mut *conn)
    .await
    .with_context(|| format!("creating {name}"))?;
    if !bulk {
        if let Some(schema) = schema {
            rename_indexes(conn, schema, table).await?;
        }
    }
    Ok(())
}

/// Postgres names the indexes `LIKE` copies itself; gives them the live names.
async fn rename_indexes(conn: &mut PgConnection, schema: &str, table: &str) -> anyhow::Result<()> {
    let renames: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.indexname, o.indexname FROM pg_indexes n
           JOIN pg_indexes o ON o.schemaname = 'public' AND o.tablename = n.tablename
            AND replace(replace(o.indexdef, o.indexname, ''), 'public.', '')
              = replace(replace(n.indexdef, n.indexname, ''), n.schemaname || '.', '')
          WHERE n.schemaname = $1 AND n.tablename = $2 AND n.indexname <> o.indexname",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (new, old) in renames {
        sqlx::query(&format!(
            "ALTER INDEX {schema}.\"{new}\" RENAME TO \"{old}\""
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Builds on `schema`'s `table`, once loaded, the live table's constraints (primary key, unique)
/// and indexes, under their live names.
///
/// # Errors
/// When the database fails.
pub async fn index(conn: &mut PgConnection, schema: &str, table: &str) -> anyhow::Result<()> {
    let statements: Vec<String> = sqlx::query_scalar(
        "SELECT format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', $1::text, c.relname, k.conname,
                       pg_get_constraintdef(k.oid))
           FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
          WHERE c.oid = format('public.%I', $2::text)::regclass AND k.contype IN ('p', 'u', 'x')
         UNION ALL
         SELECT regexp_replace(
                  regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX ',
                                 'CREATE \\1INDEX IF NOT EXISTS '),
                  ' ON (public\\.)?' || c.relname || ' ', format(' ON %I.%I ', $1::text, c.relname))
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          WHERE c.oid = format('public.%I', $2::text)::regclass
            AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                             WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for statement in statements {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("indexing {schema}.{table}: {statement}"))?;
    }
    Ok(())
}

/// Applies the log's events after `from` up to `until` (per projection) into the tables of
/// `schema` (the temporary tables when `None`), a page per transaction (a savepoint inside one).
/// A projection rebuilt from the start (`from` 0) with a [`Bulk`] fold (`fold`) folds in memory
/// and writes its rows in bulk; the others `apply` each page. Returns the events applied per
/// projection.
///
/// With a `reader` (another connection to the same database) the log is read there, pages ahead,
/// while `conn` writes: reading the log and writing the rebuilt rows then run at the same time
/// (two Postgres backends); at the end, into a schema's tables, the two connections share the
/// last rows' `COPY`s and index builds. Without one, `conn` reads the next page between the
/// writes and writes the end alone.
///
/// # Errors
/// When the database fails or an event cannot be folded.
#[allow(clippy::too_many_arguments)]
pub async fn build_until(
    conn: &mut PgConnection,
    reader: Option<PgConnection>,
    domain: &Domain,
    schema: Option<&str>,
    projections: &[&dyn Projection],
    from: &HashMap<&'static str, i64>,
    until: &HashMap<&'static str, i64>,
    fold: Fold,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<HashMap<&'static str, u64>> {
    let mut applied: HashMap<&'static str, u64> = HashMap::new();
    let bounds = |p: &dyn Projection| {
        (
            from.get(p.name().as_str()).copied().unwrap_or(0),
            until.get(p.name().as_str()).copied().unwrap_or(0),
        )
    };
    let mut bulk: Vec<Option<Box<dyn Bulk>>> = projections
        .iter()
        .map(|p| {
            if bounds(*p).0 == 0 {
                fold.bulk(*p)
            } else {
                None
            }
        })
        .collect();
    let start = projections.iter().map(|p| bounds(*p).0).min().unwrap_or(0);
    let end = projections.iter().map(|p| bounds(*p).1).max().unwrap_or(0);
    let domain = Arc::new(domain.clone());
    // The fresh tables grow from empty: each statement planned for them as they are.
    sqlx::query(crate::PLAN_EACH_STATEMENT)
        .execute(&mut *conn)
        .await?;
    let mut unflushed = 0;
    // With a reader connection of its own, the log streams in while this connection writes.
    let (mut pages, reading) = match reader.filter(|_| start < end) {
        Some(reader) => {
            let (sender, pages) = mpsc::channel(2);
            let reading = tokio::spawn(read_ahead(
                reader,
                Arc::clone(&domain),
                (start, end),
                fold.page(),
                sender,
            ));
            (Some(pages), Some(reading))
        }
        None => (None, None),
    };
    let mut next = match pages.as_mut() {
        Some(pages) => pages.recv().await.transpose()?,
        None if start < end => prefetch(conn, &domain, start, fold.page()).await?,
        None => None,
    };
    // The bulk folds in flight: each projection's on the blocking pool, the next page's started
    // once this page's is done. They run while this connection writes (the other projections'
    // applies, the commits) and the reader reads ahead.
    let mut folding: Vec<Folding> = Vec::new();
    while let Some(Prefetch { last, decoded }) = next.take() {
        let mut tx = conn.begin().await?;
        if let Some(schema) = schema {
            sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
                .execute(&mut *tx)
                .await?;
        }
        let events = Arc::new(decoded.await.context("decoding a page of the log")??);
        collect(&mut folding, &mut bulk, &mut applied).await?;
        for (i, projection) in projections.iter().enumerate() {
            let Some(mut fold) = bulk[i].take() else {
                continue;
            };
            let name = projection.name().as_str();
            let (lo, hi) = bounds(*projection);
            let events = Arc::clone(&events);
            let task = tokio::task::spawn_blocking(move || {
                let mine = within(&events, lo, hi);
                if !mine.is_empty() {
                    fold.fold(&mine)
                        .with_context(|| format!("replaying {name}"))?;
                }
                anyhow::Ok((fold, mine.len() as u64))
            });
            folding.push(Folding {
                index: i,
                name,
                task,
            });
        }
        if pages.is_none() && last < end {
            next = prefetch(&mut tx, &domain, last, fold.page()).await?;
        }
        for (_, projection) in projections
            .iter()
            .enumerate()
            .filter(|(i, _)| !folding.iter().any(|f| f.index == *i))
        {
            let name = projection.name().as_str();
            let (lo, hi) = bounds(*projection);
            let mine = within(&events, lo, hi);
            if mine.is_empty() {
                continue;
            }
            projection
                .apply(&mut tx, &mine)
                .await
                .with_context(|| format!("replaying {name}"))?;
            *applied.entry(name).or_default() += mine.len() as u64;
        }
        unflushed += events.len();
        if unflushed >= SPAN {
            unflushed = 0;
            collect(&mut folding, &mut bulk, &mut applied).await?;
            for bulk in bulk.iter_mut().flatten() {
                bulk.flush(&mut tx).await?;
            }
        }
        tx.commit().await?;
        progress(last.min(end), end);
        if let Some(pages) = pages.as_mut() {
            next = pages.recv().await.transpose()?;
        }
    }
    collect(&mut folding, &mut bulk, &mut applied).await?;
    let finishing: Vec<(&dyn Projection, Box<dyn Bulk>)> = projections
        .iter()
        .zip(bulk)
        .filter_map(|(p, b)| b.map(|b| (*p, b)))
        .collect();
    // The reader connection, done with the log, takes every other projection's last rows and
    // index builds (the schema's tables are committed, so either connection writes them): two
    // Postgres backends at once.
    let reader = match reading {
        Some(reading) if schema.is_some() => reading.await.ok().flatten(),
        _ => None,
    };
    match reader {
        Some(mut reader) => {
            let (mine, theirs): (Vec<_>, Vec<_>) = finishing
                .into_iter()
                .enumerate()
                .partition(|(i, _)| i % 2 == 0);
            let strip = |v: Vec<(usize, _)>| v.into_iter().map(|(_, f)| f).collect::<Vec<_>>();
            tokio::try_join!(
                finish(conn, schema, strip(mine)),
                finish(&mut reader, schema, strip(theirs)),
            )?;
        }
        None => finish(conn, schema, finishing).await?,
    }
    Ok(applied)
}

/// A projection's bulk fold of a page, running on the blocking pool.
struct Folding {
    /// The projection's index in the rebuild's list.
    index: usize,
    name: &'static str,
    task: tokio::task::JoinHandle<anyhow::Result<(Box<dyn Bulk>, u64)>>,
}

/// Waits for the folds in flight and puts each fold back in its projection's place.
async fn collect(
    folding: &mut Vec<Folding>,
    bulk: &mut [Option<Box<dyn Bulk>>],
    applied: &mut HashMap<&'static str, u64>,
) -> anyhow::Result<()> {
    for Folding { index, name, task } in folding.drain(..) {
        let (fold, n) = task.await.context("folding a page of the log")??;
        bulk[index] = Some(fold);
        if n > 0 {
            *applied.entry(name).or_default() += n;
        }
    }
    Ok(())
}

/// Writes the rows the bulk folds still hold, then (into a schema's tables) builds the live
/// tables' constraints and indexes on them, in one transaction on `conn`.
async fn finish(
    conn: &mut PgConnection,
    schema: Option<&str>,
    finishing: Vec<(&dyn Projection, Box<dyn Bulk>)>,
) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    if let Some(schema) = schema {
        sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
            .execute(&mut *tx)
            .await?;
    }
    for (projection, bulk) in finishing {
        bulk.finish(&mut tx)
            .await
            .with_context(|| format!("writing {}", projection.name()))?;
        if let Some(schema) = schema {
            for table in projection.tables() {
                index(&mut tx, schema, table).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The events of a page (in log order) after `lo` up to `hi`: one run of it, found by two binary
/// searches.
fn within(events: &[Decoded], lo: i64, hi: i64) -> Vec<&Decoded> {
    let start = events.partition_point(|e| e.position() <= lo);
    let end = events.partition_point(|e| e.position() <= hi).max(start);
    events[start..end].iter().collect()
}

/// A page of the log read and opened, being decoded on the blocking pool.
struct Prefetch {
    /// Its last event's position.
    last: i64,
    decoded: tokio::task::JoinHandle<anyhow::Result<Vec<Decoded>>>,
}

/// Reads the log after `after` page by page (`page` events each) on `reader`, each page opened
/// and being decoded, into `pages`, up to the page holding `end`; hands `reader` back once it has
/// read that far. Stops at the first failure, which it sends, or when the receiver is gone.
async fn read_ahead(
    mut reader: PgConnection,
    domain: Arc<Domain>,
    (mut after, end): (i64, i64),
    page: i64,
    pages: mpsc::Sender<anyhow::Result<Prefetch>>,
) -> Option<PgConnection> {
    while after < end {
        let page = match prefetch(&mut reader, &domain, after, page).await {
            Ok(Some(page)) => {
                after = page.last;
                Ok(page)
            }
            Ok(None) => break, // the log's end
            Err(e) => Err(e),
        };
        let failed = page.is_err();
        if pages.send(page).await.is_err() || failed {
            return None;
        }
    }
    Some(reader)
}

/// Reads the page of `page` events of the log after `after` and opens its personal fields on
/// `conn`, and starts decoding it on the blocking pool (another core, while the page before it is
/// folded); `None` at the log's end.
async fn prefetch(
    conn: &mut PgConnection,
    domain: &Arc<Domain>,
    after: i64,
    page: i64,
) -> anyhow::Result<Option<Prefetch>> {
    let mut events = questlog_store::read_after(&mut *conn, after, page)
        .await
        .context("reading the log")?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(None);
    };
    questlog_store::sealing::open_all(conn, domain.legacy_personal(), &mut events)
        .await
        .context("reading the keys of personal data")?;
    let domain = Arc::clone(domain);
    let decoded = tokio::task::spawn_blocking(move || Decoded::decode_all(&domain, events));
    Ok(Some(Prefetch { last, decoded }))
}

async fn checkpoints(
    conn: &mut PgConnection,
    projections: &[&dyn Projection],
    lock: bool,
) -> anyhow::Result<HashMap<&'static str, i64>> {
    let names: Vec<&str> = projections.iter().map(|p| p.name().as_str()).collect();
    sqlx::query("INSERT INTO projection_checkpoints (projection) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING")
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    let sql = if lock {
        "SELECT projection, position FROM projection_checkpoints WHERE projection = ANY($1) ORDER BY projection FOR UPDATE"
    } else {
        "SELECT projection, position FROM projection_checkpoints WHERE projection = ANY($1)"
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .bind(&names)
        .fetch_all(&mut *conn)
        .await?;
    Ok(projections
        .iter()
        .map(|p| {
            let position = rows
                .iter()
                .find(|(n, _)| n == p.name().as_str())
                .map_or(0, |(_, position)| *position);
            (p.name().as_str(), position)
        })
        .collect())
}

/// A rebuild up to the live checkpoints it read, in [`SCHEMA`], not switched in yet: readers read
/// the live tables, untouched, until [`Built::switch`].
pub struct Built {
    target: HashMap<&'static str, i64>,
    applied: HashMap<&'static str, u64>,
}

/// Builds `projections` from the log in [`SCHEMA`] up to their live checkpoints, while the live
/// projector goes on; [`Built::switch`] then switches them in. Holds a session lock on `conn`
/// (one rebuild at a time): switch on the same connection. `reader`, another connection to the
/// same database, reads the log meanwhile ([`build_until`]).
///
/// # Errors
/// When another rebuild is running, the database fails or an event cannot be folded.
pub async fn build(
    conn: &mut PgConnection,
    reader: Option<PgConnection>,
    domain: &Domain,
    projections: &[&dyn Projection],
    fold: Fold,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Built> {
    // One rebuild at a time: they share the schema they build in. Held by this connection.
    let alone: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(questlog_store::leader::lock_key("replay"))
        .fetch_one(&mut *conn)
        .await?;
    anyhow::ensure!(
        alone,
        "another replay is running on this database; try again when it is done"
    );
    prepare(conn, SCHEMA, projections, fold).await?;
    let zero: HashMap<&'static str, i64> = HashMap::new();
    let target = checkpoints(conn, projections, false).await?;
    let applied = build_until(
        conn,
        reader,
        domain,
        Some(SCHEMA),
        projections,
        &zero,
        &target,
        fold,
        progress,
    )
    .await?;
    Ok(Built { target, applied })
}

impl Built {
    /// Brings the rebuilt tables up to the live checkpoints and switches them in, in one
    /// transaction.
    ///
    /// # Errors
    /// When the database fails or an event cannot be folded; the live tables are then untouched.
    pub async fn switch(
        self,
        conn: &mut PgConnection,
        domain: &Domain,
        projections: &[&dyn Projection],
    ) -> anyhow::Result<Vec<Rebuilt>> {
        let Self {
            target,
            mut applied,
        } = self;
        let mut tx = conn.begin().await?;
        let now = checkpoints(&mut tx, projections, true).await?;
        // What the projector committed meanwhile, by `apply`, into the indexed rebuilt tables.
        let tail = build_until(
            &mut tx,
            None,
            domain,
            Some(SCHEMA),
            projections,
            &target,
            &now,
            Fold::Pages,
            &mut |_, _| {},
        )
        .await?;
        for (name, n) in tail {
            *applied.entry(name).or_default() += n;
        }
        // The live tables take the rebuilt rows in the switch's transaction: a reader's snapshot
        // sees all of the old rows or all of the new, never a mix and never an empty table
        // (swapping whole tables would show an empty one to a reader whose snapshot predates the
        // rebuild).
        for table in projections.iter().flat_map(|p| p.tables()) {
            sqlx::query(&format!("DELETE FROM public.{table}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "INSERT INTO public.{table} SELECT * FROM {SCHEMA}.{table}"
            ))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("switching {table} in"))?;
        }
        sqlx::query(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .execute(&mut *tx)
            .await?;
        tx.commit()
            .await
            .context("switching the rebuilt tables in")?;
        // Every row of the live tables changed: their statistics are made again now, not when
        // autovacuum (if it runs) gets to them, so that the readers' plans fit the new rows.
        for table in projections.iter().flat_map(|p| p.tables()) {
            sqlx::query(&format!("ANALYZE public.{table}"))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("analyzing {table}"))?;
        }
        Ok(projections
            .iter()
            .map(|p| Rebuilt {
                projection: p.name().as_str(),
                position: now.get(p.name().as_str()).copied().unwrap_or(0),
                events: applied.get(p.name().as_str()).copied().unwrap_or(0),
            })
            .collect())
    }
}

/// Rebuilds `projections` from the log and switches the rebuilt tables in for the live ones
/// (`reader`: as for [`build`]).
///
/// # Errors
/// When the database fails or an event cannot be folded; the live tables are then untouched.
pub async fn rebuild_and_switch(
    conn: &mut PgConnection,
    reader: Option<PgConnection>,
    domain: &Domain,
    projections: &[&dyn Projection],
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<Rebuilt>> {
    build(conn, reader, domain, projections, Fold::Bulk, progress)
        .await?
        .switch(conn, domain, projections)
        .await
}

/// Builds `projections` as of `position` into `schema`, switching nothing (`reader`: as for
/// [`build`]).
///
/// # Errors
/// When the database fails or an event cannot be folded.
#[allow(clippy::too_many_arguments)]
pub async fn build_as_of(
    conn: &mut PgConnection,
    reader: Option<PgConnection>,
    domain: &Domain,
    schema: &str,
    projections: &[&dyn Projection],
    position: i64,
    fold: Fold,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<Rebuilt>> {
    prepare(conn, schema, projections, fold).await?;
    let zero: HashMap<&'static str, i64> = HashMap::new();
    let target: HashMap<&'static str, i64> = projections
        .iter()
        .map(|p| (p.name().as_str(), position))
        .collect();
    let applied = build_until(
        conn,
        reader,
        domain,
        Some(schema),
        projections,
        &zero,
        &target,
        fold,
        progress,
    )
    .await?;
    Ok(projections
        .iter()
        .map(|p| Rebuilt {
            projection: p.name().as_str(),
            position,
            events: applied.get(p.name().as_str()).copied().unwrap_or(0),
        })
        .collect())
}
