//! Runs a process's projections: one lane per projection (its leadership, its checkpoint, its
//! transactions) fed by one feed (one JetStream consumer, each delivery decoded once).
//!
//! - **Leadership stays per projection** (`projector:<name>`), so a failover moves one
//!   projection at a time. **Processes split the projections** ([`membership`]): each counts the
//!   deployment's projector processes by their connections' application name and leads at most
//!   its share (every projection over the processes, rounded up); one over its share (a process
//!   joined) hands a projection over, one at a time, to be taken by a process under its share.
//! - **The feed** ([`feed`]) holds one consumer for the lanes that joined it, opened at the lowest
//!   stream sequence any of them needs, and hands every decoded batch (`Arc<Batch>`) to each.
//!   When a lane joins behind what the feed already delivered, the feed opens its consumer again
//!   at that lane's sequence; the others skip by sequence what they already applied. When the
//!   consumer is lost (its NATS node gone, its heartbeats missed) the feed opens another after
//!   the lowest sequence its lanes applied, and keeps its lanes.
//! - **Lanes catch up together.** How far a lane is behind the stream's end does not decide
//!   where it reads: lanes at about the same place (after a stall, at start) share the feed, one
//!   consumer and one decode per event, however far they have to go. A lane catches up alone, on
//!   a consumer of its own, only when it is far behind the *other lanes*: more than a quarter of
//!   [`ProjectorConfig::lag`] behind the feed's front, the furthest the feed has handed out (a
//!   new projection, a reset one, one let go for being slow); it joins again once it is close to
//!   the front. A lane joining that far *ahead* of the front (at start, when the feed opened for
//!   a new projection first) takes the feed, and the lanes behind it catch up alone.
//! - **A lane** applies only what is above its own checkpoint, in log order, in its own
//!   transaction with its checkpoint, checked against the log (`lock_checkpoint`), then announces.
//! - **No lane holds the others back for long**: a join makes the feed deliver again at most a
//!   quarter of `lag` events, which the others skip. A lane may have at most `lag` events handed
//!   to it and not yet applied. When one has no space for the next batch, the feed waits while
//!   every other lane still has events to apply (so nobody waits on it) and, once another lane
//!   has applied everything it was handed, lets the slow one go to catch up alone.
//!   A lane whose transaction fails leaves the feed (its checkpoint is unchanged), starts over
//!   from its checkpoint after `retry` and joins again; the others carry on meanwhile.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use futures::{FutureExt, StreamExt};
use questlog_bus::lineage::{self, Mismatch};
use questlog_bus::{ensure_stream, ChangeAnnouncement, Names, ProjectionName};
use questlog_domain::Domain;
use questlog_store::{leader, RecordedEvent};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, Notify, Semaphore};
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
    /// Most events handed to one projection and not yet applied; a quarter of it is how far
    /// behind the other projections one may be to share their feed rather than catch up on a
    /// consumer of its own.
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

    /// How far behind (or ahead of) the feed's front a lane may be to join it.
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
    let (joins, asks) = mpsc::channel(projections.len().max(1) * 2);
    let shared = Arc::new(Shared::default());
    let mut tasks = tokio::task::JoinSet::new();
    let options = match config.database_url.parse::<PgConnectOptions>() {
        Ok(options) => options.application_name(&format!("{MEMBER} {}", uuid::Uuid::new_v4())),
        Err(e) => {
            tracing::error!(error = %e, "the projector's database URL does not parse");
            return;
        }
    };
    tasks.spawn(membership(
        options.clone(),
        projections.len(),
        shared.clone(),
        config.retry * 2,
        shutdown.clone(),
    ));
    tasks.spawn(feed(
        config.clone(),
        domain.clone(),
        client.clone(),
        asks,
        shared.clone(),
        shutdown.clone(),
    ));
    for projection in projections {
        tasks.spawn(lane(
            projection,
            domain.clone(),
            (config.clone(), options.clone()),
            client.clone(),
            (joins.clone(), shared.clone()),
            shutdown.clone(),
        ));
    }
    drop(joins);
    while tasks.join_next().await.is_some() {}
}

