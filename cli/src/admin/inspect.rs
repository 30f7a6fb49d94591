//! Read-only views of the log for operators: a stream's history, its state at a version or a time
//! (folded by the domain, exactly as `GET /v1/admin/streams/{stream}` folds it), and statistics of
//! the log and the projections. None of them writes anything.

use std::io::Write;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use questlog_domain::{Event, StreamId};
use questlog_query_api::Reads;
use questlog_store::{EventStore, PgEventStore, RecordedEvent};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::output::{listing, record};

const STREAM_FORMS: &str = "a stream is `<kind>` or `<kind>-<key>`, of a kind a running module \
                            declares";

/// A stream's id and all of its events, in version order; an error when the id is malformed or
/// the stream has no events (a typo should not look like an empty stream).
async fn load(pool: &PgPool, raw: &str) -> anyhow::Result<(StreamId, Vec<RecordedEvent>)> {
    let domain = crate::modules::app().domain();
    let stream = domain
        .stream(raw)
        .map_err(|e| anyhow!("{e}; {STREAM_FORMS}"))?;
    let store = PgEventStore::new(pool.clone());
    let mut events = store
        .read_streams(&[stream.to_string()])
        .await
        .context("reading the event log")?;
    // An erased player's personal fields read as erased here as everywhere.
    store
        .open(&domain, &mut events)
        .await
        .context("reading the keys of personal data")?;
    if events.is_empty() {
        bail!("the stream {stream} has no events");
    }
    Ok((stream, events))
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[derive(Debug, Serialize)]
struct HistoryRow {
    version: i64,
    position: i64,
    #[serde(rename = "type")]
    event_type: String,
    recorded_at: DateTime<Utc>,
    data: Value,
}

/// `questlog history`: the events of `stream` with versions from `from` to `to` (both included,
/// each open when `None`), as a table or a JSON array.
///
/// # Errors
/// When the stream id is malformed, the stream has no events, `from` is after `to`, the log
/// cannot be read, or writing fails.
pub async fn history(
    pool: &PgPool,
    stream: &str,
    from: Option<u64>,
    to: Option<u64>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            bail!("--from {from} is after --to {to}");
        }
    }
    let (_, events) = load(pool, stream).await?;
    let rows: Vec<HistoryRow> = events
        .into_iter()
        .filter(|e| {
            u64::try_from(e.stream_version)
                .is_ok_and(|v| from.is_none_or(|from| v >= from) && to.is_none_or(|to| v <= to))
        })
        .map(|e| HistoryRow {
            version: e.stream_version,
            position: e.position,
            event_type: e.event_type,
            recorded_at: e.recorded_at,
            data: e.data,
        })
        .collect();
    listing(
        out,
        json,
        &["version", "position", "type", "recorded_at", "data"],
        &rows,
        |r| {
            vec![
                r.version.to_string(),
                r.position.to_string(),
                r.event_type.clone(),
                timestamp(r.recorded_at),
                r.data.to_string(),
            ]
        },
    )
}

/// Where `questlog state` folds a stream to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Up to and including this version (0: before the first event).
    Version(u64),
    /// Up to the last event recorded at or before this time.
    Time(DateTime<Utc>),
}

impl FromStr for At {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(version) = s.parse() {
            return Ok(Self::Version(version));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self::Time(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "{s:?} is neither a stream version (a whole number) nor an RFC 3339 time \
                     such as 2026-11-22T01:20:21Z"
                )
            })
    }
}

