//! The Postgres event store: one table, appended to through `questlog_append` in one round trip.

use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::{
    AppendBatch, Appended, Beside, EventStore, ExpectedVersion, RecordedEvent, StoreError,
    StoredResponse,
};

/// The kernel's schema, embedded at build time from `migrations/` (a deployment runs it with its
/// modules' own: [`crate::migrator`]).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens a pool that fails fast (a few seconds) when the database is away, so callers can answer
/// 503 instead of hanging.
///
/// # Errors
/// When the URL is malformed. The connection itself is made lazily.
pub fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options))
}

/// The event log in Postgres.
#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
}

type EventQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

const EVENT_COLUMNS: &str =
    "position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at";

fn recorded(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get("stream_version")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        data: row.try_get("data")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Up to `limit` events after `position`, in log order, on any connection or pool. Gap-free: the
/// append lock makes positions visible in order (see `questlog_append`).
///
/// # Errors
/// When the query fails.
pub async fn read_after<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
    );
    // Each row decoded as it arrives, while Postgres sends the next ones.
    sqlx::query(&sql)
        .bind(after)
        .bind(limit)
        .fetch(executor)
        .map(|row| row.and_then(|row| recorded(&row)))
        .try_collect()
        .await
        .map_err(StoreError::from_sqlx)
}

/// Every event of `streams` at or below `position`, by stream and version, on any connection.
///
/// # Errors
/// When the query fails.
pub async fn read_streams_until<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    streams: &[String],
    position: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ANY($1) AND position <= $2 \
         ORDER BY stream_id, stream_version"
    );
    let rows = sqlx::query(&sql)
        .bind(streams)
        .bind(position)
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(recorded)
        .collect::<Result<_, _>>()
        .map_err(StoreError::from_sqlx)
}

impl PgEventStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn events(&self, query: EventQuery<'_>) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(recorded)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from_sqlx)
    }
}

/// The beside writes by kind, in the order each kind first appears, each kind's items in order.
fn grouped(beside: Vec<Beside>) -> (Vec<&'static str>, Vec<serde_json::Value>) {
    let mut kinds: Vec<&'static str> = Vec::new();
    let mut items: Vec<Vec<serde_json::Value>> = Vec::new();
    for write in beside {
        match kinds.iter().position(|k| *k == write.kind) {
            Some(i) => items[i].push(write.item),
            None => {
                kinds.push(write.kind);
                items.push(vec![write.item]);
            }
        }
    }
    (
        kinds,
        items.into_iter().map(serde_json::Value::Array).collect(),
    )
}

fn version_code(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
    }
}

fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        let (expect_streams, expect_versions): (Vec<String>, Vec<i64>) = batch
            .expectations
            .into_iter()
            .map(|(stream, expected)| (stream, version_code(expected)))
            .unzip();
        let n = batch.events.len();
        let mut ids = Vec::with_capacity(n);
        let mut streams = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut schemas = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        let mut meta = Vec::with_capacity(n);
        for e in batch.events {
            ids.push(e.event_id);
            streams.push(e.stream_id);
            types.push(e.event_type);
            schemas.push(e.schema_version);
            data.push(e.data);
            meta.push(e.metadata);
        }
        let m = batch.idempotent.len();
        let mut identities = Vec::with_capacity(m);
        let mut keys = Vec::with_capacity(m);
        let mut hashes = Vec::with_capacity(m);
        let mut commands = Vec::with_capacity(m);
        let mut firsts = Vec::with_capacity(m);
        let mut counts = Vec::with_capacity(m);
        for c in batch.idempotent {
            identities.push(c.record.identity);
            keys.push(c.record.key);
            hashes.push(c.record.request_hash);
            commands.push(c.record.command_id);
            firsts.push(index(c.first_event));
            counts.push(index(c.event_count));
        }
        // Batches with nothing beside the log (the hot path) skip the wider function.
        let beside = (!batch.beside.is_empty()).then(|| grouped(batch.beside));
        let sql = if beside.is_some() {
            "SELECT positions, versions, head, conflicts FROM questlog_append(\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        } else {
            "SELECT positions, versions, head, conflicts FROM questlog_append(\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        };
        let mut query = sqlx::query(sql)
            .bind(expect_streams)
            .bind(expect_versions)
            .bind(ids)
            .bind(streams)
            .bind(types)
            .bind(schemas)
            .bind(data)
            .bind(meta)
            .bind(identities)
            .bind(keys)
            .bind(hashes)
            .bind(commands)
            .bind(firsts)
            .bind(counts);
        if let Some((kinds, items)) = beside {
            query = query
                .bind(kinds)
                .bind(items)
                .bind(batch.at.unwrap_or_else(chrono::Utc::now));
        }
        let row = query.fetch_one(&self.pool).await?;
        let conflicts: Vec<String> = row.try_get("conflicts")?;
        if !conflicts.is_empty() {
            return Err(StoreError::Conflict(conflicts));
        }
        Ok(Appended {
            positions: row.try_get("positions")?,
            versions: row.try_get("versions")?,
            head: row.try_get("head")?,
        })
    }

    async fn read_streams(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version"
        );
        self.events(sqlx::query(&sql).bind(streams)).await
    }

    async fn open(
        &self,
        domain: &questlog_domain::Domain,
        events: &mut [RecordedEvent],
    ) -> Result<(), StoreError> {
        let legacy = domain.legacy_personal();
        if crate::sealing::subjects(legacy, events).is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        crate::sealing::open_all(&mut conn, legacy, events).await
    }

    async fn load_keys(
        &self,
        ring: &mut crate::sealing::KeyRing,
        subjects: &[Uuid],
    ) -> Result<(), StoreError> {
        if subjects.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        ring.load_missing(&mut conn, subjects).await
    }

    async fn read_latest(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        // One backward probe of (stream_id, stream_version) per stream: the older events (and
        // their values) are never read.
        let sql = format!(
            "SELECT e.* FROM unnest($1::text[]) AS s(id) CROSS JOIN LATERAL \
               (SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = s.id \
                 ORDER BY stream_version DESC LIMIT 1) e"
        );
        self.events(sqlx::query(&sql).bind(streams)).await
    }

    async fn read_versions(
        &self,
        versions: &[(String, i64)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (streams, numbers): (Vec<&str>, Vec<i64>) =
            versions.iter().map(|(s, v)| (s.as_str(), *v)).unzip();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
              WHERE (stream_id, stream_version) IN \
                    (SELECT * FROM unnest($1::text[], $2::bigint[]))"
        );
        self.events(sqlx::query(&sql).bind(streams).bind(numbers))
            .await
    }

    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        );
        self.events(sqlx::query(&sql).bind(after).bind(limit)).await
    }

    async fn head(&self) -> Result<i64, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(head)
    }

    async fn idempotent_response(
        &self,
        identity: Uuid,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT request_hash, command_id, positions, head FROM idempotency_keys WHERE identity = $1 AND key = $2",
        )
        .bind(identity)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let positions: Vec<i64> = row.try_get("positions")?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY($1) ORDER BY position"
        );
        let events = self.events(sqlx::query(&sql).bind(positions)).await?;
        Ok(Some(StoredResponse {
            request_hash: row.try_get("request_hash")?,
            command_id: row.try_get("command_id")?,
            events,
            head: row.try_get("head")?,
        }))
    }
}
