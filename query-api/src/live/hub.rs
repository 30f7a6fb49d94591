//! The fan-out hub: one per process, fed by the process's one NATS subscription to change
//! announcements (see [`crate::positions`]). For each announcement it reads each touched topic's
//! new data once — one REPEATABLE READ snapshot per announcement, only for topics someone follows
//! — frames it once, keeps it in the topic's bounded retention (for `Last-Event-ID` resumes) and
//! offers it to every subscriber of the topic with `try_send`: a subscriber whose small queue is
//! full is cut loose and re-synced with a fresh snapshot, so a slow client costs neither memory
//! nor the others' latency.
//!
//! Ids. A topic's events carry strictly increasing ids, each its change's label: a position as
//! of which the change's data is exactly the matching read (see [`super::topic`]). The data is
//! read in a snapshot that may reflect more than the announcement that prompted it, so the label
//! comes from that snapshot. A later read can find what an earlier one already sent (it had read
//! past its announcement): its label is then the same, and it is dropped. The labels of a topic
//! only grow, since its projections' checkpoints do.
//!
//! No silent skip. The hub knows, per projection, the position up to which it has seen every
//! announcement (`seen`). An announcement whose `previous` is above it means one was lost: every
//! topic read from that projection drops its retention and its subscribers are re-synced. A
//! topic's retention is complete only after `complete_since`: a resume from before it gets a
//! snapshot instead.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use questlog_bus::{Change, ChangeAnnouncement, ChangeOp};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::topic::{LiveTopic as Topic, Reading, Source, Update};
use crate::error::{cause_chain, ApiError};
use crate::standby::Standby;

/// How many events a subscriber's queue holds before it counts as lagging.
pub const QUEUE: usize = 32;
/// How many changes each topic keeps for resumes.
pub const RETAIN: usize = 256;
/// How many bytes of changes each topic keeps for resumes at most.
pub const RETAIN_BYTES: usize = 256 * 1024;
/// How long a change is kept for resumes.
pub const RETAIN_FOR: Duration = Duration::from_secs(300);
/// How long a topic nobody follows any more is still kept up to date, so that a client that
/// reconnects resumes instead of taking a snapshot.
pub const LINGER: Duration = Duration::from_secs(120);
/// How many announcements may wait for the hub before it counts one as lost.
const INBOX: usize = 4096;
/// How long the hub waits for a standby it reads from to show an announced change (it replays
/// in milliseconds; this is a standby that stopped replaying).
const STANDBY_WAIT: Duration = Duration::from_secs(10);

/// One change of one topic, framed once for every subscriber (without its `id:` line, which
/// depends on the connection).
#[derive(Debug)]
pub(crate) struct Frame {
    /// The topic's event id (and the `position` in the data): the change's label. A subscriber
    /// whose snapshot is labelled at or above it already holds it.
    pub id: i64,
    /// `event: change\ndata: {…}\n\n`.
    pub bytes: Bytes,
    at: Instant,
}

/// What a subscriber's queue carries: the slot of the topic on its connection, and the frame.
pub(crate) type Delivery = (usize, Arc<Frame>);

/// A registration with the hub: the queue to read, and per topic the retained changes to replay
/// when a resume could be served (`None`: take a snapshot).
pub(crate) struct Registration {
    pub id: u64,
    pub queue: mpsc::Receiver<Delivery>,
    pub replay: Vec<Option<Vec<Arc<Frame>>>>,
}

/// The live subscriptions' counters, as `GET /metrics` shows them.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Subscriptions open now.
    pub connected: AtomicU64,
    /// Events written to subscribers (snapshots and changes).
    pub events: AtomicU64,
    /// Subscribers cut loose because their queue was full (or an announcement was lost).
    pub lagged: AtomicU64,
    /// Fresh snapshots sent to a subscriber that had been cut loose.
    pub resyncs: AtomicU64,
    /// Subscribers disconnected because they kept falling behind.
    pub dropped: AtomicU64,
    /// Resumes served from retention, and resumes that had to take a snapshot.
    pub resumed: AtomicU64,
    pub resume_misses: AtomicU64,
}

