//! Runs one projection: leadership, its durable consumer, and the commit-then-ack loop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::{FutureExt, StreamExt};
use questlog_bus::lineage::{self, Mismatch};
use questlog_bus::{ensure_stream, ChangeAnnouncement, Names};
use questlog_store::{leader, RecordedEvent};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::Projection;

/// A hook that can fail a projector at a named point, to test recovery from a crash there.
/// Points: `<projection>:after_commit` (the batch is committed but not yet acknowledged).
pub type Failpoint = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Tuning of a projector.
#[derive(Clone)]
pub struct ProjectorConfig {
    pub database_url: String,
    pub names: Names,
    /// Most events folded in one transaction.
    pub batch: usize,
    /// Wait before retrying after a failure (and between leadership attempts).
    pub retry: Duration,
    pub failpoint: Option<Failpoint>,
}

impl ProjectorConfig {
    pub fn new(database_url: &str, names: Names) -> Self {
        Self {
            database_url: database_url.to_owned(),
            names,
            batch: 500,
            retry: Duration::from_millis(500),
            failpoint: None,
        }
    }
}

/// Runs `projection` until `shutdown` fires, starting over after any failure.
pub async fn run(
    projection: Arc<dyn Projection>,
    config: ProjectorConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) {
    let role = format!("projector:{}", projection.name());
    while !shutdown.is_cancelled() {
        let Some(conn) =
            leader::acquire(&config.database_url, &role, config.retry, &shutdown).await
        else {
            break;
        };
        match lead(projection.as_ref(), &config, &client, conn, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                let wait = if let Some(mismatch) = e.downcast_ref::<Mismatch>() {
                    tracing::error!(
                        projection = projection.name(),
                        %mismatch,
                        remedy = Mismatch::REMEDY,
                        "the projector refuses to fold a history that is not this log's"
                    );
                    config.retry.max(Duration::from_secs(5))
                } else {
                    tracing::warn!(
                        projection = projection.name(),
                        error = format!("{e:#}"),
                        "projector interrupted; starting over"
                    );
                    config.retry
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
}

async fn lead(
    projection: &dyn Projection,
    config: &ProjectorConfig,
    client: &async_nats::Client,
    mut conn: PgConnection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let name = projection.name();
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .execute(&mut conn)
    .await
    .context("creating the checkpoint")?;
    let (resume, counted_in): (i64, Option<String>) = sqlx::query_as(
        "SELECT stream_sequence, stream_created FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .context("reading the checkpoint")?;
    // One log, one history: neither a stream nor a checkpoint of another history is touched.
    if let Some(mismatch) = questlog_store::lineage::foreign_checkpoints(&mut conn)
        .await
        .context("checking the checkpoint against the log")?
        .into_iter()
        .find(|c| c.projection == name)
    {
        return Err(Mismatch::ReadModel {
            projection: mismatch.projection,
            position: mismatch.position,
            head: mismatch.head,
        }
        .into());
    }
    let js = jetstream::new(client.clone());
    let stream = ensure_stream(&js, &config.names)
        .await
        .map_err(|e| anyhow::anyhow!("opening the event stream: {e}"))?;
    let state = lineage::stream_state(&js, &config.names)
        .await?
        .context("the event stream vanished")?;
    if let Some(mismatch) =
        lineage::check_tail(&mut conn, &config.names, state.tail.as_ref()).await?
    {
        return Err(mismatch.into());
    }
    let last_sequence = state.tail.as_ref().map_or(0, |t| t.sequence);
    // Sequences count within one stream: after the stream was deleted and created again (by
    // `questlog repair`, say) the checkpoint's sequence means nothing, and a stream that lost its
    // storage starts over at 1. Positions still keep duplicates out.
    let mut applied = u64::try_from(resume).unwrap_or(0);
    if applied > last_sequence || counted_in.as_deref() != Some(state.created.as_str()) {
        applied = 0;
    }
    let log = questlog_store::lineage::identity(&mut conn)
        .await
        .context("reading the log's identity")?;
    let epoch = Epoch {
        stream_created: state.created,
        log,
    };
    // The consumer resumes exactly after the checkpoint. Messages that a previous leader pulled
    // and never acknowledged would otherwise come back only after the ack wait, behind newer ones,
    // and in-order application could not be guaranteed.
    let durable = config.names.projector_consumer(name);
    let _ = stream.delete_consumer(&durable).await;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: AckPolicy::All,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: applied + 1,
            },
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("opening consumer {durable}: {e}"))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(config.batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pulling from {durable}: {e}"))?;
    tracing::info!(projection = name, "projector running");
    // What the previous leader committed but may not have announced.
    let position: i64 =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .context("reading the checkpoint")?;
    // `previous` is the checkpoint itself: a listener that heard of less missed the old leader's
    // last announcement.
    announce(
        client,
        &config.names,
        &epoch,
        name,
        position,
        position,
        Vec::new(),
    )
    .await;
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            () = shutdown.cancelled() => return Ok(()),
        };
        let Some(first) = first else {
            anyhow::bail!("the consumer's message stream ended");
        };
        let mut batch = vec![first.map_err(|e| anyhow::anyhow!("receiving: {e}"))?];
        while batch.len() < config.batch {
            match messages.next().now_or_never() {
                Some(Some(m)) => batch.push(m.map_err(|e| anyhow::anyhow!("receiving: {e}"))?),
                _ => break,
            }
        }
        applied = apply_batch(
            projection, config, client, &mut conn, &epoch, batch, applied,
        )
        .await?;
    }
}

/// What a projector's leadership works in: the stream its sequences count in, and the log.
struct Epoch {
    stream_created: String,
    log: String,
}

async fn apply_batch(
    projection: &dyn Projection,
    config: &ProjectorConfig,
    client: &async_nats::Client,
    conn: &mut PgConnection,
    epoch: &Epoch,
    batch: Vec<jetstream::Message>,
    mut applied: u64,
) -> anyhow::Result<u64> {
    let name = projection.name();
    let mut events = Vec::with_capacity(batch.len());
    for message in &batch {
        let sequence = message
            .info()
            .map_err(|e| anyhow::anyhow!("reading a message's metadata: {e}"))?
            .stream_sequence;
        if sequence <= applied {
            continue; // a redelivery of what is already applied
        }
        if sequence != applied + 1 {
            anyhow::bail!(
                "expected stream sequence {}, got {sequence}: resuming from the checkpoint",
                applied + 1
            );
        }
        applied = sequence;
        let event: RecordedEvent = serde_json::from_slice(&message.payload)
            .with_context(|| format!("decoding message on {}", message.subject))?;
        events.push(event);
    }
    let mut tx = conn.begin().await.context("beginning")?;
    // Only this log's events are folded: a message of another history (another deployment's
    // stream, or events a restored backup no longer has) stops the projector before it changes
    // anything. Checked with the checkpoint's lock, in the same round trip.
    let ids: Vec<(i64, uuid::Uuid)> = events.iter().map(|e| (e.position, e.event_id)).collect();
    let (checkpoint, foreign) = questlog_store::lineage::lock_checkpoint(&mut tx, name, &ids)
        .await
        .context("reading the checkpoint")?;
    if let Some((position, event_id)) = foreign {
        return Err(Mismatch::Stream {
            stream: config.names.events_stream(),
            position,
            event_id,
            head: lineage::head(&mut tx).await?,
        }
        .into());
    }
    // Redelivered and duplicate events are at or below the checkpoint: they change nothing.
    let mut fresh = Vec::with_capacity(events.len());
    let mut high = checkpoint;
    for event in events {
        if event.position > high {
            high = event.position;
            fresh.push(event);
        }
    }
    let sequence = i64::try_from(applied).unwrap_or(i64::MAX);
    let changes = if let Some(last) = fresh.last() {
        let changes = projection
            .apply(&mut tx, &fresh)
            .await
            .context("applying events")?;
        sqlx::query(
            "UPDATE projection_checkpoints SET position = $2, event_id = $3, stream_sequence = $4, \
                    stream_created = $5, updated_at = clock_timestamp() \
              WHERE projection = $1",
        )
        .bind(name)
        .bind(high)
        .bind(last.event_id)
        .bind(sequence)
        .bind(&epoch.stream_created)
        .execute(&mut *tx)
        .await
        .context("moving the checkpoint")?;
        changes
    } else {
        sqlx::query(
            "UPDATE projection_checkpoints SET stream_sequence = $2, stream_created = $3 \
              WHERE projection = $1",
        )
        .bind(name)
        .bind(sequence)
        .bind(&epoch.stream_created)
        .execute(&mut *tx)
        .await
        .context("moving the checkpoint")?;
        Vec::new()
    };
    tx.commit().await.context("committing")?;
    if config
        .failpoint
        .as_ref()
        .is_some_and(|fail| fail(&format!("{name}:after_commit")))
    {
        anyhow::bail!("failpoint after_commit");
    }
    if let Some(last) = batch.last() {
        last.ack()
            .await
            .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
    }
    if high > checkpoint {
        announce(
            client,
            &config.names,
            epoch,
            name,
            checkpoint,
            high,
            changes,
        )
        .await;
    }
    Ok(applied)
}

/// Tells the query side what a projection now reflects. Best effort: readers also consult the
/// checkpoint table.
async fn announce(
    client: &async_nats::Client,
    names: &Names,
    epoch: &Epoch,
    projection: &str,
    previous: i64,
    position: i64,
    changes: Vec<questlog_bus::Change>,
) {
    let announcement = ChangeAnnouncement {
        projection: projection.to_owned(),
        position,
        previous: Some(previous),
        log: Some(epoch.log.clone()),
        changes,
    };
    let Ok(payload) = serde_json::to_vec(&announcement) else {
        return;
    };
    if let Err(e) = client
        .publish(names.changes_subject(projection), payload.into())
        .await
    {
        tracing::warn!(projection, error = %e, "could not announce a change");
    }
}
