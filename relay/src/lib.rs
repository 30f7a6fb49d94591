//! The relay: tails the event log and publishes every event to one JetStream stream, in log order,
//! exactly once.
//!
//! - Order: each publish carries `Nats-Expected-Last-Msg-Id` = the previous event's id, so JetStream
//!   refuses anything that would land out of order, even with a window of publishes in flight.
//! - Exactly once: the message id is the event id (JetStream drops duplicates), and on every
//!   (re)start the relay resumes after the position of the stream's last message: JetStream itself
//!   is the checkpoint, so there is no second write to get out of step.
//! - One active relay: leadership is a Postgres advisory lock, and the leader reads the log on the
//!   connection that holds it.
//! - Wakes on `LISTEN questlog_appended`; a slow timer only guards against a lost notification,
//!   and checks that the stream still ends where the relay left it: a NATS server that lost the
//!   newest part of its store (a power loss within its fsync interval) is noticed, and the relay
//!   republishes from the stream's new end.
//! - One log, one history: before publishing, the relay checks that the stream's newest message is
//!   an event of this database's log ([`questlog_bus::lineage`]). A stream of another deployment,
//!   or one ahead of a restored log, is refused loudly and left untouched until an operator runs
//!   `questlog repair`.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, context::Publish};
use async_nats::HeaderMap;
use questlog_bus::lineage::{self, Mismatch};
use questlog_bus::{
    ensure_stream_settings, Names, EVENT_TYPE_HEADER, POSITION_HEADER, STREAM_HEADER,
};
use questlog_store::{leader, read_after, RecordedEvent};
use sqlx::postgres::PgListener;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: String,
    pub names: Names,
    /// Publishes awaiting their acknowledgement at most.
    pub window: usize,
    /// Events read from the log per query.
    pub page: i64,
    /// How long to wait before retrying after a failure (and between leadership attempts).
    pub retry: Duration,
    /// How often an idle relay checks that the stream still ends where it left it.
    pub idle_check: Duration,
}

impl RelayConfig {
    pub fn new(database_url: &str, names: Names) -> Self {
        Self {
            database_url: database_url.to_owned(),
            names,
            window: 256,
            page: 1000,
            retry: Duration::from_millis(500),
            idle_check: Duration::from_secs(2),
        }
    }
}

