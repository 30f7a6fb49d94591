//! `GET /v1/players/me/export`: everything questlog holds about the caller, as JSON, read in one
//! REPEATABLE READ snapshot (the right of access). The kernel gathers what it can find without
//! knowing any module:
//!
//! - `events`: every event of the log that names the caller — sent by it (its identity in the
//!   metadata), on a stream whose id holds its id, or whose data holds its id anywhere (an admin's
//!   grant, a direct message to it) — in log order, as stored;
//! - `read_models`: every row of every registered read model that holds the caller's id in any
//!   column, by table;
//! - `beside`: every row of the tables modules keep beside the log (their archive sections) that
//!   holds the caller's id, by table, except the tables a module exports itself;
//! - `sessions`: the caller's sessions (no token: none is stored);
//! - one entry per [`PlayerExport`] a module registers, for what only it can say (data it keeps
//!   in its own shape, without the secrets it keeps).
//!
//! Finding the caller in every row means scanning the log and the read models: an export costs a
//! pass over them. Each identity may export twice a minute (per process).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use questlog_domain::App;
use questlog_web::{Authenticated, Problem, TokenKeys};
use serde_json::{json, Map, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::snapshot::{answer, begin};
use crate::ApiError;

type ReadFn = Box<
    dyn for<'a> Fn(&'a mut PgConnection, Uuid) -> BoxFuture<'a, anyhow::Result<Value>>
        + Send
        + Sync,
>;

/// What a module adds to a player's export: its `name` in the answer, the tables it speaks for
/// (left out of the generic `beside` part, such as a table holding a secret), and how it reads
/// the player's part in the export's snapshot.
pub struct PlayerExport {
    pub name: &'static str,
    pub covers: &'static [&'static str],
    read: ReadFn,
}

impl PlayerExport {
    pub fn new<F>(name: &'static str, covers: &'static [&'static str], read: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConnection, Uuid) -> BoxFuture<'a, anyhow::Result<Value>>
            + Send
            + Sync
            + 'static,
    {
        Self {
            name,
            covers,
            read: Box::new(read),
        }
    }
}

/// The player exports the running modules registered (an [`App`] part).
#[derive(Default)]
pub struct PlayerExports(Vec<PlayerExport>);

/// Registering a player export on an [`App`].
pub trait PlayerExportExt {
    fn add_player_export(&mut self, export: PlayerExport) -> &mut Self;
}

impl PlayerExportExt for App {
    fn add_player_export(&mut self, export: PlayerExport) -> &mut Self {
        self.part_mut::<PlayerExports>().0.push(export);
        self
    }
}

#[derive(Clone)]
pub(crate) struct ExportState {
    pool: PgPool,
    tokens: TokenKeys,
    read_models: Arc<Vec<String>>,
    beside: Arc<Vec<String>>,
    exports: Arc<PlayerExports>,
    limiter: Arc<DefaultKeyedRateLimiter<Uuid>>,
    legacy: Arc<Vec<questlog_domain::LegacyField>>,
}

impl axum::extract::FromRef<ExportState> for TokenKeys {
    fn from_ref(state: &ExportState) -> Self {
        state.tokens.clone()
    }
}

/// The export route, over the read models' tables `read_models` and the tables kept beside the
/// log `beside`, with the player exports `app`'s modules registered.
pub fn router(
    pool: PgPool,
    tokens: TokenKeys,
    read_models: Vec<String>,
    beside: Vec<String>,
    app: &mut App,
) -> Router {
    let exports = app.take::<PlayerExports>();
    let legacy = app.domain().legacy_personal().to_vec();
    let covered: Vec<&str> = exports
        .0
        .iter()
        .flat_map(|e| e.covers.iter().copied())
        .collect();
    let beside = beside
        .into_iter()
        .filter(|t| !covered.contains(&t.as_str()))
        .collect();
    let two = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
    Router::new()
        .route("/v1/players/me/export", get(export))
        .with_state(ExportState {
            pool,
            tokens,
            read_models: Arc::new(read_models),
            beside: Arc::new(beside),
            exports: Arc::new(exports),
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(two).allow_burst(two))),
            legacy: Arc::new(legacy),
        })
}

