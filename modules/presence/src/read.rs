//! The presence module's reads: `GET /v1/presence` (who is online, from the presence read model)
//! and the `presence` live topic, whose changes are one row per event, each that player's
//! presence as of its event (from the presence history), like the as-of read.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_bus::{Change, ProjectionName, TopicKind};
use questlog_domain::{Actor, App};
use questlog_query_api::live::{
    changed_ids, to_value, updates_of, Options, Reading, Source, Topic, TopicKindReads, Update,
};
use questlog_query_api::params::{query, Consistency, ReadParams};
use questlog_query_api::snapshot::{answer, begin, checkpoint};
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::names::{PRESENCE, PRESENCE_TOPIC};
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

/// The projection presence is read from.
const ONLINE: &[ProjectionName] = &[PRESENCE];

/// The module's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(online))]
struct ApiDoc;

/// Registers the module's route and topic.
pub(crate) fn register_reads(app: &mut App) {
    app.add_read_routes(Router::new().route("/v1/presence", get(online)))
        .add_topic(PresenceTopics)
        .add_read_projections(ONLINE);
    app.add_api_docs(ApiDoc::openapi());
}

/// One player online.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Online {
    player_id: Uuid,
    /// `null` once the player is erased.
    username: Option<String>,
    current_lab: Option<String>,
    since: DateTime<Utc>,
}

/// The answer of `GET /v1/presence`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Presence {
    position: i64,
    online: Vec<Online>,
}

/// `GET /v1/presence`: every player online, longest online first.
#[utoipa::path(get, path = "/v1/presence", tag = "presence", params(ReadParams),
    summary = "Every player online, longest online first",
    responses((status = 200, body = Presence)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn online(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    // The history holds every version up to the projection's checkpoint.
    if let Some(position) = consistency
        .as_of_applied(&state.pool, &state.positions, ONLINE)
        .await?
    {
        let mut conn = state.pool.acquire().await?;
        let online: Vec<Online> = sqlx::query_as(&format!(
            "SELECT player_id, username, current_lab, since FROM rm_presence_history \
              WHERE {} ORDER BY since, player_id",
            questlog_query_api::as_of::valid_at("$1::bigint")
        ))
        .bind(position)
        .fetch_all(&mut *conn)
        .await?;
        return Ok(answer(position, &Presence { position, online }));
    }
    consistency.wait(&state.positions, ONLINE).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, ONLINE).await?;
    let presence = read_presence(&mut tx, position).await?;
    tx.commit().await?;
    Ok(answer(position, &presence))
}

/// Every player online in this snapshot, longest online first, as reflecting `position`. The read
/// behind `GET /v1/presence` and the `presence` live topic's snapshot.
pub(crate) async fn read_presence(
    conn: &mut PgConnection,
    position: i64,
) -> Result<Presence, sqlx::Error> {
    let online: Vec<Online> = sqlx::query_as(
        "SELECT player_id, username, current_lab, since FROM rm_presence WHERE online \
         ORDER BY since, player_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(Presence { position, online })
}

/// Players' presence each as of a position (`None`: offline then), from the history the as-of
/// read answers from: the `presence` live topic's changes, each exactly the as-of read at its
/// position.
pub(crate) async fn online_as_of(
    conn: &mut PgConnection,
    at: &[(Uuid, i64)],
) -> Result<Vec<Option<Online>>, sqlx::Error> {
    /// The version valid at one of the positions, if any.
    #[derive(sqlx::FromRow)]
    struct Version {
        player_id: Option<Uuid>,
        username: Option<String>,
        current_lab: Option<String>,
        since: Option<DateTime<Utc>>,
    }
    let (players, positions): (Vec<Uuid>, Vec<i64>) = at.iter().copied().unzip();
    let rows: Vec<Version> = sqlx::query_as(
        "SELECT h.player_id, h.username, h.current_lab, h.since \
           FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS a(player_id, position, n) \
           LEFT JOIN rm_presence_history h ON h.player_id = a.player_id \
            AND h.valid_from <= a.position AND h.valid_to > a.position \
          ORDER BY a.n",
    )
    .bind(&players)
    .bind(&positions)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|v| {
            Some(Online {
                player_id: v.player_id?,
                username: v.username,
                current_lab: v.current_lab,
                since: v.since?,
            })
        })
        .collect())
}

/// The `presence` topic kind.
struct PresenceTopics;

impl TopicKindReads for PresenceTopics {
    fn kind(&self) -> TopicKind {
        PRESENCE_TOPIC
    }

    fn form(&self) -> &'static str {
        "presence"
    }

    fn parse(
        &self,
        _raw: &str,
        rest: Option<&str>,
        _caller: &Actor,
        _options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        Ok(rest
            .is_none()
            .then(|| Arc::new(PresenceTopic) as Arc<dyn Topic>))
    }
}

/// Who is online.
#[derive(Debug)]
struct PresenceTopic;

impl Topic for PresenceTopic {
    fn name(&self) -> String {
        PRESENCE_TOPIC.as_str().to_owned()
    }

    fn projections(&self) -> &'static [ProjectionName] {
        ONLINE
    }

    fn sources(&self) -> Vec<Source> {
        vec![Source::all(PRESENCE_TOPIC.as_str())]
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let position = reading.checkpoint(PRESENCE);
            Ok((position, to_value(&read_presence(conn, position).await?)))
        }
        .boxed()
    }

    fn changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        _reading: &'a mut Reading,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<Vec<Update>, ApiError>> {
        async move {
            // One update per changed player, keyed by its id, as of its change.
            let at = changed_ids(changes);
            let rows = online_as_of(conn, &at).await?;
            Ok(updates_of(at, rows))
        }
        .boxed()
    }
}
