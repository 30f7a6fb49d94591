//! Admin reads: how far behind each projection is, and any stream's events with its state folded
//! to a version (straight from the event log, not a read model).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use questlog_domain::{Event, Role};
use questlog_store::{EventStore, PgEventStore};
use questlog_web::{Authenticated, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::params::{query, Consistency, ReadParams};
use crate::snapshot::{answer, begin, checkpoint};
use crate::QueryState;

/// The caller, when it holds an admin token.
fn admin(auth: Result<Authenticated, Problem>) -> Result<(), ApiError> {
    let Authenticated(actor) = auth?;
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(Problem::forbidden("this read needs an admin token").into())
    }
}

/// A projection's progress.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct ProjectionOut {
    name: String,
    position: i64,
    #[sqlx(skip)]
    lag: i64,
    updated_at: Option<DateTime<Utc>>,
}

/// Every projection's progress against the log's head.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Projections {
    head: i64,
    projections: Vec<ProjectionOut>,
}

/// `GET /v1/admin/projections`: each projection's applied position and its lag behind the log's
/// head. The known projections are always listed (position 0 before their first commit), and any
/// other projection with a checkpoint too.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "admin", params(ReadParams),
    summary = "Each projection's applied position and lag (admin)",
    responses((status = 200, body = Projections)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn projections(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    admin(auth)?;
    let consistency = Consistency::parse(query(read)?)?;
    consistency.now_only("the projections' progress")?;
    let known = state.reads.projections();
    consistency.wait(&state.positions, known).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, known).await?;
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let mut projections: Vec<ProjectionOut> = sqlx::query_as(
        "SELECT p.name, coalesce(c.position, 0)::bigint AS position, c.updated_at
           FROM (SELECT unnest($1::text[]) AS name UNION SELECT projection FROM projection_checkpoints) p
           LEFT JOIN projection_checkpoints c ON c.projection = p.name
          ORDER BY p.name",
    )
    .bind(known.iter().map(|p| p.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    for projection in &mut projections {
        projection.lag = (head - projection.position).max(0);
    }
    Ok(answer(position, &Projections { head, projections }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamParams {
    /// The version to fold to (the stream's latest without it).
    to_version: Option<u64>,
}

/// One stored event of a stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = StoredEvent)]
struct EventOut {
    position: i64,
    version: i64,
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
    metadata: Value,
    recorded_at: DateTime<Utc>,
}

/// A stream's events up to a version, and the state they fold to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct StreamOut {
    stream: String,
    version: i64,
    events: Vec<EventOut>,
    state: Value,
}

/// `GET /v1/admin/streams/{stream}?to_version=N`: the stream as it stood at version N (its latest
/// without N): its events up to N and the state they fold to. The answer reflects the log up to
/// its head at the time of the read, which is the `Questlog-Position`.
#[utoipa::path(get, path = "/v1/admin/streams/{stream}", tag = "admin",
    params(("stream" = String, Path, description = "`<kind>` or `<kind>-<key>`"), ReadParams, StreamParams),
    summary = "A stream's events and the state they fold to (admin)",
    responses((status = 200, body = StreamOut)))]
#[tracing::instrument(skip_all, fields(stream = tracing::field::Empty))]
pub(crate) async fn stream(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    stream: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    admin(auth)?;
    let consistency = Consistency::parse(query(read)?)?;
    let to_version = query(params)?.to_version;
    let Path(raw) = stream?;
    let stream = state.domain.stream(&raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_stream",
            format!(
                "{e}; a stream is `<kind>` or `<kind>-<key>`, of a kind a running module declares"
            ),
        )
    })?;
    tracing::Span::current().record("stream", tracing::field::display(&stream));

    let store = PgEventStore::new(state.pool.clone());
    // The head first: events are visible in position order, so every event at or below it is
    // read below, and the ones after it are left out to keep the answer at one point of the log.
    let mut head = store.head().await?;
    if let Some((min_position, timeout)) = consistency.wait {
        if min_position > head {
            // A position a client holds is in the primary's log already; a standby read from
            // holds it a moment later.
            state.positions.log(min_position, head, timeout).await?;
            head = store.head().await?;
        }
    }
    // The stream as it stood then: its events at or below that position.
    if let Some(position) = consistency
        .as_of_applied(&state.pool, &state.positions, &[])
        .await?
    {
        head = position;
    }
    if let Some((min_position, _)) = consistency.wait {
        // The log is the source of truth: a position a client holds is already in it.
        if min_position > head {
            return Err(crate::error::NotCaughtUp {
                projection: "events".to_owned(),
                applied: head,
                wanted: min_position,
            }
            .into());
        }
    }
    let mut recorded: Vec<_> = store
        .read_streams(&[stream.to_string()])
        .await?
        .into_iter()
        .filter(|e| e.position <= head)
        .collect();
    store.open(&state.domain, &mut recorded).await?;
    if recorded.is_empty() {
        return Err(ApiError::not_found(
            "not_found",
            format!("the stream {stream} has no events"),
        ));
    }
    let upto: Vec<_> = recorded
        .into_iter()
        .filter(|e| {
            to_version.is_none_or(|n| u64::try_from(e.stream_version).is_ok_and(|v| v <= n))
        })
        .collect();
    let events: Vec<Event> = upto
        .iter()
        .map(|e| {
            state
                .domain
                .decode(&e.event_type, e.schema_version, &e.data)
        })
        .collect::<Result<_, _>>()
        .map_err(ApiError::Decode)?;
    let folded = state.domain.fold(&stream, &events);
    let out = StreamOut {
        stream: stream.to_string(),
        version: upto.last().map_or(0, |e| e.stream_version),
        events: upto
            .into_iter()
            .map(|e| EventOut {
                position: e.position,
                version: e.stream_version,
                event_type: e.event_type,
                data: e.data,
                metadata: e.metadata,
                recorded_at: e.recorded_at,
            })
            .collect(),
        state: state.reads.state_json(&stream, &folded),
    };
    Ok(answer(head, &out))
}
