//! questlog's event log. The [`EventStore`] trait is deliberately narrow (append a batch, read
//! streams, tail the log, look up an idempotent response) so that another backend can stand
//! behind it; [`PgEventStore`] is the Postgres one.

pub mod archive;
mod error;
pub mod leader;
pub mod lineage;
pub mod migrations;
mod postgres;
pub mod sealing;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

pub use error::{StoreError, BESIDE_CONFLICT};

/// The transaction-scoped advisory lock every append takes before drawing positions (see
/// `questlog_append`): whoever holds it holds every append of the database back.
pub const APPEND_LOCK: i64 = 4_242_424_242;
pub use migrations::{migrator, MigrationsExt};
pub use postgres::{connect, read_after, read_streams_until, PgEventStore, MIGRATOR};

/// What an append expects of a stream's version when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever the stream holds.
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream must be at exactly this version (its number of events).
    Exact(u64),
}

impl ExpectedVersion {
    /// The expectation that the stream is still at `version` (0: no stream).
    pub fn at(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }
}

/// An event on its way into the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub stream_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    /// Command id, correlation id, causation id and acting identity.
    pub metadata: Value,
}

/// An event as the log holds it (and as the bus carries it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

/// A command's response kept under its idempotency key.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub identity: Uuid,
    pub key: String,
    pub request_hash: String,
    pub command_id: Uuid,
}

/// One idempotent command of a batch: its record, and which of the batch's events are its own.
#[derive(Debug, Clone)]
pub struct IdempotentCommand {
    pub record: IdempotencyRecord,
    /// Index of its first event in [`AppendBatch::events`].
    pub first_event: usize,
    pub event_count: usize,
}

/// Everything one atomic append writes: events (in order) checked against expectations, and what
/// the batch's commands keep beside the log.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    pub expectations: Vec<(String, ExpectedVersion)>,
    pub events: Vec<NewEvent>,
    pub idempotent: Vec<IdempotentCommand>,
    /// State the batch's commands keep beside the log, in order: it is durable exactly when the
    /// batch is, but it is not history (only the latest value is kept). Each kind is written by
    /// its module's SQL function, `questlog_beside_<kind>`; a claim one of them finds no longer
    /// holds makes the append [`StoreError::Conflict`] with the function's own conflict names,
    /// and nothing is written.
    pub beside: Vec<Beside>,
    /// When the batch was decided: the time the beside writes record.
    pub at: Option<DateTime<Utc>>,
}

pub use questlog_domain::Beside;

/// Where the appended events landed: `positions[i]` and `versions[i]` belong to `events[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub positions: Vec<i64>,
    pub versions: Vec<i64>,
    /// The log's head after the append.
    pub head: i64,
}

/// A stored idempotent response: the command id and the events it appended.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub request_hash: String,
    pub command_id: Uuid,
    pub events: Vec<RecordedEvent>,
    pub head: i64,
}

/// The event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends a batch atomically: all of it, or nothing and [`StoreError::Conflict`].
    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError>;

    /// Every event of the given streams, by stream and then version, as recorded (personal
    /// fields sealed: see [`EventStore::open`]).
    async fn read_streams(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Opens the personal fields of events read back ([`sealing::open_all`]), with the keys as
    /// the store holds them now.
    async fn open(
        &self,
        domain: &questlog_domain::Domain,
        events: &mut [RecordedEvent],
    ) -> Result<(), StoreError>;

    /// The keys of `subjects` as the store holds them now, added to `ring` (for sealing).
    async fn load_keys(
        &self,
        ring: &mut sealing::KeyRing,
        subjects: &[Uuid],
    ) -> Result<(), StoreError>;

    /// The latest event of each of the given streams that has one.
    async fn read_latest(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events at the given `(stream, version)`s that exist.
    async fn read_versions(
        &self,
        versions: &[(String, i64)],
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events after `position`, in log order. Never skips an event that commits
    /// later with a lower position: a reader may tail the log by position alone.
    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last event in the log (0 when empty).
    async fn head(&self) -> Result<i64, StoreError>;

    /// The response stored for an idempotency key of an identity.
    async fn idempotent_response(
        &self,
        identity: Uuid,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError>;
}
