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

use anyhow::Context as _;
use questlog_domain::Domain;
use sqlx::{Connection, PgConnection};

use crate::{Decoded, Projection};

/// The schema the new tables are built in.
pub const SCHEMA: &str = "questlog_replay";
/// Events read from the log per page (and applied per transaction).
const PAGE: i64 = 2000;

/// What one rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rebuilt {
    pub projection: &'static str,
    /// The position the tables reflect (the live checkpoint at the switch, or the `--to` target).
    pub position: i64,
    /// Events applied from the log.
    pub events: u64,
}

/// Creates `schema` afresh with empty tables shaped like the live tables of `projections`.
///
/// # Errors
/// When the database fails.
pub async fn prepare(
    conn: &mut PgConnection,
    schema: &str,
    projections: &[&dyn Projection],
) -> anyhow::Result<()> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *conn)
        .await?;
    for table in projections.iter().flat_map(|p| p.tables()) {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("creating {schema}.{table}"))?;
        // Postgres names the copied indexes itself; give them the live names.
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
    }
    Ok(())
}

/// Applies the log's events after `from` up to `until` (per projection) into the tables of
/// `schema`, a page per transaction. Returns the events applied per projection.
///
/// # Errors
/// When the database fails or an event cannot be folded.
pub async fn build_until(
    conn: &mut PgConnection,
    domain: &Domain,
    schema: &str,
    projections: &[&dyn Projection],
    from: &HashMap<&'static str, i64>,
    until: &HashMap<&'static str, i64>,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<HashMap<&'static str, u64>> {
    let mut applied: HashMap<&'static str, u64> = HashMap::new();
    let start = projections
        .iter()
        .map(|p| from.get(p.name().as_str()).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    let end = projections
        .iter()
        .map(|p| until.get(p.name().as_str()).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut after = start;
    while after < end {
        let mut tx = conn.begin().await?;
        sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
            .execute(&mut *tx)
            .await?;
        let events = Decoded::read_after(&mut tx, domain, after, PAGE).await?;
        let Some(last) = events.last().map(Decoded::position) else {
            break;
        };
        for projection in projections {
            let name = projection.name().as_str();
            let (lo, hi) = (
                from.get(name).copied().unwrap_or(0),
                until.get(name).copied().unwrap_or(0),
            );
            let mine: Vec<_> = events
                .iter()
                .filter(|e| e.position() > lo && e.position() <= hi)
                .collect();
            if !mine.is_empty() {
                projection
                    .apply(&mut tx, &mine)
                    .await
                    .with_context(|| format!("replaying {name}"))?;
                *applied.entry(name).or_default() += mine.len() as u64;
            }
        }
        tx.commit().await?;
        after = last;
        progress(after.min(end), end);
    }
    Ok(applied)
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

/// Rebuilds `projections` from the log and switches the rebuilt tables in for the live ones.
///
/// # Errors
/// When the database fails or an event cannot be folded; the live tables are then untouched.
pub async fn rebuild_and_switch(
    conn: &mut PgConnection,
    domain: &Domain,
    projections: &[&dyn Projection],
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<Rebuilt>> {
    // One rebuild at a time: they share the schema they build in. Held by this connection.
    let alone: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(questlog_store::leader::lock_key("replay"))
        .fetch_one(&mut *conn)
        .await?;
    anyhow::ensure!(
        alone,
        "another replay is running on this database; try again when it is done"
    );
    prepare(conn, SCHEMA, projections).await?;
    let zero: HashMap<&'static str, i64> = HashMap::new();
    let target = checkpoints(conn, projections, false).await?;
    let mut applied =
        build_until(conn, domain, SCHEMA, projections, &zero, &target, progress).await?;

    let mut tx = conn.begin().await?;
    let now = checkpoints(&mut tx, projections, true).await?;
    let tail = build_until(
        &mut tx,
        domain,
        SCHEMA,
        projections,
        &target,
        &now,
        &mut |_, _| {},
    )
    .await?;
    for (name, n) in tail {
        *applied.entry(name).or_default() += n;
    }
    // The live tables take the rebuilt rows in the switch's transaction: a reader's snapshot
    // sees all of the old rows or all of the new, never a mix and never an empty table (swapping
    // whole tables would show an empty one to a reader whose snapshot predates the rebuild).
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
    Ok(projections
        .iter()
        .map(|p| Rebuilt {
            projection: p.name().as_str(),
            position: now.get(p.name().as_str()).copied().unwrap_or(0),
            events: applied.get(p.name().as_str()).copied().unwrap_or(0),
        })
        .collect())
}

/// Builds `projections` as of `position` into `schema`, switching nothing.
///
/// # Errors
/// When the database fails or an event cannot be folded.
pub async fn build_as_of(
    conn: &mut PgConnection,
    domain: &Domain,
    schema: &str,
    projections: &[&dyn Projection],
    position: i64,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<Rebuilt>> {
    prepare(conn, schema, projections).await?;
    let zero: HashMap<&'static str, i64> = HashMap::new();
    let target: HashMap<&'static str, i64> = projections
        .iter()
        .map(|p| (p.name().as_str(), position))
        .collect();
    let applied = build_until(conn, domain, schema, projections, &zero, &target, progress).await?;
    Ok(projections
        .iter()
        .map(|p| Rebuilt {
            projection: p.name().as_str(),
            position,
            events: applied.get(p.name().as_str()).copied().unwrap_or(0),
        })
        .collect())
}
