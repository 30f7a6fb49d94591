//! Verification: every projection rebuilt from the log by the same code as a replay (each page
//! decoded once, by the modules' registry; a projection's [`crate::Bulk`] fold in memory, or its
//! `apply` page by page) into temporary tables of the same names, and compared row by row with
//! the live read models.
//!
//! It all happens in one REPEATABLE READ transaction: the live rows and each projection's
//! checkpoint are read in the same snapshot as the log, and each projection is rebuilt up to
//! exactly its own checkpoint, so a projector that keeps working meanwhile causes no false drift.
//! With a reader connection, the log is read ahead there in a transaction that imports that same
//! snapshot (`pg_export_snapshot`): what it reads is what the verifying transaction would.
//! Temporary tables come first in Postgres' search path, so the projections' unqualified SQL
//! writes into them; the transaction is rolled back at the end and nothing live is touched.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use questlog_domain::Domain;
use serde::Serialize;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::replay::{build_until, create_table, Fold};
use crate::Projection;
/// Differing rows shown per table and side.
const EXAMPLES: i64 = 5;

/// What verifying one table found.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub projection: &'static str,
    pub table: &'static str,
    /// The projection's checkpoint: the log prefix both sides reflect.
    pub position: i64,
    pub live_rows: i64,
    pub replayed_rows: i64,
    /// Rows the live model has that a replay does not produce.
    pub live_only: i64,
    /// Rows a replay produces that the live model lacks.
    pub replay_only: i64,
    /// A few of each, as JSON rows.
    pub examples: Vec<Value>,
}

impl TableCheck {
    pub fn drifted(&self) -> bool {
        self.live_only > 0 || self.replay_only > 0
    }
}

/// Rebuilds every projection of `projections` from the log on `conn` and compares it with the
/// live read model. `reader`, another connection to the same database, reads the log meanwhile
/// in the same snapshot. `progress` is called with the position reached and the position to
/// reach.
///
/// # Errors
/// When the database fails or an event cannot be folded.
pub async fn verify(
    conn: &mut PgConnection,
    reader: Option<PgConnection>,
    domain: &Domain,
    projections: &[Arc<dyn Projection>],
    fold: Fold,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<Vec<TableCheck>> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    // The comparison groups every row of both sides: room to do it in memory for a few million
    // rows (beyond that it spills to disk, as any aggregate does).
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut *tx)
        .await?;
    let checkpoints: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT projection, position FROM projection_checkpoints",
    )
    .fetch_all(&mut *tx)
    .await
    .context("reading the checkpoints")?
    .into_iter()
    .collect();
    let reader = match reader {
        Some(reader) => Some(share_snapshot(&mut tx, reader).await?),
        None => None,
    };
    let target = |p: &dyn Projection| checkpoints.get(p.name().as_str()).copied().unwrap_or(0);
    let chosen: Vec<&dyn Projection> = projections.iter().map(AsRef::as_ref).collect();
    for projection in &chosen {
        let bulk = fold.bulk(*projection).is_some();
        for table in projection.tables() {
            create_table(&mut tx, None, table, bulk).await?;
        }
    }
    let zero = HashMap::new();
    let until: HashMap<&'static str, i64> = chosen
        .iter()
        .map(|p| (p.name().as_str(), target(*p)))
        .collect();
    // The log is read in this transaction's snapshot, with the keys of personal data as it
    // sees them, like the live tables it compares with.
    build_until(
        &mut tx, reader, domain, None, &chosen, &zero, &until, fold, progress,
    )
    .await?;
    let mut checks = Vec::new();
    for projection in projections {
        for table in projection.tables() {
            checks.push(
                compare(
                    &mut tx,
                    projection.name().as_str(),
                    table,
                    target(projection.as_ref()),
                )
                .await?,
            );
        }
    }
    tx.rollback().await?;
    Ok(checks)
}

/// Opens on `reader` a transaction that sees exactly what `tx` sees.
async fn share_snapshot(
    tx: &mut PgConnection,
    mut reader: PgConnection,
) -> anyhow::Result<PgConnection> {
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .context("exporting the snapshot")?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut reader)
        .await?;
    sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .execute(&mut reader)
        .await
        .context("importing the snapshot")?;
    Ok(reader)
}

async fn compare(
    conn: &mut PgConnection,
    projection: &'static str,
    table: &'static str,
    position: i64,
) -> anyhow::Result<TableCheck> {
    let live_only_sql = format!("TABLE public.{table} EXCEPT ALL TABLE pg_temp.{table}");
    let replay_only_sql = format!("TABLE pg_temp.{table} EXCEPT ALL TABLE public.{table}");
    let columns: String = sqlx::query_scalar(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
          WHERE attrelid = format('public.%I', $1::text)::regclass AND attnum > 0 \
            AND NOT attisdropped",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await
    .with_context(|| format!("the columns of {table}"))?;
    // Both differences (as `EXCEPT ALL` counts them, each row with its multiplicity) in one
    // pass over the two tables: each distinct row with how many more times the live table
    // holds it than the rebuilt one.
    let (live_rows, replayed_rows, live_only, replay_only): (i64, i64, i64, i64) =
        sqlx::query_as(&format!(
            "SELECT coalesce(sum(live), 0)::bigint, coalesce(sum(replayed), 0)::bigint, \
                    coalesce(sum(live - replayed) FILTER (WHERE live > replayed), 0)::bigint, \
                    coalesce(sum(replayed - live) FILTER (WHERE replayed > live), 0)::bigint \
               FROM (SELECT count(*) FILTER (WHERE questlog_side) AS live, \
                            count(*) FILTER (WHERE NOT questlog_side) AS replayed \
                       FROM (SELECT *, true AS questlog_side FROM public.{table} \
                             UNION ALL SELECT *, false FROM pg_temp.{table}) both_sides \
                      GROUP BY {columns}) counted"
        ))
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("comparing {table}"))?;
    // Listed only when there are some: each side's difference is a whole pass over both tables.
    let examples = if live_only == 0 && replay_only == 0 {
        Vec::new()
    } else {
        sqlx::query_scalar::<_, Value>(&format!(
            "(SELECT jsonb_build_object('side', 'live_only', 'row', to_jsonb(d)) FROM ({live_only_sql}) d LIMIT {EXAMPLES}) \
             UNION ALL \
             (SELECT jsonb_build_object('side', 'replay_only', 'row', to_jsonb(d)) FROM ({replay_only_sql}) d LIMIT {EXAMPLES})"
        ))
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("listing the differences of {table}"))?
    };
    Ok(TableCheck {
        projection,
        table,
        position,
        live_rows,
        replayed_rows,
        live_only,
        replay_only,
        examples,
    })
}