/// What the feed and the lanes share.
#[derive(Default)]
struct Shared {
    /// The feed's front: the furthest stream sequence it has handed to its lanes (0 while no lane
    /// follows it). A lane catching up alone joins once it is near.
    front: AtomicU64,
    /// Woken when a lane has applied what it was handed (the feed may be waiting for space).
    progress: Notify,
    /// The projections this process leads now.
    led: AtomicUsize,
    /// How many it should lead: every projection over the projector processes alive, rounded
    /// up ([`membership`]); 0 while unknown (then it leads whatever it can).
    share: AtomicUsize,
    /// Woken when this process leads more than its share: one lane steps down.
    step_down: Notify,
}

impl Shared {
    /// Whether this process may take the leadership of one more projection.
    fn may_lead(&self) -> bool {
        let share = self.share.load(Ordering::Acquire);
        share == 0 || self.led.load(Ordering::Acquire) < share
    }

    /// Whether this process leads more projections than its share.
    fn over_share(&self) -> bool {
        let share = self.share.load(Ordering::Acquire);
        share != 0 && self.led.load(Ordering::Acquire) > share
    }
}

/// The application name of a projector process's connections, `questlog-projector <id>`: how
/// the processes of a deployment count each other.
const MEMBER: &str = "questlog-projector";