fn quoted(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

/// The rows of `table` that hold `needle` in any column, as JSON objects.
async fn rows_naming(
    conn: &mut PgConnection,
    table: &str,
    needle: &str,
) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) FROM {} t WHERE strpos(to_jsonb(t)::text, $1) > 0",
        quoted(table)
    ))
    .bind(needle)
    .fetch_all(conn)
    .await
}

#[utoipa::path(get, path = "/v1/players/me/export", tag = "players",
    summary = "Everything the log and the read models hold about the caller",
    description = "At most two a minute per identity (`429 rate_limited`).",
    responses((status = 200, description = "The caller's events, rows and sessions",
        body = Object)))]
pub(crate) async fn export(
    State(state): State<ExportState>,
    auth: Result<Authenticated, Problem>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let me = actor.identity.0;
    if let Err(not_until) = state.limiter.check_key(&me) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "an export reads the whole log; wait before asking again",
        )
        .retry_after(wait.as_secs() + 1)
        .into());
    }
    let needle = me.to_string();
    let mut tx = begin(&state.pool).await?;
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let recorded: Vec<sqlx::types::Json<questlog_store::RecordedEvent>> = sqlx::query_scalar(
        "SELECT jsonb_build_object('position', position, 'event_id', event_id, \
                'stream_id', stream_id, 'stream_version', stream_version, \
                'event_type', event_type, 'schema_version', schema_version, 'data', data, \
                'metadata', metadata, 'recorded_at', recorded_at) \
           FROM events \
          WHERE metadata->>'identity' = $1 OR strpos(stream_id, $1) > 0 \
                OR strpos(data::text, $1) > 0 \
          ORDER BY position",
    )
    .bind(&needle)
    .fetch_all(&mut *tx)
    .await?;
    // Personal fields as the caller may read them now: its own and others' opened, an erased
    // player's as erased.
    let mut recorded: Vec<_> = recorded.into_iter().map(|e| e.0).collect();
    questlog_store::sealing::open_all(&mut tx, &state.legacy, &mut recorded).await?;
    let events: Vec<Value> = recorded
        .into_iter()
        .map(|e| {
            json!({
                "position": e.position, "event_id": e.event_id, "stream": e.stream_id,
                "version": e.stream_version, "type": e.event_type,
                "schema_version": e.schema_version, "data": e.data, "metadata": e.metadata,
                "recorded_at": e.recorded_at,
            })
        })
        .collect();
    let mut read_models = BTreeMap::new();
    for table in state.read_models.iter() {
        read_models.insert(table.clone(), rows_naming(&mut tx, table, &needle).await?);
    }
    let mut beside = BTreeMap::new();
    for table in state.beside.iter() {
        beside.insert(table.clone(), rows_naming(&mut tx, table, &needle).await?);
    }
    let sessions: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('session_id', session_id, 'created_at', created_at, \
                'refreshed_at', refreshed_at, 'expires_at', expires_at, 'ended_at', ended_at, \
                'end_reason', end_reason) \
           FROM auth_sessions WHERE identity = $1 ORDER BY created_at",
    )
    .bind(me)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Map::new();
    out.insert("player_id".into(), json!(me));
    out.insert("position".into(), json!(head));
    for module in &state.exports.0 {
        let part = (module.read)(&mut tx, me).await.map_err(|e| {
            tracing::error!(error = %e, export = module.name, "a player export failed");
            Problem::internal()
        })?;
        out.insert(module.name.into(), part);
    }
    out.insert("events".into(), json!(events));
    out.insert("read_models".into(), json!(read_models));
    out.insert("beside".into(), json!(beside));
    out.insert("sessions".into(), json!(sessions));
    tx.commit().await?;
    Ok(answer(head, &Value::Object(out)))
}
