//! One log, one history: checks that the JetStream stream and the read models derived from the
//! log belong to *this* database's log (see [`questlog_store::lineage`]).
//!
//! The stream belongs when its last message is an event this log holds at that position. It does
//! not when it was filled by another deployment sharing the NATS prefix, or when the database was
//! restored from a backup taken before the stream's newest events. A stream that lost its newest
//! messages (a NATS server that lost the tail of its file store) still belongs: the relay
//! republishes what is missing.

use async_nats::jetstream::{self, context::GetStreamErrorKind};
use questlog_store::lineage::{first_foreign, foreign_checkpoints};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Names;

/// Where derived state and this database's log disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The stream's newest message is not an event of this log.
    #[error(
        "the JetStream stream {stream} holds an event this database's log does not \
         (position {position}, event {event_id}; the log's head is {head}): it was filled by \
         another deployment's log, or by this one before a restore from a backup"
    )]
    Stream {
        stream: String,
        position: i64,
        event_id: Uuid,
        head: i64,
    },
    /// A read model's checkpoint is not a point of this log.
    #[error(
        "read model {projection} reflects position {position}, which is not an event of this \
         database's log (its head is {head})"
    )]
    ReadModel {
        projection: String,
        position: i64,
        head: i64,
    },
}

impl Mismatch {
    /// What an operator does about it.
    pub const REMEDY: &'static str = "stop every questlog process of this deployment that uses \
        this NATS prefix, make sure no other deployment still needs the stream (or give this one \
        its own QUESTLOG_NATS_PREFIX), then run `questlog repair`";
}

/// The newest message of the stream, as far as lineage goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTail {
    /// Its stream sequence.
    pub sequence: u64,
    pub position: i64,
    pub event_id: Uuid,
}

/// What a stream says of itself: when it was created (a stream deleted and created again is
/// another one, whose sequences count anew) and its newest message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// The stream's creation time, in nanoseconds since the epoch, as text.
    pub created: String,
    /// The sequence of its oldest message (after its last when it holds none): a bounded
    /// stream drops its oldest messages, so it may be far above 1.
    pub first_sequence: u64,
    /// The sequence of the last message it was given (kept when its bound dropped every
    /// message: the next one is this plus 1).
    pub last_sequence: u64,
    pub tail: Option<StreamTail>,
}

#[derive(Deserialize)]
struct Published {
    position: i64,
    event_id: Uuid,
}

/// The log's stream as it is now, or `None` when it does not exist.
///
/// # Errors
/// When JetStream cannot be asked, or the newest message is not one the relay wrote.
pub async fn stream_state(
    js: &jetstream::Context,
    names: &Names,
) -> anyhow::Result<Option<StreamState>> {
    let stream = match js.get_stream(names.events_stream()).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(None)
        }
        Err(e) => anyhow::bail!(
            "reading the JetStream stream {}: {e}",
            names.events_stream()
        ),
    };
    state_of(&stream).await.map(Some)
}

/// What `stream` (the log's, already opened) says of itself now.
///
/// # Errors
/// When JetStream cannot be asked, or the newest message is not one the relay wrote.
pub async fn state_of(stream: &jetstream::stream::Stream) -> anyhow::Result<StreamState> {
    let info = stream
        .get_info()
        .await
        .map_err(|e| anyhow::anyhow!("reading the JetStream stream's state: {e}"))?;
    let created = info.created.unix_timestamp_nanos().to_string();
    let last = info.state.last_sequence;
    let first_sequence = info.state.first_sequence.max(1);
    if info.state.messages == 0 || last == 0 {
        return Ok(StreamState {
            created,
            first_sequence: first_sequence.max(last + 1),
            last_sequence: last,
            tail: None,
        });
    }
    let message = stream
        .get_raw_message(last)
        .await
        .map_err(|e| anyhow::anyhow!("reading the stream's newest message: {e}"))?;
    let published: Published = serde_json::from_slice(&message.payload).map_err(|e| {
        anyhow::anyhow!("the stream's newest message is not an event of questlog's: {e}")
    })?;
    Ok(StreamState {
        created,
        first_sequence,
        last_sequence: last,
        tail: Some(StreamTail {
            sequence: last,
            position: published.position,
            event_id: published.event_id,
        }),
    })
}

/// Whether the stream's newest message is this log's.
///
/// # Errors
/// When the log cannot be read.
pub async fn check_tail(
    conn: &mut PgConnection,
    names: &Names,
    tail: Option<&StreamTail>,
) -> anyhow::Result<Option<Mismatch>> {
    let Some(tail) = tail else {
        return Ok(None);
    };
    if first_foreign(conn, &[(tail.position, tail.event_id)])
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(Some(Mismatch::Stream {
        stream: names.events_stream(),
        position: tail.position,
        event_id: tail.event_id,
        head: head(conn).await?,
    }))
}

/// Every mismatch between this log and the stream (when `js` is given) and the read models.
///
/// # Errors
/// When Postgres or JetStream cannot be asked.
pub async fn check(
    conn: &mut PgConnection,
    js: Option<&jetstream::Context>,
    names: &Names,
) -> anyhow::Result<Vec<Mismatch>> {
    let mut found = Vec::new();
    if let Some(js) = js {
        if let Some(state) = stream_state(js, names).await? {
            found.extend(check_tail(conn, names, state.tail.as_ref()).await?);
        }
    }
    found.extend(
        foreign_checkpoints(conn)
            .await?
            .into_iter()
            .map(|c| Mismatch::ReadModel {
                projection: c.projection,
                position: c.position,
                head: c.head,
            }),
    );
    Ok(found)
}

/// The log's head.
///
/// # Errors
/// When the query fails.
pub async fn head(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(conn)
        .await
}
