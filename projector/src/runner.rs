//! Runs a process's projections: one lane per projection (its leadership, its checkpoint, its
//! transactions) fed by one feed (one JetStream consumer, each message decoded once).
//!
//! - **Leadership stays per projection** (`projector:<name>`), so two projector processes still
//!   split the projections or stand by, and a failover moves one projection at a time.
//! - **The feed** ([`feed`]) holds one consumer for the lanes that joined it, opened at the lowest
//!   stream sequence any of them needs, and hands every decoded batch (`Arc<Batch>`) to each.
//!   When a lane joins behind what the feed already delivered, the feed opens its consumer again
//!   at that lane's sequence; the others skip by sequence what they already applied.
//! - **A lane** applies only what is above its own checkpoint, in log order, in its own
//!   transaction with its checkpoint, checked against the log (`lock_checkpoint`), then announces.
//! - **No lane holds the others back for long**: the feed never waits for a lane. A lane may have
//!   at most [`ProjectorConfig::lag`] events handed to it and not yet applied; one further behind
//!   is dropped from the feed, and a lane more than a quarter of that behind the stream's end
//!   catches up on a consumer of its own first (as when it starts far behind), then joins again.
//!   A lane whose transaction fails leaves the feed (its checkpoint is unchanged), starts over
//!   from its checkpoint after `retry` and joins again; the others carry on meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use futures::{FutureExt, StreamExt};
use questlog_bus::lineage::{self, Mismatch};
use questlog_bus::{ensure_stream, ChangeAnnouncement, Names, ProjectionName};
use questlog_domain::Domain;
use questlog_store::{leader, RecordedEvent};
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{Decoded, Projection};

/// A hook that can fail a projector at a named point, to test recovery from a crash there.
/// Points: `<projection>:after_commit` (the batch is committed but not yet announced).
pub type Failpoint = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Tuning of a projector.
#[derive(Clone)]
pub struct ProjectorConfig {
    pub database_url: String,
    pub names: Names,
    /// Most events folded in one transaction (and pulled from JetStream at once).
    pub batch: usize,
    /// Most events handed to one projection and not yet applied; a projection further behind
    /// leaves the shared feed and catches up on its own consumer.
    pub lag: usize,
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
            lag: 10_000,
            retry: Duration::from_millis(500),
            failpoint: None,
        }
    }

    /// How far behind the stream's end a lane may be to join the feed directly.
    fn rejoin(&self) -> u64 {
        u64::try_from(self.lag / 4).unwrap_or(u64::MAX).max(1)
    }
}

/// Runs `projections` until `shutdown` fires: one feed, and one lane per projection, each
/// starting over after any failure. Events are decoded by `domain`, once per process.
pub async fn run(
    projections: Vec<Arc<dyn Projection>>,
    domain: Arc<Domain>,
    config: ProjectorConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) {
    let (joins, requests) = mpsc::channel(projections.len().max(1) * 2);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(feed(
        config.clone(),
        domain.clone(),
        client.clone(),
        requests,
        shutdown.clone(),
    ));
    for projection in projections {
        tasks.spawn(lane(
            projection,
            domain.clone(),
            config.clone(),
            client.clone(),
            joins.clone(),
            shutdown.clone(),
        ));
    }
    drop(joins);
    while tasks.join_next().await.is_some() {}
}

/// Events as the feed hands them out: decoded once, shared by every lane.
pub struct Batch {
    /// The stream the sequences count in (its creation time).
    stream_created: Arc<str>,
    items: Vec<Delivered>,
}

struct Delivered {
    sequence: u64,
    event: Decoded,
}

/// A lane asking the feed for every batch after `applied`.
struct Join {
    projection: ProjectionName,
    stream_created: String,
    /// The last stream sequence the lane applied; it moves as the lane commits.
    applied: Arc<AtomicU64>,
    /// Events handed out and not yet applied may take these.
    room: Arc<Semaphore>,
    batches: mpsc::UnboundedSender<Arc<Batch>>,
}

/// The feed's consumer: the stream it reads and the last sequence it delivered.
struct Open {
    messages: pull::Stream,
    consumer: String,
    stream: jetstream::stream::Stream,
    stream_created: Arc<str>,
    delivered: u64,
}

