//! Live subscriptions: `GET /v1/subscribe?topic=<t>&topic=<t>…` as Server-Sent Events.
//!
//! A connection registers with the process's [`Hub`] (so changes queue up from that instant),
//! then reads a snapshot of its topics in one REPEATABLE READ transaction together with the
//! projections' checkpoints, sends it (`event: snapshot`), and then sends the queued changes the
//! snapshot does not already hold (`event: change`): no gap, no duplicate. A connection that
//! falls behind is cut loose by the hub and re-synced here with a fresh snapshot; one that keeps
//! falling behind is disconnected.
//!
//! Positions. Every event's `position` is a log position as of which its data is exactly the
//! matching read's `as_of` answer (see [`topic`]). So a change at or below what a client holds
//! of its topic (its snapshot, or the last change) is no news, and is not sent.
//!
//! Ids. With one topic, an event's `id` is its position. With several, the `id` is the position
//! up to which every topic of the connection has been sent (the least of their last positions),
//! so that a resume from it misses nothing; a resumed client may then see again a change whose
//! `position` is at or below the last it applied for that topic, and skips it. `Last-Event-ID`
//! (or `last_event_id` in the query, for clients that cannot set headers) resumes from the
//! hub's retention when it holds every change since, else with a fresh snapshot.
//!
//! Topics are what the running modules register ([`TopicKindReads`], through
//! [`QueryApp::add_topic`](crate::QueryApp::add_topic)); a kind may read subscription options
//! beside the topics (`<option>=<value>` in the query, or fields of the ticket's body).
//!
//! Where the contract is silent: more than [`MAX_TOPICS`] topics is 400 `invalid_topic`; a malformed
//! `Last-Event-ID` is 400 `invalid_last_event_id`; before the process follows the announcements
//! (NATS away at start) a subscription is 503 `unavailable`.

mod hub;
mod metrics;
pub(crate) mod ticket;
mod topic;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use questlog_domain::Actor;
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use hub::{Hub, Metrics, LINGER, QUEUE, RETAIN, RETAIN_BYTES, RETAIN_FOR};
pub use metrics::render as render_metrics;
pub(crate) use ticket::issue as issue_ticket;
pub use ticket::TICKET_TTL;
pub use topic::{
    changed_ids, invalid_topic, span, to_value, updates_of, LiveTopic, Options, Part, Reading,
    Source, Span, Topic, TopicKindReads, Update,
};

use self::hub::{frame, Delivery, Frame};
use crate::error::ApiError;
use crate::registry::Reads;
use crate::snapshot::begin;
use crate::QueryState;

/// The most topics one connection follows.
pub const MAX_TOPICS: usize = 16;
/// A comment goes out when nothing else has for this long.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The reconnection delay suggested to clients (`retry:`).
pub const RETRY: Duration = Duration::from_secs(2);
/// How long a subscription waits for the hub to follow the announcements before 503.
const READY_WAIT: Duration = Duration::from_secs(5);
/// A connection cut loose again within this long of its last re-sync earns a strike…
const STRIKE_WINDOW: Duration = Duration::from_secs(30);
/// …and this many strikes disconnect it.
const STRIKES: u8 = 3;

/// `GET /v1/subscribe`: see the module docs.
#[utoipa::path(get, path = "/v1/subscribe", tag = "live", params(crate::openapi::SubscribeParams),
    security((), ("bearer" = [])),
    summary = "Follow topics live (Server-Sent Events)",
    description = "Authenticated by a Bearer token, `access_token`, or a `ticket` \
        (`POST /v1/subscribe/ticket`), which names the topics itself. Per topic first \
        `event: snapshot` (`LiveSnapshot`), then `event: change` (`LiveChange`); every event's \
        `id:` is a position to resume after with `Last-Event-ID` (or `last_event_id`).",
    responses((status = 200, description = "The event stream", content_type = "text/event-stream",
        body = String)))]
#[tracing::instrument(skip_all, fields(topics = tracing::field::Empty))]
pub(crate) async fn subscribe(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let mut raw_topics = Vec::new();
    let mut options = Options::default();
    let mut last_event_id = None;
    let mut ticket = None;
    for (name, value) in &params {
        match name.as_str() {
            "topic" => raw_topics.push(value.as_str()),
            "last_event_id" => last_event_id = Some(value.as_str()),
            "ticket" => ticket = Some(value.as_str()),
            other if state.reads.reads_option(other) => options.set(other, value),
            _ => {}
        }
    }
    let (_actor, topics) = if let Some(ticket) = ticket {
        // The ticket is the credential and names the topics.
        if !raw_topics.is_empty() || !options.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_topic",
                "a ticket carries its topics: name none beside it",
            ));
        }
        ticket::redeem(&state.primary, &state.reads, ticket).await?
    } else {
        let Authenticated(actor) = auth?;
        let topics = topics(&state.reads, &raw_topics, &options, &actor)?;
        (actor, topics)
    };
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"))
        .or(last_event_id)
        .map(|raw| {
            raw.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID is an id this API sent (a position)",
                )
            })
        })
        .transpose()?;
    tracing::Span::current().record(
        "topics",
        tracing::field::debug(topics.iter().map(LiveTopic::name).collect::<Vec<_>>()),
    );

    let hub = state.positions.live().clone();
    if !hub.ready(READY_WAIT).await {
        return Err(ApiError::Client(
            Problem::unavailable("live subscriptions are not available yet; retry shortly")
                .retry_after(2),
        ));
    }
    let connection = Connection::open(hub, state.pool, topics, resume).await?;
    let stream = futures::stream::unfold(connection, |mut connection| async move {
        let chunk = connection.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), connection))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The topics a subscription (or a ticket) names, with its options checked, parsed by the