/// The process's hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    ready: watch::Sender<bool>,
    closed: CancellationToken,
    inbox: mpsc::Sender<ChangeAnnouncement>,
    metrics: Metrics,
    /// The streaming replica the hub reads from, when it reads from one.
    standby: Option<Standby>,
}

#[derive(Default)]
struct State {
    /// Per projection, the position up to which every announcement has been seen.
    seen: HashMap<String, i64>,
    /// An announcement was dropped on the way in: everything must re-sync.
    overflowed: bool,
    topics: HashMap<Topic, TopicState>,
    /// Announced (topic, key) → the followed topics it touches.
    index: HashMap<Source, Vec<Topic>>,
    subscribers: HashMap<u64, Subscriber>,
    next_id: u64,
}

struct Subscriber {
    queue: mpsc::Sender<Delivery>,
    topics: Vec<Topic>,
}

struct TopicState {
    /// (subscriber, slot of this topic on its connection).
    subscribers: Vec<(u64, usize)>,
    /// The id of the topic's last change: a change labelled at or below holds nothing new.
    last_id: i64,
    /// A client holding the topic as of this position or later needs only what is in `retained`:
    /// every event the hub handles from its start or reset on makes a change labelled at or
    /// after it, and every event before was already below this.
    complete_since: i64,
    retained: VecDeque<Arc<Frame>>,
    retained_bytes: usize,
    idle_since: Option<Instant>,
}

impl TopicState {
    fn retain(&mut self, frame: Arc<Frame>) {
        self.retained_bytes += frame.bytes.len();
        self.retained.push_back(frame);
        while self.retained.len() > RETAIN || self.retained_bytes > RETAIN_BYTES {
            self.evict();
        }
    }

    fn evict(&mut self) {
        if let Some(old) = self.retained.pop_front() {
            self.retained_bytes -= old.bytes.len();
            self.complete_since = self.complete_since.max(old.id);
        }
    }

    /// Forgets everything up to `position` (at least what the hub has seen of the topic's
    /// projections): retention can no longer serve a resume before it.
    fn reset(&mut self, position: i64) {
        self.retained.clear();
        self.retained_bytes = 0;
        self.complete_since = self.complete_since.max(position).max(self.last_id);
    }
}

