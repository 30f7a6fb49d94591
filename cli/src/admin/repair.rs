//! `questlog repair`: brings the JetStream stream and the read models back to this database's log
//! when they hold another history (see ARCHITECTURE.md, "One log, one history").
//!
//! - A stream whose newest message is not this log's is deleted; the relay republishes the log
//!   into a new one from position 1 (projectors notice the new stream and resume by position).
//! - A read model whose checkpoint is not a point of this log is emptied; its projector rebuilds
//!   it from the log.
//!
//! Run it with every questlog process of the deployment stopped (a running query API keeps what it
//! learnt of the old history in memory). It takes the relay's and every projector's leadership for
//! the whole repair, so that nothing publishes or folds halfway through it, and refuses when one of
//! them is at work.

use std::io::Write;

use anyhow::Context as _;
use questlog_bus::lineage::{self, Mismatch};
use questlog_bus::Names;
use questlog_store::leader::lock_key;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::admin::output::record;

/// What a repair found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    /// Each mismatch, as a sentence.
    pub found: Vec<String>,
    /// What was done (or, without `--yes`, would be).
    pub actions: Vec<String>,
    /// Whether the actions were carried out.
    pub done: bool,
}

/// Finds every mismatch; with `yes`, repairs them. Returns what it found and did; prints it.
///
/// # Errors
/// When Postgres or NATS cannot be reached, or questlog is still running on this database.
pub async fn repair(
    database_url: &str,
    nats: &async_nats::Client,
    names: &Names,
    yes: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Repair> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .context("connecting to Postgres")?;
    let js = async_nats::jetstream::new(nats.clone());
    let found = lineage::check(&mut conn, Some(&js), names).await?;
    let projections = questlog_projector::Projections::of(&crate::modules::app());
    let mut actions = Vec::new();
    let mut stale = Vec::new();
    for mismatch in &found {
        match mismatch {
            Mismatch::Stream { stream, .. } => actions.push(format!(
                "delete the JetStream stream {stream}; the relay republishes this log into a new one"
            )),
            Mismatch::ReadModel { projection, .. } => {
                let tables = projections
                    .iter()
                    .find(|p| p.name().as_str() == projection)
                    .map(|p| p.tables().to_vec())
                    .unwrap_or_default();
                actions.push(format!(
                    "empty read model {projection} ({}); its projector rebuilds it from the log",
                    tables.join(", ")
                ));
                stale.push((projection.clone(), tables));
            }
        }
    }
    let done = yes && !found.is_empty();
    if done {
        hold_every_role(&mut conn, &projections).await?;
        if found.iter().any(|m| matches!(m, Mismatch::Stream { .. })) {
            js.delete_stream(names.events_stream())
                .await
                .map_err(|e| anyhow::anyhow!("deleting {}: {e}", names.events_stream()))?;
        }
        let mut tx = conn.begin().await?;
        for (projection, tables) in &stale {
            sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
                .bind(projection)
                .execute(&mut *tx)
                .await?;
            if !tables.is_empty() {
                sqlx::query(&format!("TRUNCATE {}", tables.join(", ")))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("emptying {projection}"))?;
            }
            sqlx::query(
                "UPDATE projection_checkpoints SET position = 0, event_id = NULL, \
                        stream_sequence = 0, stream_created = NULL, updated_at = clock_timestamp() \
                  WHERE projection = $1",
            )
            .bind(projection)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    let repair = Repair {
        found: found.iter().map(ToString::to_string).collect(),
        actions,
        done,
    };
    print(&repair, yes, json, out)?;
    Ok(repair)
}

/// Takes the relay's and every projector's leadership on `conn` (released when it closes), or
/// fails naming the role another process holds.
async fn hold_every_role(
    conn: &mut PgConnection,
    projections: &[std::sync::Arc<dyn questlog_projector::Projection>],
) -> anyhow::Result<()> {
    let roles = std::iter::once("relay".to_owned()).chain(
        projections
            .iter()
            .map(|p| format!("projector:{}", p.name())),
    );
    for role in roles {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(&role))
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            anyhow::bail!(
                "questlog is still running on this database (a process leads as {role}): stop \
                 every questlog process of this deployment first, then repair"
            );
        }
    }
    Ok(())
}

fn print(repair: &Repair, yes: bool, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, repair)?;
        writeln!(out)?;
        return Ok(());
    }
    if repair.found.is_empty() {
        writeln!(
            out,
            "the JetStream stream and every read model belong to this database's log: nothing to repair"
        )?;
        return Ok(());
    }
    record(
        out,
        false,
        &[
            ("found", repair.found.join("\n       ").into()),
            ("actions", repair.actions.join("\n         ").into()),
        ],
    )?;
    if repair.done {
        writeln!(out, "repaired: start questlog again")?;
    } else if !yes {
        writeln!(
            out,
            "nothing was changed; run again with --yes to do it (first make sure no other \
             deployment still uses this stream)"
        )?;
    }
    Ok(())
}
