//! `GET /v1/presence`: who is online, from the presence read model.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{query, Consistency, ReadParams};
use crate::projection::PRESENCE;
use crate::snapshot::{answer, begin, checkpoint};
use crate::QueryState;

/// One player online.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct Online {
    player_id: Uuid,
    username: String,
    current_lab: Option<String>,
    since: DateTime<Utc>,
}

/// The answer of `GET /v1/presence`.
#[derive(Debug, Serialize)]
pub(crate) struct Presence {
    position: i64,
    online: Vec<Online>,
}

/// `GET /v1/presence`: every player online, longest online first.
#[tracing::instrument(skip_all)]
pub(crate) async fn online(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    // The history holds every version up to the projection's checkpoint.
    if let Some(position) = consistency.as_of_applied(&state, &[PRESENCE]).await? {
        let mut conn = state.pool.acquire().await?;
        let online: Vec<Online> = sqlx::query_as(
            "SELECT player_id, username, current_lab, since FROM rm_presence_history \
              WHERE int8range(valid_from, valid_to) @> $1::bigint ORDER BY since, player_id",
        )
        .bind(position)
        .fetch_all(&mut *conn)
        .await?;
        return Ok(answer(position, &Presence { position, online }));
    }
    consistency.wait(&state.positions, &[PRESENCE]).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, &[PRESENCE]).await?;
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
                username: v.username?,
                current_lab: v.current_lab,
                since: v.since?,
            })
        })
        .collect())
}