impl State {
    /// Cuts a subscriber loose: its queue closes once drained, and its connection re-syncs.
    fn release(&mut self, id: u64) -> bool {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return false;
        };
        for topic in &subscriber.topics {
            if let Some(state) = self.topics.get_mut(topic) {
                state.subscribers.retain(|(s, _)| *s != id);
                if state.subscribers.is_empty() {
                    state.idle_since = Some(Instant::now());
                }
            }
        }
        true
    }

    /// The highest position this hub knows the topic's projections have reached.
    fn head(&self, topic: &Topic) -> i64 {
        topic
            .projections()
            .iter()
            .map(|p| self.seen.get(p.as_str()).copied().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    /// The position up to which every one of the topic's projections is known to have applied.
    fn floor(&self, topic: &Topic) -> i64 {
        topic
            .projections()
            .iter()
            .map(|p| self.seen.get(p.as_str()).copied().unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    fn track(&mut self, topic: &Topic) -> &mut TopicState {
        if !self.topics.contains_key(topic) {
            // Every event the hub has handled is in the read models (a snapshot holds it), so
            // a resume is served from retention from the furthest of them on. Every later event
            // will be announced, and the change it makes is labelled at or after it: above what
            // every projection of the topic had reached.
            let (floor, head) = (self.floor(topic), self.head(topic));
            for source in topic.topic().sources() {
                self.index.entry(source).or_default().push(topic.clone());
            }
            self.topics.insert(
                topic.clone(),
                TopicState {
                    subscribers: Vec::new(),
                    last_id: floor,
                    complete_since: head,
                    retained: VecDeque::new(),
                    retained_bytes: 0,
                    idle_since: None,
                },
            );
        }
        // Just inserted when absent.
        self.topics
            .get_mut(topic)
            .unwrap_or_else(|| unreachable!("tracked above"))
    }

    fn untrack(&mut self, topic: &Topic) {
        self.topics.remove(topic);
        for source in topic.topic().sources() {
            if let Some(topics) = self.index.get_mut(&source) {
                topics.retain(|t| t != topic);
                if topics.is_empty() {
                    self.index.remove(&source);
                }
            }
        }
    }
}

#[derive(Serialize)]
struct ChangeData<'a> {
    topic: &'a str,
    position: i64,
    op: ChangeOp,
    key: &'a str,
    data: &'a Value,
}

/// `event: <name>\ndata: <json>\n\n`. The JSON is compact, so it has no line break.
pub(crate) fn frame(event: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

impl Hub {
    /// A hub nobody feeds: it never becomes ready, so subscriptions answer 503. For a query API
    /// without NATS.
    pub fn detached() -> Self {
        let (inbox, _) = mpsc::channel(1);
        Self::with_inbox(inbox, None)
    }

    fn with_inbox(inbox: mpsc::Sender<ChangeAnnouncement>, standby: Option<Standby>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: watch::Sender::new(false),
                closed: CancellationToken::new(),
                inbox,
                metrics: Metrics::default(),
                standby,
            }),
        }
    }

    /// Starts the hub's task. It becomes ready once `listening` (the announcement subscription
    /// is confirmed) and it has read where every projection stands; it closes every subscription
    /// at `shutdown`. It reads from `pool`, which is `standby` when that is given: it then reads
    /// an announced change only once the standby shows it.
    pub fn spawn(
        pool: PgPool,
        standby: Option<Standby>,
        listening: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) -> Self {
        let (inbox, rx) = mpsc::channel(INBOX);
        let hub = Self::with_inbox(inbox, standby);
        tokio::spawn(run(hub.clone(), pool, rx, listening, shutdown));
        hub
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// How many topics the hub keeps up to date.
    pub fn topics(&self) -> usize {
        self.lock().topics.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state: counters and maps.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands an announcement to the hub without waiting. If its inbox is full, the
    /// announcement is lost and every subscriber re-syncs.
    pub fn offer(&self, announcement: ChangeAnnouncement) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.shared.inbox.try_send(announcement) {
            self.lock().overflowed = true;
        }
    }

    /// Waits until the hub follows the announcements, for at most `timeout`.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.ready.subscribe();
        let ready = tokio::time::timeout(timeout, rx.wait_for(|ready| *ready))
            .await
            .is_ok_and(|waited| waited.is_ok());
        ready
    }

    /// Resolves when the hub shuts down.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Registers a subscriber of `topics` (its slots are their indexes): from here on it gets
    /// every change of them. With `resume`, each topic whose retention holds every change after
    /// it gets them to replay.
    pub(crate) fn register(&self, topics: &[Topic], resume: Option<i64>) -> Registration {
        let (tx, queue) = mpsc::channel(QUEUE);
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let mut replay = Vec::with_capacity(topics.len());
        for (slot, topic) in topics.iter().enumerate() {
            let head = state.head(topic);
            let tracked = state.track(topic);
            tracked.subscribers.push((id, slot));
            tracked.idle_since = None;
            replay.push(resume.and_then(|after| {
                // A position beyond what this process has seen cannot be vouched for.
                (tracked.complete_since <= after && after <= head.max(tracked.last_id)).then(|| {
                    tracked
                        .retained
                        .iter()
                        .filter(|f| f.id > after)
                        .cloned()
                        .collect()
                })
            }));
        }
        state.subscribers.insert(
            id,
            Subscriber {
                queue: tx,
                topics: topics.to_vec(),
            },
        );
        drop(state);
        if resume.is_some() {
            for r in &replay {
                let counter = if r.is_some() {
                    &self.shared.metrics.resumed
                } else {
                    &self.shared.metrics.resume_misses
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        Registration { id, queue, replay }
    }

    /// Forgets a subscriber (its connection ended).
    pub(crate) fn unregister(&self, id: u64) {
        self.lock().release(id);
    }

    /// Waits until the database the hub reads from shows every change of `topics`' projections
    /// the hub has seen: at once on the primary; on a standby, a look at it (a standby restarted
    /// after a crash may show less than it did). A snapshot read after this holds every change
    /// the hub handled before the registration, so that none falls between the two.
    pub(crate) async fn settled(&self, topics: &[&Topic]) -> Result<(), ApiError> {
        let Some(standby) = &self.shared.standby else {
            return Ok(());
        };
        let wants: Vec<(String, i64)> = {
            let state = self.lock();
            let mut wants: Vec<(String, i64)> = Vec::new();
            for projection in topics.iter().flat_map(|t| t.projections()) {
                let name = projection.as_str();
                if wants.iter().all(|(p, _)| p != name) {
                    wants.push((name.to_owned(), state.seen.get(name).copied().unwrap_or(0)));
                }
            }
            wants
        };
        let wants: Vec<(&str, i64)> = wants.iter().map(|(p, at)| (p.as_str(), *at)).collect();
        standby
            .reached(&wants, Instant::now() + STANDBY_WAIT)
            .await
            .map_err(ApiError::from)
    }

    /// Handles one announcement: see the module docs.
    async fn process(&self, pool: &PgPool, announcement: ChangeAnnouncement) {
        // Any projection's: a topic follows those it names, and nothing names the others.
        let projection = announcement.projection.as_str();
        let position = announcement.position;
        let touched = {
            let mut state = self.lock();
            let seen = state.seen.get(projection).copied().unwrap_or(0);
            if position <= seen {
                return; // already accounted for (a repeat, or older than the hub's start)
            }
            state.seen.insert(projection.to_owned(), position);
            if std::mem::take(&mut state.overflowed) {
                tracing::warn!("live hub inbox overflowed: re-syncing every subscriber");
                self.resync(&mut state, None, position);
                return;
            }
            if announcement
                .previous
                .is_some_and(|previous| previous > seen)
            {
                tracing::warn!(
                    projection,
                    seen,
                    previous = announcement.previous,
                    "a change announcement was lost: re-syncing its topics' subscribers"
                );
                self.resync(&mut state, Some(projection), position);
                return;
            }
            route(&state, &announcement.changes)
        };
        if touched.is_empty() {
            return;
        }
        if let Some(standby) = &self.shared.standby {
            // What the primary committed, read once the standby has replayed it.
            let deadline = Instant::now() + STANDBY_WAIT;
            if let Err(e) = standby.reached(&[(projection, position)], deadline).await {
                tracing::warn!(error = %cause_chain(&e), "the standby does not show a change: re-syncing its subscribers");
                let mut state = self.lock();
                for (topic, _) in &touched {
                    self.resync_topic(&mut state, topic, position);
                }
                return;
            }
        }
        match read_updates(pool, &touched).await {
            Ok(updates) => self.publish(updates),
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot read live changes: re-syncing their subscribers");
                let mut state = self.lock();
                for (topic, _) in &touched {
                    self.resync_topic(&mut state, topic, position);
                }
            }
        }
    }

    /// Resets the retention of every topic read from `projection` (every topic without one) and
    /// cuts their subscribers loose, so they take fresh snapshots.
    fn resync(&self, state: &mut State, projection: Option<&str>, position: i64) {
        let topics: Vec<Topic> = state
            .topics
            .keys()
            .filter(|t| projection.is_none_or(|p| t.projections().iter().any(|n| n.as_str() == p)))
            .cloned()
            .collect();
        for topic in &topics {
            self.resync_topic(state, topic, position);
        }
    }

    fn resync_topic(&self, state: &mut State, topic: &Topic, position: i64) {
        let head = state.head(topic);
        let Some(tracked) = state.topics.get_mut(topic) else {
            return;
        };
        tracked.reset(position.max(head));
        let subscribers: Vec<u64> = tracked.subscribers.iter().map(|(s, _)| *s).collect();
        for id in subscribers {
            if state.release(id) {
                self.shared.metrics.lagged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Frames, retains and offers each update to its topic's subscribers, but for one that a
    /// change already sent holds (labelled at or after it).
    fn publish(&self, updates: Vec<(Topic, Vec<Update>)>) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut lagging = Vec::new();
        {
            let State {
                topics,
                subscribers,
                ..
            } = &mut *state;
            for (topic, updates) in updates {
                // Untracked since (nobody followed it for a while): nothing to do.
                let Some(tracked) = topics.get_mut(&topic) else {
                    continue;
                };
                let name = topic.name();
                for update in updates {
                    let id = update.position;
                    if id <= tracked.last_id {
                        continue;
                    }
                    tracked.last_id = id;
                    let frame = Arc::new(Frame {
                        id,
                        bytes: frame(
                            "change",
                            &ChangeData {
                                topic: &name,
                                position: id,
                                op: update.op,
                                key: &update.key,
                                data: &update.data,
                            },
                        ),
                        at: now,
                    });
                    tracked.retain(Arc::clone(&frame));
                    for (subscriber, slot) in &tracked.subscribers {
                        let Some(s) = subscribers.get(subscriber) else {
                            continue;
                        };
                        // Never wait for a subscriber: a full queue means it is behind.
                        if s.queue.try_send((*slot, Arc::clone(&frame))).is_err() {
                            lagging.push(*subscriber);
                        }
                    }
                }
            }
        }
        lagging.sort_unstable();
        lagging.dedup();
        for id in lagging {
            if state.release(id) {
                self.shared.metrics.lagged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops old retention and the topics nobody has followed for [`LINGER`].
    fn sweep(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        let idle: Vec<Topic> = state
            .topics
            .iter()
            .filter(|(_, t)| t.idle_since.is_some_and(|since| now - since >= LINGER))
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in &idle {
            state.untrack(topic);
        }
        for tracked in state.topics.values_mut() {
            while tracked
                .retained
                .front()
                .is_some_and(|f| now - f.at >= RETAIN_FOR)
            {
                tracked.evict();
            }
        }
    }

    /// Ends every subscription.
    fn close(&self) {
        self.shared.closed.cancel();
        let mut state = self.lock();
        state.subscribers.clear();
        state.topics.clear();
        state.index.clear();
    }
}

/// The followed topics `changes` touch, each with its changes.
fn route(state: &State, changes: &[Change]) -> Vec<(Topic, Vec<Change>)> {
    let mut touched: Vec<(Topic, Vec<Change>)> = Vec::new();
    for change in changes {
        let exact = Source {
            topic: change.topic.clone(),
            key: None,
        };
        let keyed = Source {
            topic: change.topic.clone(),
            key: Some(change.key.clone()),
        };
        for topic in [exact, keyed]
            .iter()
            .filter_map(|s| state.index.get(s))
            .flatten()
        {
            match touched.iter_mut().find(|(t, _)| t == topic) {
                Some((_, list)) => list.push(change.clone()),
                None => touched.push((topic.clone(), vec![change.clone()])),
            }
        }
    }
    touched
}

/// Every touched topic's updates, read in one snapshot with the checkpoints that label them.
async fn read_updates(
    pool: &PgPool,
    touched: &[(Topic, Vec<Change>)],
) -> Result<Vec<(Topic, Vec<Update>)>, ApiError> {
    let mut tx = crate::snapshot::begin(pool).await?;
    let mut reading = Reading::new(&mut tx).await?;
    let mut updates = Vec::with_capacity(touched.len());
    for (topic, changes) in touched {
        let changed = topic
            .topic()
            .changed(&mut tx, &mut reading, changes)
            .await?;
        updates.push((topic.clone(), changed));
    }
    tx.commit().await?;
    Ok(updates)
}

/// Where every projection stands, from the checkpoints.
async fn checkpoints(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT projection, position FROM projection_checkpoints")
        .fetch_all(pool)
        .await
}

#[tracing::instrument(name = "live_hub", skip_all)]
async fn run(
    hub: Hub,
    pool: PgPool,
    mut inbox: mpsc::Receiver<ChangeAnnouncement>,
    mut listening: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    // Announcements sent from the confirmation on reach the inbox; what was committed before it
    // is in the checkpoints, read after it.
    tokio::select! {
        () = shutdown.cancelled() => return hub.close(),
        confirmed = listening.wait_for(|l| *l) => if confirmed.is_err() { return hub.close() },
    }
    loop {
        match checkpoints(&pool).await {
            Ok(rows) => {
                let mut state = hub.lock();
                state.seen.extend(rows);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the checkpoints; live subscriptions wait");
                tokio::select! {
                    () = shutdown.cancelled() => return hub.close(),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    hub.shared.ready.send_replace(true);
    tracing::debug!("live subscriptions ready");
    let mut sweep = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            announcement = inbox.recv() => match announcement {
                Some(announcement) => hub.process(&pool, announcement).await,
                None => break,
            },
            _ = sweep.tick() => hub.sweep(),
        }
    }
    hub.close();
}
