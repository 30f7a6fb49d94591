//! Blue/green rebuilds: projections rebuilt from the log (not through NATS) by their own `apply`
//! code into fresh tables in the `questlog_replay` schema, then switched in for the live tables
//! in one transaction, while reads stay up.
//!
//! 1. The new tables are made `LIKE` the live ones (indexes renamed to the live names, so the
//!    schema stays what the migrations made) and filled up to each projection's live checkpoint,
//!    page by page, with `search_path` pointing at them. The live projector keeps going.
//! 2. The switch locks each projection's checkpoint row, which is the first thing a projector's
//!    batch does, so the live projector pauses between two batches; the rebuild applies what the
//!    projector committed meanwhile, moves the live tables out and the new ones in, and commits.
//!    The projector then carries on from its unchanged checkpoint, on the new tables. Readers wait
//!    for the switch's brief exclusive lock at most; none sees a half-built table.
//!
//! `build_until` alone (with `--to`) builds the tables as of a past position and leaves them in
//! their schema for inspection, switching nothing.

use std::collections::HashMap;

use anyhow::Context as _;
use questlog_store::read_after;
use sqlx::{Connection, PgConnection};

use crate::Projection;

/// The schema the new tables are built in.
pub const SCHEMA: &str = "questlog_replay";
/// Where the live tables go during the switch, before they are dropped.
const RETIRED: &str = "questlog_retired";
/// Tries at taking the live tables (2 ms apart) before the switch gives up.
const LOCK_ATTEMPTS: u32 = 5000;
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
    schema: &str,
    projections: &[&dyn Projection],
    from: &HashMap<&'static str, i64>,
    until: &HashMap<&'static str, i64>,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<HashMap<&'static str, u64>> {
    let mut applied: HashMap<&'static str, u64> = HashMap::new();
    let start = projections
        .iter()
        .map(|p| from.get(p.name()).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    let end = projections
        .iter()
        .map(|p| until.get(p.name()).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut after = start;
    while after < end {
        let mut tx = conn.begin().await?;
        sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
            .execute(&mut *tx)
            .await?;
        let events = read_after(&mut *tx, after, PAGE).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        for projection in projections {
            let name = projection.name();
            let (lo, hi) = (
                from.get(name).copied().unwrap_or(0),
                until.get(name).copied().unwrap_or(0),
            );
            let mine: Vec<_> = events
                .iter()
                .filter(|e| e.position > lo && e.position <= hi)
                .cloned()
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
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
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
                .find(|(n, _)| n == p.name())
                .map_or(0, |(_, position)| *position);
            (p.name(), position)
        })
        .collect())
}

/// Rebuilds `projections` from the log and switches the rebuilt tables in for the live ones.
///
/// # Errors
/// When the database fails or an event cannot be folded; the live tables are then untouched.
pub async fn rebuild_and_switch(
    conn: &mut PgConnection,
    projections: &[&dyn Projection],
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<Rebuilt>> {
    prepare(conn, SCHEMA, projections).await?;
    let zero: HashMap<&'static str, i64> = HashMap::new();
    let target = checkpoints(conn, projections, false).await?;
    let mut applied = build_until(conn, SCHEMA, projections, &zero, &target, progress).await?;

    let mut tx = conn.begin().await?;
    let now = checkpoints(&mut tx, projections, true).await?;
    let tail = build_until(&mut tx, SCHEMA, projections, &target, &now, &mut |_, _| {}).await?;
    for (name, n) in tail {
        *applied.entry(name).or_default() += n;
    }
    lock_live_tables(&mut tx, projections).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {RETIRED} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {RETIRED}"))
        .execute(&mut *tx)
        .await?;
    for table in projections.iter().flat_map(|p| p.tables()) {
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {RETIRED}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {SCHEMA}.{table} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("DROP SCHEMA {RETIRED} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
        .execute(&mut *tx)
        .await?;
    tx.commit()
        .await
        .context("switching the rebuilt tables in")?;
    Ok(projections
        .iter()
        .map(|p| Rebuilt {
            projection: p.name(),
            position: now.get(p.name()).copied().unwrap_or(0),
            events: applied.get(p.name()).copied().unwrap_or(0),
        })
        .collect())
}

/// Takes every live table of `projections` exclusively, all at once or not at all, retrying until
/// readers let go. Never waiting for a lock while holding one, the switch cannot deadlock with a
/// read that joins two of the tables in another order.
async fn lock_live_tables(
    tx: &mut PgConnection,
    projections: &[&dyn Projection],
) -> anyhow::Result<()> {
    let tables: Vec<String> = projections
        .iter()
        .flat_map(|p| p.tables())
        .map(|t| format!("public.{t}"))
        .collect();
    let lock = format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT",
        tables.join(", ")
    );
    let mut attempt = 0_u32;
    loop {
        let mut savepoint = tx.begin().await?;
        match sqlx::query(&lock).execute(&mut *savepoint).await {
            Ok(_) => {
                savepoint.commit().await?;
                return Ok(());
            }
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55P03") && attempt < LOCK_ATTEMPTS =>
            {
                savepoint.rollback().await?;
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Err(e) => return Err(e).context("taking the live tables for the switch"),
        }
    }
}

/// Builds `projections` as of `position` into `schema`, switching nothing.
///
/// # Errors
/// When the database fails or an event cannot be folded.
pub async fn build_as_of(
    conn: &mut PgConnection,
    schema: &str,
    projections: &[&dyn Projection],
    position: i64,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<Rebuilt>> {
    prepare(conn, schema, projections).await?;
    let zero: HashMap<&'static str, i64> = HashMap::new();
    let target: HashMap<&'static str, i64> =
        projections.iter().map(|p| (p.name(), position)).collect();
    let applied = build_until(conn, schema, projections, &zero, &target, progress).await?;
    Ok(projections
        .iter()
        .map(|p| Rebuilt {
            projection: p.name(),
            position,
            events: applied.get(p.name()).copied().unwrap_or(0),
        })
        .collect())
}