/// Keeps this process counted among the deployment's projector processes (a connection named
/// [`MEMBER`] with its id) and, every `every`, counts them: each leads its share of the
/// projections (all of them over the processes, rounded up), and a process over its share makes
/// one lane step down, for another process to take. A process that cannot count leads
/// whatever it can, as a lone one does.
async fn membership(
    options: PgConnectOptions,
    projections: usize,
    shared: Arc<Shared>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut conn: Option<PgConnection> = None;
    loop {
        if conn.is_none() {
            conn = PgConnection::connect_with(&options).await.ok();
        }
        let members = match conn.as_mut() {
            Some(c) => sqlx::query_scalar::<_, i64>(
                "SELECT count(DISTINCT application_name) FROM pg_stat_activity \
                  WHERE datname = current_database() AND application_name LIKE $1",
            )
            .bind(format!("{MEMBER} %"))
            .fetch_one(c)
            .await
            .ok(),
            None => None,
        };
        if members.is_none() {
            conn = None;
        }
        let share = members
            .and_then(|m| usize::try_from(m).ok())
            .filter(|m| *m > 0)
            .map_or(0, |m| projections.div_ceil(m));
        shared.share.store(share, Ordering::Release);
        if shared.over_share() {
            shared.step_down.notify_one();
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// What a lane in the feed receives, in order.
enum Handout {
    Batch(Arc<Batch>),
    /// The lane is too far from the others to share the feed: it catches up alone, then joins
    /// again. Nothing follows.
    Alone,
}

/// Events as the feed hands them out: decoded once, shared by every lane.
pub struct Batch {
    /// The stream the sequences count in (its creation time).
    stream_created: Arc<str>,
    delivered: Vec<Delivered>,
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
    space: Arc<Semaphore>,
    /// The permits `space` holds when everything handed out is applied.
    capacity: usize,
    batches: mpsc::UnboundedSender<Handout>,
}

impl Join {
    fn name(&self) -> &str {
        self.projection.as_str()
    }

    /// Whether `n` more events may be handed to the lane now (the permits taken to tell are
    /// given back at once).
    fn has_space(&self, n: usize) -> bool {
        u32::try_from(n).is_ok_and(|n| self.space.try_acquire_many(n).is_ok())
    }
}

/// Where the feed stands: the furthest sequence handed to (or applied by) its lanes, in the
/// stream created at `stream_created`.
#[derive(Default)]
struct Front {
    sequence: u64,
    stream_created: String,
}

/// The feed's consumer: the stream it reads and the last sequence it delivered.
struct Open {
    pulled: pull::Stream,
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
    mut asks: mpsc::Receiver<Join>,
    shared: Arc<Shared>,
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
    let mut front = Front::default();
    let mut reopen = false;
    loop {
        lanes.retain(|l| !l.batches.is_closed());
        if lanes.is_empty() {
            front = Front::default();
            reopen |= open.is_some();
        }
        shared.front.store(front.sequence, Ordering::Release);
        if reopen {
            reopen = false;
            if let Some(old) = open.take() {
                drop_consumer(old.stream, old.consumer);
            }
            // Lanes that asked meanwhile are let in before the consumer opens.
            while let Ok(join) = asks.try_recv() {
                admit(&mut lanes, &mut front, None, join, config.rejoin());
            }
            if !lanes.is_empty() {
                match open_feed(&js, &config, &mut lanes).await {
                    Ok(o) => {
                        if let Some(o) = &o {
                            if *o.stream_created != front.stream_created {
                                // Only lanes of the stream as it is now were kept.
                                front = Front {
                                    sequence: highest_applied(&lanes),
                                    stream_created: o.stream_created.to_string(),
                                };
                            }
                        }
                        open = o;
                    }
                    Err(e) => {
                        // The lanes keep their place: the feed opens its consumer again after
                        // the lowest sequence they applied.
                        tracing::warn!(error = format!("{e:#}"), "projector feed interrupted");
                        reopen = true;
                        tokio::select! {
                            () = tokio::time::sleep(config.retry) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                }
            }
            continue;
        }
        let next = async {
            match open.as_mut() {
                Some(o) => o.pulled.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            join = asks.recv() => {
                let Some(join) = join else { break };
                reopen = admit(&mut lanes, &mut front, open.as_ref(), join, config.rejoin());
            }
            first = next => {
                let Some(first) = first else {
                    tracing::warn!("the projector feed's delivery stream ended; opening it again");
                    reopen = true;
                    continue;
                };
                let Some(o) = open.as_mut() else { continue };
                let mut received = vec![first];
                while received.len() < config.batch {
                    match o.pulled.next().now_or_never() {
                        Some(Some(m)) => received.push(m),
                        _ => break,
                    }
                }
                let decoded = match keys.acquire().await {
                    Ok(mut conn) => decode(o, &domain, &mut conn, received).await,
                    Err(e) => Err(anyhow::Error::new(e).context("reading the keys of personal data")),
                };
                match decoded {
                    Ok(batch) => {
                        if let Some(last) = batch.delivered.last() {
                            front.sequence = front.sequence.max(last.sequence);
                        }
                        if !hand_out(&mut lanes, batch, &shared, &config, &shutdown).await {
                            break;
                        }
                    }
                    Err(e) => {
                        // The lanes keep their place; the consumer is opened again after the
                        // lowest sequence they applied.
                        tracing::warn!(error = format!("{e:#}"), "projector feed interrupted");
                        reopen = true;
                        tokio::select! {
                            () = tokio::time::sleep(config.retry) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                }
            }
        }
    }
    if let Some(old) = open.take() {
        let _ = old.stream.delete_consumer(&old.consumer).await;
    }
}

fn highest_applied(lanes: &[Join]) -> u64 {
    lanes
        .iter()
        .map(|l| l.applied.load(Ordering::Acquire))
        .max()
        .unwrap_or(0)
}

/// Lets `join` into the feed, unless it is far behind the feed's front (then it catches up
/// alone); one far ahead of the front takes the feed from the lanes behind it, which catch up
/// alone. Returns whether the feed's consumer must be opened again (at a lower sequence, or on
/// another stream).
fn admit(
    lanes: &mut Vec<Join>,
    front: &mut Front,
    open: Option<&Open>,
    join: Join,
    rejoin: u64,
) -> bool {
    lanes.retain(|l| l.projection != join.projection && !l.batches.is_closed());
    let applied = join.applied.load(Ordering::Acquire);
    if lanes.is_empty() || front.stream_created != join.stream_created {
        // The first lane, or one of another stream: it joins, and opening the consumer sorts
        // out which stream the lanes share.
        *front = Front {
            sequence: applied,
            stream_created: join.stream_created.clone(),
        };
    } else if applied.saturating_add(rejoin) < front.sequence {
        tracing::info!(
            projection = join.name(),
            behind = front.sequence - applied,
            "projection far behind the other projections; it catches up on its own consumer"
        );
        let _ = join.batches.send(Handout::Alone);
        return false;
    } else if applied > front.sequence.saturating_add(rejoin) {
        tracing::info!(
            projection = join.name(),
            ahead = applied - front.sequence,
            lanes = lanes.len(),
            "projection far ahead of the others; they catch up on their own consumers"
        );
        for lane in lanes.drain(..) {
            let _ = lane.batches.send(Handout::Alone);
        }
        front.sequence = applied;
    } else {
        front.sequence = front.sequence.max(applied);
    }
    let reopen = match open {
        Some(o) => applied < o.delivered || *o.stream_created != *join.stream_created,
        None => true,
    };
    lanes.push(join);
    reopen
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
    let pulled = questlog_bus::pull(&consumer, config.batch).await?;
    tracing::debug!(
        from = lowest + 1,
        lanes = lanes.len(),
        "projector feed open"
    );
    Ok(Some(Open {
        pulled,
        consumer: name,
        stream,
        stream_created: Arc::from(state.created),
        delivered: lowest,
    }))
}

/// Deletes a consumer no longer read, without waiting: while a NATS cluster recovers from a lost
/// node the deletion may take 10 s to be answered, and the next consumer need not wait for it
/// (a consumer whose deletion failed is dropped by the server after its inactivity threshold).
fn drop_consumer(stream: jetstream::stream::Stream, consumer: String) {
    tokio::spawn(async move {
        let _ = stream.delete_consumer(&consumer).await;
    });
}

/// Decodes each delivery once, for every lane.
async fn decode(
    open: &mut Open,
    domain: &Domain,
    conn: &mut PgConnection,
    received: Vec<questlog_bus::Delivery>,
) -> anyhow::Result<Arc<Batch>> {
    let delivered = decode_received(domain, conn, received).await?;
    if let Some(last) = delivered.last() {
        open.delivered = open.delivered.max(last.sequence);
    }
    Ok(Arc::new(Batch {
        stream_created: open.stream_created.clone(),
        delivered,
    }))
}

/// Reads each delivery's recorded event, opens its personal fields with the keys as the database
/// holds them now (the stream carries them sealed) and decodes it with the modules' registry. An
/// event this build cannot read (a newer schema version) stops the feed: nothing after it is
/// folded.
async fn decode_received(
    domain: &Domain,
    conn: &mut PgConnection,
    received: Vec<questlog_bus::Delivery>,
) -> anyhow::Result<Vec<Delivered>> {
    let mut sequences = Vec::with_capacity(received.len());
    let mut events = Vec::with_capacity(received.len());
    for delivery in received {
        let delivery = delivery.map_err(|e| anyhow::anyhow!("receiving: {e}"))?;
        let sequence = delivery
            .info()
            .map_err(|e| anyhow::anyhow!("reading a delivery's metadata: {e}"))?
            .stream_sequence;
        let event: RecordedEvent = serde_json::from_slice(&delivery.payload)
            .with_context(|| format!("decoding the delivery on {}", delivery.subject))?;
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

/// Gives `batch` to every lane. While a lane has no space for it and every other lane still has
/// events to apply, waits for space; once another lane has applied all it was handed, the lanes
/// without space are let go to catch up alone. Returns `false` when `shutdown` fires.
async fn hand_out(
    lanes: &mut Vec<Join>,
    batch: Arc<Batch>,
    shared: &Shared,
    config: &ProjectorConfig,
    shutdown: &CancellationToken,
) -> bool {
    let size = batch.delivered.len();
    loop {
        lanes.retain(|l| !l.batches.is_closed());
        if lanes.iter().all(|l| l.has_space(size)) || lanes.iter().any(|l| l.has_space(l.capacity))
        {
            break;
        }
        // Woken as soon as a lane has applied something; the timer only notices a lane that left.
        tokio::select! {
            () = shared.progress.notified() => {}
            () = tokio::time::sleep(config.retry) => {}
            () = shutdown.cancelled() => return false,
        }
    }
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    lanes.retain(|lane| {
        let Ok(permit) = lane.space.try_acquire_many(size) else {
            tracing::info!(
                projection = lane.name(),
                "projection fell behind the other projections; it catches up on its own consumer"
            );
            let _ = lane.batches.send(Handout::Alone);
            return false;
        };
        permit.forget();
        lane.batches.send(Handout::Batch(batch.clone())).is_ok()
    });
    true
}

/// One projection: its leadership (while this process leads less than its share), then its
/// batches, starting over after any failure or after stepping down.
async fn lane(
    projection: Arc<dyn Projection>,
    domain: Arc<Domain>,
    (config, options): (ProjectorConfig, PgConnectOptions),
    client: async_nats::Client,
    (joins, shared): (mpsc::Sender<Join>, Arc<Shared>),
    shutdown: CancellationToken,
) {
    let role = format!("projector:{}", projection.name());
    while !shutdown.is_cancelled() {
        let Some(conn) = leader::acquire_while(&options, &role, config.retry, &shutdown, || {
            shared.may_lead()
        })
        .await
        else {
            break;
        };
        shared.led.fetch_add(1, Ordering::AcqRel);
        let result = Lane {
            projection: projection.as_ref(),
            domain: &domain,
            config: &config,
            client: &client,
            shared: &shared,
            conn,
        }
        .lead(&joins, &shutdown)
        .await;
        shared.led.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(Next::StepDown) => {
                tracing::info!(
                    projection = projection.name().as_str(),
                    "leadership handed over: this process led more than its share"
                );
            }
            Ok(_) => break,
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
    /// The stream's oldest entry: a bounded stream no longer holds the ones before it.
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
    shared: &'a Shared,
    conn: PgConnection,
}

/// What a lane does next.
enum Next {
    /// Prepare again and join the feed.
    Join,
    /// Prepare again and catch up on a consumer of its own.
    Alone,
    /// Shutting down.
    Stop,
    /// Hand the leadership over: this process leads more than its share.
    StepDown,
}

impl Lane<'_> {
    /// Leads the projection until `shutdown` ([`Next::Stop`]) or until it steps down
    /// ([`Next::StepDown`]).
    async fn lead(
        &mut self,
        joins: &mpsc::Sender<Join>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Next> {
        let name = self.projection.name().as_str();
        let mut announced = false;
        let mut alone = false;
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
            let dropped = start.applied + 1 < start.first_sequence;
            let next = if dropped {
                self.read_log(start, shutdown).await?
            } else if alone {
                self.catch_up(start, shutdown).await?
            } else {
                self.follow(start, joins, shutdown).await?
            };
            match next {
                Next::Join => alone = false,
                Next::Alone => alone = true,
                done @ (Next::Stop | Next::StepDown) => return Ok(done),
            }
        }
    }

    /// Checks the checkpoint and the stream against the log and reads where to resume.
    async fn prepare(&mut self) -> anyhow::Result<Start> {
        let name = self.projection.name().as_str();
        let conn = &mut self.conn;
        sqlx::query(crate::PLAN_EACH_STATEMENT)
            .execute(&mut *conn)
            .await
            .context("choosing how statements are planned")?;
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

    /// Joins the feed and folds what it hands out until it lets this lane go (to join again, or
    /// to catch up alone) or `shutdown` fires.
    async fn follow(
        &mut self,
        start: Start,
        joins: &mpsc::Sender<Join>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Next> {
        let (sender, mut batches) = mpsc::unbounded_channel();
        let applied = Arc::new(AtomicU64::new(start.applied));
        let capacity = self.config.lag.max(self.config.batch);
        let space = Arc::new(Semaphore::new(capacity));
        let join = Join {
            projection: self.projection.name(),
            stream_created: start.epoch.stream_created.clone(),
            applied: applied.clone(),
            space: space.clone(),
            capacity,
            batches: sender,
        };
        if joins.send(join).await.is_err() {
            return Ok(Next::Stop); // the feed has stopped: shutting down
        }
        let mut last = start.applied;
        let mut held: Option<Handout> = None;
        loop {
            let first = match held.take() {
                Some(h) => Some(h),
                None => tokio::select! {
                    h = batches.recv() => h,
                    () = self.shared.step_down.notified() => {
                        if self.shared.over_share() {
                            return Ok(Next::StepDown);
                        }
                        continue;
                    }
                    () = shutdown.cancelled() => return Ok(Next::Stop),
                },
            };
            let first = match first {
                Some(Handout::Batch(b)) => b,
                Some(Handout::Alone) => return Ok(Next::Alone),
                None => return Ok(Next::Join),
            };
            let mut taken = vec![first];
            let mut count = taken[0].delivered.len();
            while count < self.config.batch {
                match batches.try_recv() {
                    Ok(Handout::Batch(b)) if count + b.delivered.len() <= self.config.batch => {
                        count += b.delivered.len();
                        taken.push(b);
                    }
                    Ok(other) => {
                        held = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if taken
                .iter()
                .any(|b| *b.stream_created != *start.epoch.stream_created)
            {
                return Ok(Next::Join); // another stream: its sequences count anew
            }
            let delivered: Vec<&Delivered> =
                taken.iter().flat_map(|b| b.delivered.iter()).collect();
            last = self.apply_batch(&start.epoch, &delivered, last).await?;
            applied.store(last, Ordering::Release);
            space.add_permits(count);
            self.shared.progress.notify_one();
        }
    }

    /// Folds from the log in Postgres what the stream no longer holds (a bounded stream dropped
    /// its oldest entries before this projection applied them: a new projection, one reset, or
    /// one whose projector was down longer than the bound), then says where in the stream it
    /// stands (then it joins the feed) — or `shutdown` fires.
    ///
    /// The log is read after the stream's state, up to its head, so every entry up to the
    /// stream's last sequence then holds an event at or below the checkpoint: the checkpoint's
    /// stream sequence becomes that last sequence, and what the stream delivers after it that
    /// the log already gave is skipped by position. A crash in between leaves the old stream
    /// sequence, below the stream's first: it starts here again, from the checkpoint.
    async fn read_log(
        &mut self,
        start: Start,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Next> {
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
                return Ok(Next::Stop);
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
        Ok(Next::Join)
    }

    /// Folds from a consumer of this lane's own until it is near the feed's front, or the
    /// stream's end (then it joins the feed), or `shutdown` fires.
    async fn catch_up(
        &mut self,
        start: Start,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Next> {
        let name = self.projection.name().as_str();
        // Near enough to the other lanes: well within what the feed lets join.
        let (shared, margin) = (self.shared, self.config.rejoin() / 2);
        let near =
            |applied: u64| applied.saturating_add(margin) >= shared.front.load(Ordering::Acquire);
        if near(start.applied) {
            return Ok(Next::Join);
        }
        tracing::info!(
            projection = name,
            behind_front = shared
                .front
                .load(Ordering::Acquire)
                .saturating_sub(start.applied),
            behind_end = start.last_sequence.saturating_sub(start.applied),
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
            let mut received = questlog_bus::pull(&consumer, self.config.batch).await?;
            let mut last = start.applied;
            loop {
                let first = tokio::select! {
                    m = received.next() => m,
                    () = shutdown.cancelled() => return Ok(Next::Stop),
                };
                let Some(first) = first else {
                    anyhow::bail!("the catch-up consumer's delivery stream ended");
                };
                let mut batch = vec![first];
                while batch.len() < self.config.batch {
                    match received.next().now_or_never() {
                        Some(Some(m)) => batch.push(m),
                        _ => break,
                    }
                }
                let pending = match batch.last() {
                    Some(Ok(m)) => m.info().map_or(u64::MAX, |i| i.pending),
                    _ => u64::MAX,
                };
                let delivered = decode_received(self.domain, &mut self.conn, batch).await?;
                let delivered: Vec<&Delivered> = delivered.iter().collect();
                last = self.apply_batch(&start.epoch, &delivered, last).await?;
                if near(last) || pending <= self.config.rejoin() {
                    return Ok(Next::Join);
                }
            }
        }
        .await;
        drop_consumer(stream, consumer_name);
        result
    }

    /// Applies what of `delivered` is above the checkpoint, with the checkpoint, in one transaction;
    /// then announces. Returns the last stream sequence applied.
    async fn apply_batch(
        &mut self,
        epoch: &Epoch,
        delivered: &[&Delivered],
        mut applied: u64,
    ) -> anyhow::Result<u64> {
        let mut events = Vec::with_capacity(delivered.len());
        for arrived in delivered {
            if arrived.sequence <= applied {
                continue; // a redelivery of what is already applied
            }
            if arrived.sequence != applied + 1 {
                anyhow::bail!(
                    "stream sequence {} was due, got {}: resuming from the checkpoint",
                    applied + 1,
                    arrived.sequence
                );
            }
            applied = arrived.sequence;
            events.push(&arrived.event);
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
        let started = std::time::Instant::now();
        let mut tx = self.conn.begin().await.context("beginning")?;
        // Only this log's events are folded: an entry of another history (another deployment's
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
        metrics::histogram!("questlog_projection_batch_seconds", "projection" => name)
            .record(started.elapsed().as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    const REJOIN: u64 = 2_500;

    /// A lane asking to join after `applied`, and what it is handed.
    fn join(name: &'static str, applied: u64) -> (Join, mpsc::UnboundedReceiver<Handout>) {
        let (batches, handed) = mpsc::unbounded_channel();
        let join = Join {
            projection: ProjectionName::new(name),
            stream_created: "1".to_owned(),
            applied: Arc::new(AtomicU64::new(applied)),
            space: Arc::new(Semaphore::new(1_000)),
            capacity: 1_000,
            batches,
        };
        (join, handed)
    }

    fn told_to_go_alone(handed: &mut mpsc::UnboundedReceiver<Handout>) -> bool {
        matches!(handed.try_recv(), Ok(Handout::Alone))
    }

    fn names(lanes: &[Join]) -> Vec<&str> {
        lanes.iter().map(Join::name).collect()
    }

    #[test]
    fn lanes_far_behind_the_streams_end_but_together_share_the_feed() {
        // After a stall every lane is thousands of events behind the stream's end, each a little
        // apart from the others: all of them join, none is sent off alone.
        let (mut lanes, mut front) = (Vec::new(), Front::default());
        let mut handed = Vec::new();
        for (name, applied) in [("a", 1_000), ("b", 1_400), ("c", 700), ("d", 3_100)] {
            let (j, h) = join(name, applied);
            admit(&mut lanes, &mut front, None, j, REJOIN);
            handed.push(h);
        }
        assert_eq!(names(&lanes), ["a", "b", "c", "d"]);
        assert_eq!(front.sequence, 3_100);
        assert!(handed.iter_mut().all(|h| !told_to_go_alone(h)));
    }

    #[test]
    fn a_lane_far_behind_the_others_catches_up_alone() {
        let (mut lanes, mut front) = (Vec::new(), Front::default());
        let (a, _a) = join("a", 50_000);
        let (b, _b) = join("b", 49_000);
        admit(&mut lanes, &mut front, None, a, REJOIN);
        admit(&mut lanes, &mut front, None, b, REJOIN);
        let (new, mut handed) = join("new", 0);
        admit(&mut lanes, &mut front, None, new, REJOIN);
        assert!(told_to_go_alone(&mut handed));
        assert_eq!(names(&lanes), ["a", "b"]);
        assert_eq!(front.sequence, 50_000);
    }

    #[test]
    fn a_lane_far_ahead_takes_the_feed_and_the_lanes_behind_catch_up_alone() {
        // At start the feed opened first for a new projection; the others, near the stream's end,
        // are not held back while it reads from the start.
        let (mut lanes, mut front) = (Vec::new(), Front::default());
        let (new, mut new_handed) = join("new", 0);
        admit(&mut lanes, &mut front, None, new, REJOIN);
        let (a, mut a_handed) = join("a", 50_000);
        admit(&mut lanes, &mut front, None, a, REJOIN);
        assert!(told_to_go_alone(&mut new_handed));
        assert!(!told_to_go_alone(&mut a_handed));
        assert_eq!(names(&lanes), ["a"]);
        assert_eq!(front.sequence, 50_000);
    }

    #[test]
    fn a_lane_of_another_stream_is_let_in_to_be_sorted_out_when_the_feed_opens() {
        let (mut lanes, mut front) = (Vec::new(), Front::default());
        let (a, _a) = join("a", 50_000);
        admit(&mut lanes, &mut front, None, a, REJOIN);
        let (mut b, mut handed) = join("b", 0);
        b.stream_created = "2".to_owned();
        assert!(admit(&mut lanes, &mut front, None, b, REJOIN));
        assert!(!told_to_go_alone(&mut handed));
        assert_eq!(names(&lanes), ["a", "b"]);
    }

    fn batch(from: u64, size: u64) -> Arc<Batch> {
        let delivered = (from..from + size)
            .map(|sequence| Delivered {
                sequence,
                event: Decoded {
                    recorded: RecordedEvent {
                        position: i64::try_from(sequence).unwrap_or(i64::MAX),
                        event_id: uuid::Uuid::new_v4(),
                        stream_id: "tested".to_owned(),
                        stream_version: 1,
                        event_type: "tested".to_owned(),
                        schema_version: 1,
                        data: serde_json::Value::Null,
                        metadata: serde_json::Value::Null,
                        recorded_at: chrono::Utc::now(),
                    },
                    event: questlog_domain::Event::unknown("tested", 1, serde_json::Value::Null),
                },
            })
            .collect();
        Arc::new(Batch {
            stream_created: Arc::from("1"),
            delivered,
        })
    }

    fn config() -> ProjectorConfig {
        let mut config = ProjectorConfig::new("postgres://unused", questlog_bus::Names::new("t"));
        config.retry = Duration::from_secs(60);
        config
    }

    fn spaces(lanes: &[Join]) -> Vec<Arc<Semaphore>> {
        lanes.iter().map(|l| l.space.clone()).collect()
    }

    #[tokio::test]
    async fn a_lane_without_space_holds_the_feed_only_while_every_other_lane_is_busy() {
        let shared = Shared::default();
        let shutdown = CancellationToken::new();
        let (slow, mut slow_handed) = join("slow", 0);
        let (busy, mut busy_handed) = join("busy", 0);
        let mut lanes = vec![slow, busy];
        // Both lanes have 900 of their 1,000 events' space taken.
        assert!(hand_out(&mut lanes, batch(1, 900), &shared, &config(), &shutdown).await);
        let _ = (slow_handed.try_recv(), busy_handed.try_recv());
        let (spaces, config) = (spaces(&lanes), config());
        {
            // The next 200 fit in neither: the feed waits, for nobody is idle...
            let next = hand_out(&mut lanes, batch(901, 200), &shared, &config, &shutdown);
            tokio::pin!(next);
            assert!(futures::poll!(next.as_mut()).is_pending());
            // ...until one lane has applied everything: the other, still without space, is let go.
            spaces[1].add_permits(900);
            shared.progress.notify_one();
            assert!(next.await);
        }
        assert_eq!(names(&lanes), ["busy"]);
        assert!(told_to_go_alone(&mut slow_handed));
        assert!(
            matches!(busy_handed.try_recv(), Ok(Handout::Batch(b)) if b.delivered.len() == 200)
        );
    }

    #[tokio::test]
    async fn lanes_that_are_all_slow_slow_the_feed_down_and_none_is_let_go() {
        let shared = Shared::default();
        let shutdown = CancellationToken::new();
        let (a, mut a_handed) = join("a", 0);
        let (b, mut b_handed) = join("b", 0);
        let mut lanes = vec![a, b];
        assert!(hand_out(&mut lanes, batch(1, 900), &shared, &config(), &shutdown).await);
        let (spaces, config) = (spaces(&lanes), config());
        {
            let next = hand_out(&mut lanes, batch(901, 200), &shared, &config, &shutdown);
            tokio::pin!(next);
            assert!(futures::poll!(next.as_mut()).is_pending());
            // Each applies part of what it holds: space for the next batch, for both.
            spaces[0].add_permits(500);
            spaces[1].add_permits(300);
            shared.progress.notify_one();
            assert!(next.await);
        }
        assert_eq!(names(&lanes), ["a", "b"]);
        for handed in [&mut a_handed, &mut b_handed] {
            assert!(matches!(handed.try_recv(), Ok(Handout::Batch(_))));
            assert!(matches!(handed.try_recv(), Ok(Handout::Batch(_))));
        }
    }
}