/// One consumer for every lane that joined, from the lowest sequence any of them needs.
async fn feed(
    config: ProjectorConfig,
    domain: Arc<Domain>,
    client: async_nats::Client,
    mut requests: mpsc::Receiver<Join>,
    shutdown: CancellationToken,
) {
    let js = questlog_bus::jetstream_api(client);
    // Where the feed reads the keys that open personal fields (connected when first used).
    let keys = match questlog_store::connect(&config.database_url, 2) {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(error = %e, "projector feed: bad database URL");
            return;
        }
    };
    let mut lanes: Vec<Join> = Vec::new();
    let mut open: Option<Open> = None;
    let mut reopen = false;
    loop {
        if reopen {
            reopen = false;
            if let Some(old) = open.take() {
                let _ = old.stream.delete_consumer(&old.consumer).await;
            }
            if !lanes.is_empty() {
                match open_feed(&js, &config, &mut lanes).await {
                    Ok(o) => open = o,
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "projector feed interrupted");
                        // Every lane starts over from its checkpoint and joins again.
                        lanes.clear();
                        tokio::select! {
                            () = tokio::time::sleep(config.retry) => {}
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
            }
        }
        let next = async {
            match open.as_mut() {
                Some(o) => o.messages.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            join = requests.recv() => {
                let Some(join) = join else { break };
                let applied = join.applied.load(Ordering::Acquire);
                reopen = match &open {
                    Some(o) => applied < o.delivered || *o.stream_created != *join.stream_created,
                    None => true,
                };
                lanes.retain(|l| l.projection != join.projection);
                lanes.push(join);
            }
            first = next => {
                let Some(first) = first else {
                    tracing::warn!("the projector feed's message stream ended; opening it again");
                    reopen = true;
                    continue;
                };
                let Some(o) = open.as_mut() else { continue };
                let mut messages = vec![first];
                while messages.len() < config.batch {
                    match o.messages.next().now_or_never() {
                        Some(Some(m)) => messages.push(m),
                        _ => break,
                    }
                }
                let decoded = match keys.acquire().await {
                    Ok(mut conn) => decode(o, &domain, &mut conn, messages).await,
                    Err(e) => Err(anyhow::Error::new(e).context("reading the keys of personal data")),
                };
                match decoded {
                    Ok(batch) => hand_out(&mut lanes, batch),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "projector feed interrupted");
                        lanes.clear();
                        reopen = true;
                        tokio::select! {
                            () = tokio::time::sleep(config.retry) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                }
                if lanes.is_empty() {
                    reopen = true;
                }
            }
        }
    }
    if let Some(old) = open.take() {
        let _ = old.stream.delete_consumer(&old.consumer).await;
    }
}

/// Opens the feed's consumer after the lowest sequence the lanes applied, on the stream as it is
/// now; lanes that joined in another stream's sequences are let go (they start over).
async fn open_feed(
    js: &jetstream::Context,
    config: &ProjectorConfig,
    lanes: &mut Vec<Join>,
) -> anyhow::Result<Option<Open>> {
    let stream = ensure_stream(js, &config.names)
        .await
        .map_err(|e| anyhow::anyhow!("opening the event stream: {e}"))?;
    let state = lineage::state_of(&stream).await?;
    lanes.retain(|l| l.stream_created == state.created && !l.batches.is_closed());
    let Some(lowest) = lanes
        .iter()
        .map(|l| l.applied.load(Ordering::Acquire))
        .min()
    else {
        return Ok(None);
    };
    let consumer = stream
        .create_consumer(questlog_bus::reader_config(&config.names, lowest + 1))
        .await
        .map_err(|e| anyhow::anyhow!("opening the projector feed's consumer: {e}"))?;
    let name = consumer.cached_info().name.clone();
    let messages = pull_from(&consumer, config).await?;
    tracing::debug!(
        from = lowest + 1,
        lanes = lanes.len(),
        "projector feed open"
    );
    Ok(Some(Open {
        messages,
        consumer: name,
        stream,
        stream_created: Arc::from(state.created),
        delivered: lowest,
    }))
}

async fn pull_from(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    config: &ProjectorConfig,
) -> anyhow::Result<pull::Stream> {
    consumer
        .stream()
        .max_messages_per_batch(config.batch)
        // A consumer whose node was lost (on a NATS cluster) is noticed by its missed
        // heartbeats: the feed then opens another.
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pulling from the event stream: {e}"))
}

type Received = Result<jetstream::Message, pull::MessagesError>;

/// Decodes each message once, for every lane.
async fn decode(
    open: &mut Open,
    domain: &Domain,
    conn: &mut PgConnection,
    messages: Vec<Received>,
) -> anyhow::Result<Arc<Batch>> {
    let items = decode_messages(domain, conn, messages).await?;
    if let Some(last) = items.last() {
        open.delivered = open.delivered.max(last.sequence);
    }
    Ok(Arc::new(Batch {
        stream_created: open.stream_created.clone(),
        items,
    }))
}

/// Reads each message's recorded event, opens its personal fields with the keys as the database
/// holds them now (the stream carries them sealed) and decodes it with the modules' registry. An
/// event this build cannot read (a newer schema version) stops the feed: nothing after it is
/// folded.
async fn decode_messages(
    domain: &Domain,
    conn: &mut PgConnection,
    messages: Vec<Received>,
) -> anyhow::Result<Vec<Delivered>> {
    let mut sequences = Vec::with_capacity(messages.len());
    let mut events = Vec::with_capacity(messages.len());
    for message in messages {
        let message = message.map_err(|e| anyhow::anyhow!("receiving: {e}"))?;
        let sequence = message
            .info()
            .map_err(|e| anyhow::anyhow!("reading a message's metadata: {e}"))?
            .stream_sequence;
        let event: RecordedEvent = serde_json::from_slice(&message.payload)
            .with_context(|| format!("decoding message on {}", message.subject))?;
        sequences.push(sequence);
        events.push(event);
    }
    let decoded = Decoded::open_all(conn, domain, events).await?;
    Ok(sequences
        .into_iter()
        .zip(decoded)
        .map(|(sequence, event)| Delivered { sequence, event })
        .collect())
}

/// Gives `batch` to every lane that has room for it; a lane that has not, or has gone, leaves
/// the feed. Never waits.
fn hand_out(lanes: &mut Vec<Join>, batch: Arc<Batch>) {
    let size = u32::try_from(batch.items.len()).unwrap_or(u32::MAX);
    lanes.retain(|lane| {
        let Ok(permit) = lane.room.try_acquire_many(size) else {
            tracing::info!(
                projection = lane.projection.as_str(),
                "projection fell behind the feed; it catches up on its own"
            );
            return false;
        };
        permit.forget();
        lane.batches.send(batch.clone()).is_ok()
    });
}

/// One projection: its leadership, then its batches, starting over after any failure.
async fn lane(
    projection: Arc<dyn Projection>,
    domain: Arc<Domain>,
    config: ProjectorConfig,
    client: async_nats::Client,
    joins: mpsc::Sender<Join>,
    shutdown: CancellationToken,
) {
    let role = format!("projector:{}", projection.name());
    while !shutdown.is_cancelled() {
        let Some(conn) =
            leader::acquire(&config.database_url, &role, config.retry, &shutdown).await
        else {
            break;
        };
        let result = Lane {
            projection: projection.as_ref(),
            domain: &domain,
            config: &config,
            client: &client,
            conn,
        }
        .lead(&joins, &shutdown)
        .await;
        match result {
            Ok(()) => break,
            Err(e) => {
                let wait = if let Some(mismatch) = e.downcast_ref::<Mismatch>() {
                    tracing::error!(
                        projection = projection.name().as_str(),
                        %mismatch,
                        remedy = Mismatch::REMEDY,
                        "the projector refuses to fold a history that is not this log's"
                    );
                    config.retry.max(Duration::from_secs(5))
                } else {
                    tracing::warn!(
                        projection = projection.name().as_str(),
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

/// What a projector's leadership works in: the stream its sequences count in, and the log.
struct Epoch {
    stream_created: String,
    log: String,
}

/// Where a lane starts: after `applied`, in `epoch`, with the stream ending at `last_sequence`.
struct Start {
    applied: u64,
    epoch: Epoch,
    /// The stream's oldest message: a bounded stream no longer holds the ones before it.
    first_sequence: u64,
    last_sequence: u64,
    checkpoint: i64,
}

/// A projection led by this process, on its leadership's connection.
struct Lane<'a> {
    projection: &'a dyn Projection,
    domain: &'a Domain,
    config: &'a ProjectorConfig,
    client: &'a async_nats::Client,
    conn: PgConnection,
}

impl Lane<'_> {
    async fn lead(
        &mut self,
        joins: &mpsc::Sender<Join>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let name = self.projection.name().as_str();
        let mut announced = false;
        loop {
            let start = self.prepare().await?;
            if !announced {
                tracing::info!(projection = name, "projector running");
                // What the previous leader committed but may not have announced. `previous` is
                // the checkpoint itself: a listener that heard of less missed the old leader's
                // last announcement.
                let checkpoint = start.checkpoint;
                self.announce(&start.epoch, checkpoint, checkpoint, Vec::new())
                    .await;
                announced = true;
            }
            let far = start.last_sequence.saturating_sub(start.applied) > self.config.rejoin();
            let dropped = start.applied + 1 < start.first_sequence;
            let done = if dropped {
                self.read_log(start, shutdown).await?
            } else if far {
                self.catch_up(start, shutdown).await?
            } else {
                self.follow(start, joins, shutdown).await?
            };
            if done {
                return Ok(());
            }
        }
    }

    /// Checks the checkpoint and the stream against the log and reads where to resume.
    async fn prepare(&mut self) -> anyhow::Result<Start> {
        let name = self.projection.name().as_str();
        let conn = &mut self.conn;
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .execute(&mut *conn)
        .await
        .context("creating the checkpoint")?;
        let (resume, counted_in, checkpoint): (i64, Option<String>, i64) = sqlx::query_as(
            "SELECT stream_sequence, stream_created, position FROM projection_checkpoints \
              WHERE projection = $1",
        )
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .context("reading the checkpoint")?;
        // One log, one history: neither a stream nor a checkpoint of another history is touched.
        if let Some(mismatch) = questlog_store::lineage::foreign_checkpoints(conn)
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
        let js = questlog_bus::jetstream_api(self.client.clone());
        let stream = ensure_stream(&js, &self.config.names)
            .await
            .map_err(|e| anyhow::anyhow!("opening the event stream: {e}"))?;
        let state = lineage::state_of(&stream).await?;
        if let Some(mismatch) =
            lineage::check_tail(conn, &self.config.names, state.tail.as_ref()).await?
        {
            return Err(mismatch.into());
        }
        let last_sequence = state.last_sequence;
        // Sequences count within one stream: after the stream was deleted and created again (by
        // `questlog repair`, say) the checkpoint's sequence means nothing, and a stream that lost
        // its storage starts over at 1. Positions still keep duplicates out.
        let mut applied = u64::try_from(resume).unwrap_or(0);
        if applied > last_sequence || counted_in.as_deref() != Some(state.created.as_str()) {
            applied = 0;
        }
        let log = questlog_store::lineage::identity(conn)
            .await
            .context("reading the log's identity")?;
        Ok(Start {
            applied,
            epoch: Epoch {
                stream_created: state.created,
                log,
            },
            first_sequence: state.first_sequence,
            last_sequence,
            checkpoint,
        })
    }

    /// Folds what the feed hands out until it lets this lane go (`false`: prepare and join
    /// again) or `shutdown` fires (`true`).
    async fn follow(
        &mut self,
        start: Start,
        joins: &mpsc::Sender<Join>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let (sender, mut batches) = mpsc::unbounded_channel();
        let applied = Arc::new(AtomicU64::new(start.applied));
        let room = Arc::new(Semaphore::new(self.config.lag.max(self.config.batch)));
        let join = Join {
            projection: self.projection.name(),
            stream_created: start.epoch.stream_created.clone(),
            applied: applied.clone(),
            room: room.clone(),
            batches: sender,
        };
        if joins.send(join).await.is_err() {
            return Ok(true); // the feed has stopped: shutting down
        }
        let mut last = start.applied;
        let mut held: Option<Arc<Batch>> = None;
        loop {
            let first = match held.take() {
                Some(b) => Some(b),
                None => tokio::select! {
                    b = batches.recv() => b,
                    () = shutdown.cancelled() => return Ok(true),
                },
            };
            let Some(first) = first else {
                return Ok(false);
            };
            let mut taken = vec![first];
            let mut count = taken[0].items.len();
            while count < self.config.batch {
                match batches.try_recv() {
                    Ok(b) if count + b.items.len() > self.config.batch => {
                        held = Some(b);
                        break;
                    }
                    Ok(b) => {
                        count += b.items.len();
                        taken.push(b);
                    }
                    Err(_) => break,
                }
            }
            if taken
                .iter()
                .any(|b| *b.stream_created != *start.epoch.stream_created)
            {
                return Ok(false); // another stream: its sequences count anew
            }
            let items: Vec<&Delivered> = taken.iter().flat_map(|b| b.items.iter()).collect();
            last = self.apply_batch(&start.epoch, &items, last).await?;
            applied.store(last, Ordering::Release);
            room.add_permits(count);
        }
    }

    /// Folds from the log in Postgres what the stream no longer holds (a bounded stream dropped
    /// its oldest messages before this projection applied them: a new projection, one reset, or
    /// one whose projector was down longer than the bound), then says where in the stream it
    /// stands (`false`: prepare again and follow the stream) — or `shutdown` fires (`true`).
    ///
    /// The log is read after the stream's state, up to its head, so every message up to the
    /// stream's last sequence then holds an event at or below the checkpoint: the checkpoint's
    /// stream sequence becomes that last sequence, and what the stream delivers after it that
    /// the log already gave is skipped by position. A crash in between leaves the old stream
    /// sequence, below the stream's first: it starts here again, from the checkpoint.
    async fn read_log(
        &mut self,
        start: Start,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let name = self.projection.name().as_str();
        tracing::info!(
            projection = name,
            from = start.checkpoint,
            stream_first = start.first_sequence,
            "the stream no longer holds what this projection needs; reading the log"
        );
        let page = i64::try_from(self.config.batch).unwrap_or(500).max(1);
        let mut after = start.checkpoint;
        loop {
            if shutdown.is_cancelled() {
                return Ok(true);
            }
            let decoded = Decoded::read_after(&mut self.conn, self.domain, after, page).await?;
            let Some(last) = decoded.last() else { break };
            after = last.position();
            let full = i64::try_from(decoded.len()).unwrap_or(0) == page;
            let refs: Vec<&Decoded> = decoded.iter().collect();
            self.commit(&start.epoch, refs, None).await?;
            if !full {
                break;
            }
        }
        let mut tx = self.conn.begin().await.context("beginning")?;
        sqlx::query(
            "UPDATE projection_checkpoints SET stream_sequence = $2, stream_created = $3 \
              WHERE projection = $1",
        )
        .bind(name)
        .bind(i64::try_from(start.last_sequence).unwrap_or(i64::MAX))
        .bind(&start.epoch.stream_created)
        .execute(&mut *tx)
        .await
        .context("moving the checkpoint's stream sequence")?;
        tx.commit().await.context("committing")?;
        Ok(false)
    }

    /// Folds from a consumer of this lane's own until it is near the stream's end (`false`) or
    /// `shutdown` fires (`true`).
    async fn catch_up(
        &mut self,
        start: Start,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let name = self.projection.name().as_str();
        tracing::info!(
            projection = name,
            behind = start.last_sequence - start.applied,
            "projection catching up on its own consumer"
        );
        let js = questlog_bus::jetstream_api(self.client.clone());
        let stream = ensure_stream(&js, &self.config.names)
            .await
            .map_err(|e| anyhow::anyhow!("opening the event stream: {e}"))?;
        let consumer = stream
            .create_consumer(questlog_bus::reader_config(
                &self.config.names,
                start.applied + 1,
            ))
            .await
            .map_err(|e| anyhow::anyhow!("opening {name}'s catch-up consumer: {e}"))?;
        let consumer_name = consumer.cached_info().name.clone();
        let result = async {
            let mut messages = pull_from(&consumer, self.config).await?;
            let mut last = start.applied;
            loop {
                let first = tokio::select! {
                    m = messages.next() => m,
                    () = shutdown.cancelled() => return Ok(true),
                };
                let Some(first) = first else {
                    anyhow::bail!("the catch-up consumer's message stream ended");
                };
                let mut batch = vec![first];
                while batch.len() < self.config.batch {
                    match messages.next().now_or_never() {
                        Some(Some(m)) => batch.push(m),
                        _ => break,
                    }
                }
                let pending = match batch.last() {
                    Some(Ok(m)) => m.info().map_or(u64::MAX, |i| i.pending),
                    _ => u64::MAX,
                };
                let items = decode_messages(self.domain, &mut self.conn, batch).await?;
                let items: Vec<&Delivered> = items.iter().collect();
                last = self.apply_batch(&start.epoch, &items, last).await?;
                if pending <= self.config.rejoin() {
                    return Ok(false);
                }
            }
        }
        .await;
        let _ = stream.delete_consumer(&consumer_name).await;
        result
    }

    /// Applies what of `items` is above the checkpoint, with the checkpoint, in one transaction;
    /// then announces. Returns the last stream sequence applied.
    async fn apply_batch(
        &mut self,
        epoch: &Epoch,
        items: &[&Delivered],
        mut applied: u64,
    ) -> anyhow::Result<u64> {
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            if item.sequence <= applied {
                continue; // a redelivery of what is already applied
            }
            if item.sequence != applied + 1 {
                anyhow::bail!(
                    "expected stream sequence {}, got {}: resuming from the checkpoint",
                    applied + 1,
                    item.sequence
                );
            }
            applied = item.sequence;
            events.push(&item.event);
        }
        if events.is_empty() {
            return Ok(applied); // all of it applied already: nothing to write
        }
        self.commit(epoch, events, Some(applied)).await?;
        Ok(applied)
    }

    /// Applies what of `events` (in log order) is above the checkpoint, with the checkpoint, in
    /// one transaction; the checkpoint's stream sequence becomes `sequence` when one is given
    /// (events from the stream), else stays (events from the log). Then announces.
    async fn commit(
        &mut self,
        epoch: &Epoch,
        events: Vec<&Decoded>,
        sequence: Option<u64>,
    ) -> anyhow::Result<()> {
        let name = self.projection.name().as_str();
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.conn.begin().await.context("beginning")?;
        // Only this log's events are folded: a message of another history (another deployment's
        // stream, or events a restored backup no longer has) stops the projector before it
        // changes anything. Checked with the checkpoint's lock, in the same round trip.
        let ids: Vec<(i64, uuid::Uuid)> = events
            .iter()
            .map(|e| (e.recorded.position, e.recorded.event_id))
            .collect();
        let (checkpoint, foreign) = questlog_store::lineage::lock_checkpoint(&mut tx, name, &ids)
            .await
            .context("reading the checkpoint")?;
        if let Some((position, event_id)) = foreign {
            return Err(Mismatch::Stream {
                stream: self.config.names.events_stream(),
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
            if event.recorded.position > high {
                high = event.recorded.position;
                fresh.push(event);
            }
        }
        let sequence = sequence.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        let changes = if let Some(last) = fresh.last() {
            let changes = self
                .projection
                .apply(&mut tx, &fresh)
                .await
                .context("applying events")?;
            sqlx::query(
                "UPDATE projection_checkpoints SET position = $2, event_id = $3, \
                        stream_sequence = coalesce($4, stream_sequence), \
                        stream_created = CASE WHEN $4::bigint IS NULL THEN stream_created \
                                              ELSE $5 END, \
                        updated_at = clock_timestamp() \
                  WHERE projection = $1",
            )
            .bind(name)
            .bind(high)
            .bind(last.recorded.event_id)
            .bind(sequence)
            .bind(&epoch.stream_created)
            .execute(&mut *tx)
            .await
            .context("moving the checkpoint")?;
            changes
        } else {
            if let Some(sequence) = sequence {
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
            }
            Vec::new()
        };
        tx.commit().await.context("committing")?;
        if self
            .config
            .failpoint
            .as_ref()
            .is_some_and(|fail| fail(&format!("{name}:after_commit")))
        {
            anyhow::bail!("failpoint after_commit");
        }
        if high > checkpoint {
            self.announce(epoch, checkpoint, high, changes).await;
        }
        Ok(())
    }

    /// Tells the query side what the projection now reflects. Best effort: readers also consult
    /// the checkpoint table.
    async fn announce(
        &self,
        epoch: &Epoch,
        previous: i64,
        position: i64,
        changes: Vec<questlog_bus::Change>,
    ) {
        let projection = self.projection.name().as_str();
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
        if let Err(e) = self
            .client
            .publish(
                self.config.names.changes_subject(projection),
                payload.into(),
            )
            .await
        {
            tracing::warn!(projection, error = %e, "could not announce a change");
        }
    }
}