/// Runs the relay until `shutdown` fires: stands by while another replica leads, publishes while
/// this one does, and starts over after any failure of Postgres or NATS.
pub async fn run(config: RelayConfig, client: async_nats::Client, shutdown: CancellationToken) {
    let api = questlog_bus::jetstream_api(client.clone());
    let js = jetstream::new(client);
    while !shutdown.is_cancelled() {
        let Some(conn) =
            leader::acquire(&config.database_url, "relay", config.retry, &shutdown).await
        else {
            break;
        };
        match lead(&config, &api, &js, conn, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                let wait = if let Some(mismatch) = e.downcast_ref::<Mismatch>() {
                    tracing::error!(
                        %mismatch,
                        remedy = Mismatch::REMEDY,
                        "the relay refuses to publish: the stream is not this log's"
                    );
                    config.retry.max(Duration::from_secs(5))
                } else {
                    tracing::warn!(error = format!("{e:#}"), "relay interrupted; starting over");
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

/// Where the stream ends: the last published event's position and id, and the stream sequence
/// of that message. Refuses (a [`Mismatch`]) a stream whose newest message is not this log's.
async fn resume_point(
    stream: &jetstream::stream::Stream,
    names: &Names,
    conn: &mut PgConnection,
) -> anyhow::Result<(i64, Option<String>, u64)> {
    let tail = lineage::state_of(stream).await?.tail;
    if let Some(mismatch) = lineage::check_tail(conn, names, tail.as_ref()).await? {
        return Err(mismatch.into());
    }
    Ok(tail.map_or((0, None, 0), |t| {
        (t.position, Some(t.event_id.to_string()), t.sequence)
    }))
}

async fn lead(
    config: &RelayConfig,
    api: &jetstream::Context,
    js: &jetstream::Context,
    mut conn: PgConnection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect(&config.database_url)
        .await
        .context("connecting the log listener")?;
    listener
        .listen("questlog_appended")
        .await
        .context("listening for appends")?;
    // The stream's look-ups time out sooner than publishes (see `questlog_bus::API_TIMEOUT`).
    let stream = ensure_stream_settings(api, &config.names).await?;
    let (mut after, mut last_id, mut sequence) =
        resume_point(&stream, &config.names, &mut conn).await?;
    tracing::info!(after, "relay publishing");
    let mut in_flight: VecDeque<(i64, jetstream::context::PublishAckFuture)> = VecDeque::new();
    loop {
        let page = read_after(&mut conn, after, config.page)
            .await
            .context("reading the log")?;
        if page.is_empty() {
            sequence = drain(&mut in_flight, 0).await?.unwrap_or(sequence);
            tokio::select! {
                n = listener.recv() => { n.context("waiting for appends")?; }
                () = tokio::time::sleep(config.idle_check) => {
                    still_ends_at(&stream, sequence).await?;
                }
                () = shutdown.cancelled() => return Ok(()),
            }
            continue;
        }
        for event in page {
            let position = event.position;
            let event_id = event.event_id.to_string();
            let publish = message(&event, last_id.as_deref())?;
            let ack = js
                .send_publish(config.names.event_subject(&event.stream_id), publish)
                .await
                .context("publishing")?;
            in_flight.push_back((position, ack));
            sequence = drain(&mut in_flight, config.window)
                .await?
                .unwrap_or(sequence);
            after = position;
            last_id = Some(event_id);
        }
        if shutdown.is_cancelled() {
            drain(&mut in_flight, 0).await?;
            return Ok(());
        }
    }
}

fn message(event: &RecordedEvent, previous_id: Option<&str>) -> anyhow::Result<Publish> {
    let mut headers = HeaderMap::new();
    headers.insert(POSITION_HEADER, event.position.to_string().as_str());
    headers.insert(EVENT_TYPE_HEADER, event.event_type.as_str());
    headers.insert(STREAM_HEADER, event.stream_id.as_str());
    let payload = serde_json::to_vec(event).context("encoding an event")?;
    let publish = Publish::build()
        .payload(payload.into())
        .headers(headers)
        .message_id(event.event_id.to_string());
    Ok(match previous_id {
        Some(id) => publish.expected_last_message_id(id),
        None => publish.expected_last_sequence(0),
    })
}

/// Awaits acknowledgements, oldest first, until at most `keep` publishes are in flight; returns
/// the stream sequence of the last one acknowledged, if any was.
async fn drain(
    in_flight: &mut VecDeque<(i64, jetstream::context::PublishAckFuture)>,
    keep: usize,
) -> anyhow::Result<Option<u64>> {
    let mut sequence = None;
    while in_flight.len() > keep {
        let Some((position, ack)) = in_flight.pop_front() else {
            break;
        };
        let ack = ack
            .await
            .with_context(|| format!("JetStream did not acknowledge position {position}"))?;
        metrics::counter!("questlog_relay_published_total").increment(1);
        sequence = Some(ack.sequence);
    }
    Ok(sequence)
}

/// Fails when the stream no longer ends at the message the relay last published: it lost its
/// newest messages, or something else published to it. The relay then starts over from the
/// stream's end, as on any start.
async fn still_ends_at(stream: &jetstream::stream::Stream, sequence: u64) -> anyhow::Result<()> {
    let last = stream
        .get_info()
        .await
        .context("reading the stream's state")?
        .state
        .last_sequence;
    if last != sequence {
        anyhow::bail!(
            "the stream ends at sequence {last}, not at {sequence} where this relay left it; \
             resuming from its end"
        );
    }
    Ok(())
}
