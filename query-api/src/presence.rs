//! `GET /v1/presence`: who is online, from the presence read model.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{query, Consistency, ReadParams};
use crate::projection::PRESENCE;
use crate::snapshot::{answer, begin, checkpoint};
use crate::QueryState;

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Online {
    player_id: Uuid,
    username: String,
    current_lab: Option<String>,
    since: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Presence {
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
    consistency.wait(&state.positions, &[PRESENCE]).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, &[PRESENCE]).await?;
    let online: Vec<Online> = sqlx::query_as(
        "SELECT player_id, username, current_lab, since FROM rm_presence ORDER BY since, player_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(answer(position, &Presence { position, online }))
}
