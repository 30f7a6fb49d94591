//! The lab sessions' reads: `GET /v1/players/{id}/labs/{lab_id}`, a player's session of a lab,
//! for that player or an admin, and the `lab:<player>:<lab_id>` live topic, which sends the same
//! answer whenever the session's facts change.
//!
//! The session's facts (started, furthest step, completed) come from the `labs` projection; the
//! saved file system and current step from the working copy the command side keeps
//! (`lab_workspaces`), which is always the latest save.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_academy::values::{LabId, PlayerId};
use questlog_academy::StreamId as AcademyStream;
use questlog_bus::{Change, ProjectionName, TopicKind};
use questlog_domain::{Actor, App, Role};
use questlog_query_api::as_of::{decode, events_until};
use questlog_query_api::live::{
    invalid_topic, to_value, Options, Reading, Source, Topic, TopicKindReads, Update,
};
use questlog_query_api::params::{query, Consistency, ReadParams};
use questlog_query_api::snapshot::{answer, begin, checkpoint};
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::event::Event;
use crate::lab_stream;
use crate::names::{LABS, LAB_TOPIC};
use crate::session::LabSession;
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

/// The projection a session's facts are read from.
const SESSIONS: &[ProjectionName] = &[LABS];

/// The module's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(session))]
struct ApiDoc;

/// Registers the module's route and topic.
pub(crate) fn register(app: &mut App) {
    app.add_read_routes(Router::new().route("/v1/players/{id}/labs/{lab_id}", get(session)))
        .add_topic(LabTopics)
        .add_read_projections(SESSIONS);
    app.add_api_docs(ApiDoc::openapi());
}

/// A lab session as the route answers it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LabSessionOut {
    player_id: Uuid,
    lab_id: String,
    /// `in_progress`, or `completed` once the player completed the lab.
    status: String,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    furthest_step: i32,
    current_step: i32,
    #[schema(value_type = Object)]
    vfs_snapshot: Value,
    saved_at: Option<DateTime<Utc>>,
}

/// `GET /v1/players/{id}/labs/{lab_id}` (`me` for self).
#[utoipa::path(get, path = "/v1/players/{id}/labs/{lab_id}", tag = "lab_sessions",
    params(("id" = String, Path, description = "A player id, or `me`"), ("lab_id" = String, Path),
        ReadParams),
    summary = "A player's session of a lab (the player or an admin)",
    responses((status = 200, body = LabSessionOut)))]
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
    if let Some(as_of) = consistency.as_of {
        let mut tx = begin(&state.pool).await?;
        let position = as_of.resolve(&mut tx).await?;
        let session = session_as_of(&mut tx, player_id, &lab_id, position)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await?;
        return Ok(answer(position, &session));
    }
    consistency.wait(&state.positions, SESSIONS).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, SESSIONS).await?;
    let session = read_session(&mut tx, player_id, &lab_id)
        .await?
        .ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(answer(position, &session))
}

