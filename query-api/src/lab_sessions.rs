//! `GET /v1/players/{id}/labs/{lab_id}`: a player's session of a lab, for that player or an admin.
//!
//! The session's facts (started, furthest step, completed) come from the `labs` projection; the
//! saved file system and current step from the working copy the command side keeps
//! (`lab_workspaces`), which is always the latest save.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use questlog_domain::values::LabId;
use questlog_domain::Role;
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{query, Consistency, ReadParams};
use crate::projection::LABS;
use crate::snapshot::{answer, begin, checkpoint};
use crate::QueryState;

/// A lab session as the route answers it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct LabSessionOut {
    player_id: Uuid,
    lab_id: String,
    /// `in_progress`, or `completed` once the player completed the lab.
    status: String,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    furthest_step: i32,
    current_step: i32,
    vfs_snapshot: Value,
    saved_at: Option<DateTime<Utc>>,
}

/// `GET /v1/players/{id}/labs/{lab_id}` (`me` for self).
#[tracing::instrument(skip_all)]
pub(crate) async fn session(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    path: Result<Path<(String, String)>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let Path((player, lab)) = path?;
    let player_id = if player == "me" {
        actor.identity.0
    } else {
        Uuid::parse_str(&player).map_err(|_| not_found())?
    };
    if player_id != actor.identity.0 && actor.role != Role::Admin {
        return Err(lab_forbidden());
    }
    let lab_id = LabId::parse(&lab).map_err(|_| not_found())?;
    consistency.wait(&state.positions, &[LABS]).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, &[LABS]).await?;
    let session = read_session(&mut tx, player_id, &lab_id)
        .await?
        .ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(answer(position, &session))
}

pub(crate) fn lab_forbidden() -> ApiError {
    ApiError::Client(Problem::forbidden(
        "a lab's state is only for its player (or an admin)",
    ))
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "lab_state_not_found",
        "this player has no saved state of that lab",
    )
}

/// An active session in this snapshot, with its working copy.
pub(crate) async fn read_session(
    conn: &mut PgConnection,
    player_id: Uuid,
    lab_id: &LabId,
) -> Result<Option<LabSessionOut>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.player_id, s.lab_id,
                CASE WHEN s.completed_at IS NULL THEN 'in_progress' ELSE 'completed' END AS status,
                s.started_at, s.completed_at, s.furthest_step,
                coalesce(w.current_step, 0) AS current_step,
                coalesce(w.vfs_snapshot, '{}'::jsonb) AS vfs_snapshot,
                w.saved_at
           FROM rm_lab_sessions s
           LEFT JOIN lab_workspaces w ON w.player_id = s.player_id AND w.lab_id = s.lab_id
          WHERE s.player_id = $1 AND s.lab_id = $2 AND s.active",
    )
    .bind(player_id)
    .bind(lab_id.as_str())
    .fetch_optional(conn)
    .await
}