/// registered kinds, deduplicated, bounded and authorized for `actor`.
///
/// # Errors
/// 400 `invalid_topic` for no topic, an unknown or malformed one, or more than [`MAX_TOPICS`];
/// an option's own refusal; 403 for a topic `actor` may not follow.
pub fn topics(
    reads: &Reads,
    raw: &[&str],
    options: &Options,
    actor: &Actor,
) -> Result<Vec<LiveTopic>, ApiError> {
    reads.check_options(options)?;
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_topic",
            "name at least one topic: ?topic=<topic>&topic=<topic>…",
        ));
    }
    let mut topics: Vec<LiveTopic> = Vec::with_capacity(raw.len());
    for raw in raw {
        let topic = LiveTopic::new(parse(reads, raw, options, actor)?);
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    if topics.len() > MAX_TOPICS {
        return Err(ApiError::bad_request(
            "invalid_topic",
            format!("one subscription follows at most {MAX_TOPICS} topics"),
        ));
    }
    for topic in &topics {
        topic.topic().authorize(actor)?;
    }
    Ok(topics)
}

/// One topic as a client names it, by the kind its name starts with.
fn parse(
    reads: &Reads,
    raw: &str,
    options: &Options,
    actor: &Actor,
) -> Result<std::sync::Arc<dyn Topic>, ApiError> {
    let (kind, rest) = questlog_bus::TopicKind::split(raw);
    let mut parsed = None;
    for k in reads
        .topic_kinds()
        .iter()
        .filter(|k| k.kind().as_str() == kind)
    {
        parsed = k.parse(raw, rest, actor, options)?;
        if parsed.is_some() {
            break;
        }
    }
    parsed.ok_or_else(|| {
        let forms: Vec<&str> = reads.topic_kinds().iter().map(|k| k.form()).collect();
        let forms = match forms.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => "none".to_owned(),
        };
        invalid_topic(format!("unknown topic {raw:?}; topics are {forms}"))
    })
}

/// One topic of a connection.
struct Slot {
    topic: LiveTopic,
    /// The id of the last event queued for this topic (its snapshot's, at first): anything at
    /// or below is held already, and not sent.
    last_id: i64,
    /// The id of the last event written out (`None` before its first).
    written: Option<i64>,
}

/// An event ready to go out, without its `id:` line.
struct Pending {
    slot: usize,
    id: i64,
    body: Bytes,
}

/// One SSE connection: its registration, its topics and what is ready to be written.
struct Connection {
    hub: Hub,
    pool: PgPool,
    registration: u64,
    queue: mpsc::Receiver<Delivery>,
    slots: Vec<Slot>,
    pending: VecDeque<Pending>,
    /// The body of an event whose `id:` line was just written.
    carry: Option<Bytes>,
    /// Whether nothing has been written yet (the `retry:` hint goes first).
    first: bool,
    keep_alive_at: Instant,
    last_resync: Option<Instant>,
    strikes: u8,
}

#[derive(Serialize)]
struct SnapshotData<'a> {
    topic: &'a str,
    position: i64,
    data: &'a Value,
}

impl Connection {
    /// Registers with the hub, then reads what the registration cannot replay as a snapshot.
    async fn open(
        hub: Hub,
        pool: PgPool,
        topics: Vec<LiveTopic>,
        resume: Option<i64>,
    ) -> Result<Self, ApiError> {
        let registration = hub.register(&topics, resume);
        hub.metrics().connected.fetch_add(1, Ordering::Relaxed);
        let mut connection = Self {
            hub,
            pool,
            registration: registration.id,
            queue: registration.queue,
            slots: topics
                .into_iter()
                .map(|topic| Slot {
                    topic,
                    last_id: 0,
                    written: None,
                })
                .collect(),
            pending: VecDeque::new(),
            carry: None,
            first: true,
            keep_alive_at: Instant::now() + KEEP_ALIVE,
            last_resync: None,
            strikes: 0,
        };
        let mut fresh = Vec::new();
        for (slot, replay) in registration.replay.into_iter().enumerate() {
            match (replay, resume) {
                (Some(frames), Some(after)) => {
                    connection.slots[slot].last_id = after;
                    // The client holds this topic up to `after` already.
                    connection.slots[slot].written = Some(after);
                    for frame in frames {
                        connection.accept(slot, &frame);
                    }
                }
                _ => fresh.push(slot),
            }
        }
        connection.snapshot(&fresh).await?;
        Ok(connection)
    }