fn lab_forbidden() -> ApiError {
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

/// The session as it stood at `position`: its stream folded by the domain up to there, completed
/// when the player's stream says so by then. The working copy has no past: it is today's (only
/// the latest save is kept; see ARCHITECTURE.md).
async fn session_as_of(
    conn: &mut PgConnection,
    player_id: Uuid,
    lab_id: &LabId,
    position: i64,
) -> Result<Option<LabSessionOut>, ApiError> {
    let lab_stream = lab_stream(PlayerId(player_id), lab_id).to_string();
    let player_stream = AcademyStream::Player(PlayerId(player_id)).to_string();
    let recorded = events_until(
        conn,
        &[lab_stream.clone(), player_stream.clone()],
        position,
        &[],
    )
    .await?;
    let (lab, player): (Vec<_>, Vec<_>) = recorded
        .into_iter()
        .partition(|e| e.stream_id == lab_stream);
    let mut session = LabSession::default();
    for event in decode::<Event>(&lab)? {
        session.evolve(&event);
    }
    if !session.active {
        return Ok(None);
    }
    let started_at = lab
        .iter()
        .rev()
        .find(|e| e.event_type == "lab_started")
        .map(|e| e.recorded_at);
    // Only the academy's completions: the player's stream also holds what other modules record.
    let completions: Vec<_> = player
        .into_iter()
        .filter(|e| e.event_type == "lab_completed")
        .collect();
    let completed_at = completions
        .iter()
        .zip(decode::<questlog_academy::Event>(&completions)?)
        .find(|(_, event)| {
            matches!(event, questlog_academy::Event::LabCompleted { lab_id: done, .. } if done == lab_id)
        })
        .map(|(e, _)| e.recorded_at);
    let copy: Option<(i32, Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT current_step, vfs_snapshot, saved_at FROM lab_workspaces WHERE player_id = $1 AND lab_id = $2",
    )
    .bind(player_id)
    .bind(lab_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let (current_step, vfs_snapshot, saved_at) = match copy {
        Some((step, vfs, at)) => (step, vfs, Some(at)),
        None => (0, Value::Object(serde_json::Map::new()), None),
    };
    Ok(Some(LabSessionOut {
        player_id,
        lab_id: lab_id.as_str().to_owned(),
        status: if completed_at.is_some() {
            "completed"
        } else {
            "in_progress"
        }
        .to_owned(),
        started_at,
        completed_at,
        furthest_step: i32::try_from(session.furthest_step).unwrap_or(i32::MAX),
        current_step,
        vfs_snapshot,
        saved_at,
    }))
}

/// An active session in this snapshot, with its working copy.
pub(crate) async fn read_session(
    conn: &mut PgConnection,
    player_id: Uuid,
    lab_id: &LabId,
) -> Result<Option<LabSessionOut>, sqlx::Error> {
    Ok(read_session_at(conn, player_id, lab_id).await?.1)
}

/// A session's row, active or not, and its working copy.
#[derive(sqlx::FromRow)]
struct SessionRead {
    active: bool,
    updated_position: i64,
    #[sqlx(flatten)]
    session: LabSessionOut,
}

/// [`read_session`], with the position of the last event of the session's facts it reflects (0
/// for a lab never started nor completed): the `lab:<player>:<lab_id>` live topic's read.
pub(crate) async fn read_session_at(
    conn: &mut PgConnection,
    player_id: Uuid,
    lab_id: &LabId,
) -> Result<(i64, Option<LabSessionOut>), sqlx::Error> {
    let read: Option<SessionRead> = sqlx::query_as(
        "SELECT s.active, s.updated_position, s.player_id, s.lab_id,
                CASE WHEN s.completed_at IS NULL THEN 'in_progress' ELSE 'completed' END AS status,
                s.started_at, s.completed_at, s.furthest_step,
                coalesce(w.current_step, 0) AS current_step,
                coalesce(w.vfs_snapshot, '{}'::jsonb) AS vfs_snapshot,
                w.saved_at
           FROM rm_lab_sessions s
           LEFT JOIN lab_workspaces w ON w.player_id = s.player_id AND w.lab_id = s.lab_id
          WHERE s.player_id = $1 AND s.lab_id = $2",
    )
    .bind(player_id)
    .bind(lab_id.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(read.map_or((0, None), |r| {
        (r.updated_position, r.active.then_some(r.session))
    }))
}

/// The `lab` topic kind: `lab:<player id or me>:<lab_id>`, for its player or an admin.
struct LabTopics;

impl TopicKindReads for LabTopics {
    fn kind(&self) -> TopicKind {
        LAB_TOPIC
    }

    fn form(&self) -> &'static str {
        "lab:<player>:<lab_id>"
    }

    fn parse(
        &self,
        raw: &str,
        rest: Option<&str>,
        caller: &Actor,
        _options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        let Some(rest) = rest else {
            return Ok(None);
        };
        let bad = || {
            invalid_topic(format!(
                "{raw:?}: a lab topic is lab:<player id or me>:<lab_id>"
            ))
        };
        let (player, lab) = rest.split_once(':').ok_or_else(bad)?;
        let player = if player == "me" {
            caller.identity.0
        } else {
            Uuid::parse_str(player).map_err(|_| bad())?
        };
        let lab = LabId::parse(lab).map_err(|_| bad())?;
        Ok(Some(Arc::new(LabTopic { player, lab })))
    }
}

/// A player's session of a lab: its facts, with the working copy as it stands when they change.
/// Read from one projection, so exact from the last event of its facts to the checkpoint.
#[derive(Debug)]
struct LabTopic {
    player: Uuid,
    lab: LabId,
}

impl Topic for LabTopic {
    fn name(&self) -> String {
        LAB_TOPIC.topic(format_args!("{}:{}", self.player, self.lab))
    }

    fn authorize(&self, actor: &Actor) -> Result<(), ApiError> {
        if self.player != actor.identity.0 && actor.role != Role::Admin {
            return Err(lab_forbidden());
        }
        Ok(())
    }

    fn projections(&self) -> &'static [ProjectionName] {
        SESSIONS
    }

    fn sources(&self) -> Vec<Source> {
        vec![Source::all(self.name())]
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let (_, session) = read_session_at(conn, self.player, &self.lab).await?;
            Ok((
                reading.checkpoint(LABS),
                session.map_or(Value::Null, |session| to_value(&session)),
            ))
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
            if changes.is_empty() {
                return Ok(Vec::new());
            }
            let (position, session) = read_session_at(conn, self.player, &self.lab).await?;
            Ok(vec![Update::of(self.lab.to_string(), position, session)])
        }
        .boxed()
    }
}