/// `questlog state`: the state of `stream` folded by the domain up to `at`. The JSON's `state`
/// is the one `GET /v1/admin/streams/{stream}?to_version=N` answers for the same version.
///
/// # Errors
/// When the stream id is malformed, the stream has no events, the version is beyond the stream's
/// latest, an event cannot be decoded, or writing fails.
pub async fn state(
    pool: &PgPool,
    stream: &str,
    at: At,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (id, events) = load(pool, stream).await?;
    let latest = events.last().map_or(0, |e| e.stream_version);
    let version = match at {
        At::Version(wanted) => {
            // Unlike the HTTP route, which answers the latest state for a version beyond it, an
            // operator asking for a version that does not exist more likely mistyped it.
            match i64::try_from(wanted) {
                Ok(v) if v <= latest => v,
                _ => bail!("the stream {id} is at version {latest}: it has no version {wanted}"),
            }
        }
        At::Time(t) => events
            .iter()
            .filter(|e| e.recorded_at <= t)
            .map(|e| e.stream_version)
            .max()
            .unwrap_or(0),
    };
    let upto: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.stream_version <= version)
        .collect();
    // The modules' own fold and rendering, as the admin stream route has them.
    let app = crate::modules::app();
    let domain = app.domain();
    let decoded: Vec<Event> = upto
        .iter()
        .map(|e| {
            domain
                .decode(&e.event_type, e.schema_version, &e.data)
                .with_context(|| format!("decoding version {} of {id}", e.stream_version))
        })
        .collect::<anyhow::Result<_>>()?;
    let state = Reads::of(&app).state_json(&id, &domain.fold(&id, &decoded));
    let last = upto.last();
    let mut fields = vec![
        ("stream", json!(id.to_string())),
        ("version", json!(version)),
        ("position", json!(last.map(|e| e.position))),
        ("recorded_at", json!(last.map(|e| timestamp(e.recorded_at)))),
    ];
    if json {
        fields.push(("state", state));
        return record(out, true, &fields);
    }
    // For people, the state's own fields as lines of their own rather than one long JSON line.
    if let Value::Object(map) = &state {
        fields.extend(map.iter().map(|(k, v)| (k.as_str(), v.clone())));
    }
    record(out, false, &fields)
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct ProjectionRow {
    name: String,
    position: i64,
    #[sqlx(skip)]
    lag: i64,
    updated_at: Option<DateTime<Utc>>,
}

/// `questlog stats`: the number of events and streams, the log's head and size on disk, and each
/// projection's checkpoint and lag (as `GET /v1/admin/projections` computes them).
///
/// # Errors
/// When the database cannot be read or writing fails.
pub async fn stats(pool: &PgPool, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    // One snapshot, so that the counts, the head and the checkpoints describe the same moment.
    let mut tx = pool.begin().await.context("connecting to the database")?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (events, streams, head, size): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT stream_id), coalesce(max(position), 0)::bigint,
                pg_total_relation_size('events')
           FROM events",
    )
    .fetch_one(&mut *tx)
    .await
    .context("counting the events")?;
    // The query of `GET /v1/admin/projections`: the known projections always, at 0 before their
    // first commit, and any other projection that has a checkpoint.
    let mut projections: Vec<ProjectionRow> = sqlx::query_as(
        "SELECT p.name, coalesce(c.position, 0)::bigint AS position, c.updated_at
           FROM (SELECT unnest($1::text[]) AS name UNION SELECT projection FROM projection_checkpoints) p
           LEFT JOIN projection_checkpoints c ON c.projection = p.name
          ORDER BY p.name",
    )
    .bind(
        Reads::of(&crate::modules::app())
            .projections()
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await
    .context("reading the projections' checkpoints")?;
    tx.commit().await?;
    for projection in &mut projections {
        projection.lag = (head - projection.position).max(0);
    }

    if json {
        return record(
            out,
            true,
            &[
                ("events", json!(events)),
                ("streams", json!(streams)),
                ("head", json!(head)),
                ("size_bytes", json!(size)),
                ("projections", serde_json::to_value(&projections)?),
            ],
        );
    }
    let size = u64::try_from(size).unwrap_or(0);
    record(
        out,
        false,
        &[
            ("events", json!(events)),
            ("streams", json!(streams)),
            ("head", json!(head)),
            (
                "size",
                json!(format!("{} ({size} bytes)", indicatif::HumanBytes(size))),
            ),
        ],
    )?;
    writeln!(out)?;
    listing(
        out,
        false,
        &["projection", "position", "lag", "updated_at"],
        &projections,
        |p| {
            vec![
                p.name.clone(),
                p.position.to_string(),
                p.lag.to_string(),
                p.updated_at.map_or_else(|| "-".to_owned(), timestamp),
            ]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_is_a_version_and_an_rfc_3339_string_is_a_time() {
        assert_eq!("0".parse::<At>(), Ok(At::Version(0)));
        assert_eq!("12".parse::<At>(), Ok(At::Version(12)));
        let t = DateTime::parse_from_rfc3339("2026-11-22T02:20:21+01:00")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!("2026-11-22T02:20:21+01:00".parse::<At>(), Ok(At::Time(t)));
    }

    #[test]
    fn anything_else_is_refused_with_both_forms_named() {
        let err = "yesterday".parse::<At>().expect_err("refused");
        assert!(
            err.contains("stream version") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!("-1".parse::<At>().is_err());
    }
}