    /// Reads `slots`' snapshots in one transaction and queues them ahead of everything.
    async fn snapshot(&mut self, slots: &[usize]) -> Result<(), ApiError> {
        if slots.is_empty() {
            return Ok(());
        }
        let topics: Vec<&LiveTopic> = slots.iter().map(|&slot| &self.slots[slot].topic).collect();
        self.hub.settled(&topics).await?;
        let mut tx = begin(&self.pool).await?;
        let mut reading = Reading::new(&mut tx).await?;
        let mut snapshots = Vec::with_capacity(slots.len());
        for &slot in slots {
            let (position, data) = self.slots[slot]
                .topic
                .topic()
                .snapshot(&mut tx, &mut reading)
                .await?;
            snapshots.push((slot, position, data));
        }
        tx.commit().await?;
        for (slot, position, data) in snapshots.into_iter().rev() {
            let s = &mut self.slots[slot];
            s.last_id = position;
            let body = frame(
                "snapshot",
                &SnapshotData {
                    topic: &s.topic.name(),
                    position,
                    data: &data,
                },
            );
            // The snapshot replaces whatever was waiting for this topic.
            self.pending.retain(|p| p.slot != slot);
            self.pending.push_front(Pending {
                slot,
                id: position,
                body,
            });
        }
        Ok(())
    }

    /// Queues a change unless the topic's snapshot or an earlier change already holds it.
    fn accept(&mut self, slot: usize, frame: &Frame) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if frame.id <= s.last_id {
            return;
        }
        s.last_id = frame.id;
        self.pending.push_back(Pending {
            slot,
            id: frame.id,
            body: frame.bytes.clone(),
        });
    }

    /// The next bytes to write; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(body) = self.carry.take() {
            return Some(body);
        }
        loop {
            if let Some(pending) = self.pending.pop_front() {
                return Some(self.write(pending));
            }
            tokio::select! {
                biased;
                () = self.hub.closed() => return None,
                delivery = self.queue.recv() => match delivery {
                    Some((slot, frame)) => self.accept(slot, &frame),
                    None if self.hub.is_closed() => return None,
                    // The hub cut this connection loose: it fell behind.
                    None => Box::pin(self.resync()).await?,
                },
                () = tokio::time::sleep_until(self.keep_alive_at) => {
                    self.keep_alive_at = Instant::now() + KEEP_ALIVE;
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }

    /// The `id:` line of `pending` (its body follows in the next chunk).
    fn write(&mut self, pending: Pending) -> Bytes {
        if let Some(slot) = self.slots.get_mut(pending.slot) {
            slot.written = Some(pending.id);
        }
        let id = if self.slots.len() == 1 {
            pending.id
        } else {
            // Every topic has been written up to here; 0 until each has had its snapshot.
            self.slots
                .iter()
                .map(|s| s.written.unwrap_or(0))
                .min()
                .unwrap_or(0)
        };
        let mut head = String::with_capacity(32);
        if std::mem::take(&mut self.first) {
            let _ = writeln!(head, "retry: {}", RETRY.as_millis());
        }
        let _ = writeln!(head, "id: {id}");
        self.carry = Some(pending.body);
        self.keep_alive_at = Instant::now() + KEEP_ALIVE;
        self.hub.metrics().events.fetch_add(1, Ordering::Relaxed);
        Bytes::from(head)
    }

    /// Registers again and sends every topic's fresh snapshot; `None` when the connection should
    /// end instead (it keeps falling behind, or the snapshot cannot be read).
    async fn resync(&mut self) -> Option<()> {
        let now = Instant::now();
        if self.last_resync.is_some_and(|at| now - at < STRIKE_WINDOW) {
            self.strikes += 1;
        } else {
            self.strikes = 0;
        }
        self.last_resync = Some(now);
        if self.strikes >= STRIKES {
            self.hub.metrics().dropped.fetch_add(1, Ordering::Relaxed);
            tracing::info!("disconnecting a live subscriber that keeps falling behind");
            return None;
        }
        let topics: Vec<LiveTopic> = self.slots.iter().map(|s| s.topic.clone()).collect();
        self.hub.unregister(self.registration);
        let registration = self.hub.register(&topics, None);
        self.registration = registration.id;
        self.queue = registration.queue;
        self.pending.clear();
        let all: Vec<usize> = (0..self.slots.len()).collect();
        for slot in &mut self.slots {
            slot.written = None;
        }
        match self.snapshot(&all).await {
            Ok(()) => {
                self.hub.metrics().resyncs.fetch_add(1, Ordering::Relaxed);
                Some(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-sync a live subscriber; disconnecting it");
                self.hub.metrics().dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.hub.unregister(self.registration);
        self.hub.metrics().connected.fetch_sub(1, Ordering::Relaxed);
    }
}
