//! The achievements' reads, from the achievements projection: a player's achievements
//! (`GET /v1/players/{id|me}/achievements`) and the catalog with how many players unlocked each
//! and its rarity (`GET /v1/achievements`). A hidden achievement shows to others only once the
//! player unlocked it; in the catalog its texts and rule show only to an admin and to the
//! players who unlocked it. Both answer `as_of` any position from the versions the projection
//! keeps: as a replay of the log up to it would (an achievement defined later is not there yet;
//! one derived retroactively shows from its definition on, with the position it was met at).
//! The built-in achievements (defined in code from the log's start) follow those defined as
//! data, in registration order, at every position.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use questlog_bus::ProjectionName;
use questlog_domain::{App, Role};
use questlog_query_api::params::{query, At, Consistency, ReadParams};
use questlog_query_api::snapshot::answer;
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::Postgres;
use uuid::Uuid;

use crate::builtin::BuiltinAchievements;
use crate::names::ACHIEVEMENTS;
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

const READS: &[ProjectionName] = &[ACHIEVEMENTS];

/// The module's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(of_player, catalog))]
struct ApiDoc;

pub(crate) fn register(app: &mut App, builtins: BuiltinAchievements) {
    app.add_read_routes(
        Router::new()
            .route("/v1/players/{id}/achievements", get(of_player))
            .route("/v1/achievements", get(catalog))
            .layer(Extension(builtins)),
    )
    .add_read_projections(READS);
    app.add_api_docs(ApiDoc::openapi());
}

/// The definitions a read shows, as a `FROM` item named `a`: those defined as data, then the
/// built-in ones (bound as the arrays $3, $4, $5 by [`bind_builtins`]) whose ids no data
/// definition took, ordered by `(builtin, defined_position)`.
fn definitions(at: At) -> String {
    let defined = match at {
        At::Now => "rm_achievements".to_owned(),
        At::AsOf(p) => format!(
            "(SELECT * FROM rm_achievement_versions \
               WHERE valid_from <= {p} AND valid_to > {p}) d"
        ),
    };
    format!(
        "(SELECT achievement, title, description, hidden, goal, rule, authoritative, \
                 false AS builtin, defined_position FROM {defined} \
          UNION ALL \
          SELECT b.achievement, b.title, b.description, false, 1::bigint, NULL::jsonb, true, \
                 true, b.n \
            FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY \
                 AS b(achievement, title, description, n) \
           WHERE b.achievement NOT IN (SELECT achievement FROM {defined})) a"
    )
}

/// Binds the built-in achievements' ids, titles and descriptions as $3, $4, $5.
fn bind_builtins<'q, O>(
    query: sqlx::query::QueryAs<'q, Postgres, O, PgArguments>,
    builtins: &BuiltinAchievements,
) -> sqlx::query::QueryAs<'q, Postgres, O, PgArguments> {
    let all = builtins.all();
    query
        .bind(all.iter().map(|b| b.id).collect::<Vec<_>>())
        .bind(all.iter().map(|b| b.title).collect::<Vec<_>>())
        .bind(all.iter().map(|b| b.description).collect::<Vec<_>>())
}

/// The players' lines a read shows, as a `FROM` item named `alias`.
fn lines(at: At, alias: &str) -> String {
    match at {
        At::Now => format!("rm_player_achievements {alias}"),
        At::AsOf(p) => format!(
            "(SELECT * FROM rm_player_achievement_versions \
               WHERE valid_from <= {p} AND valid_to > {p}) {alias}"
        ),
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = PlayerAchievement)]
struct Line {
    achievement: String,
    title: String,
    description: String,
    goal: i64,
    progress: i64,
    unlocked_at: Option<DateTime<Utc>>,
    position: Option<i64>,
}

/// `GET /v1/players/{id|me}/achievements`: every achievement with the player's progress, in
/// definition order.
#[utoipa::path(get, path = "/v1/players/{id}/achievements", tag = "achievements",
    params(("id" = String, Path, description = "A player id, or `me`"), ReadParams),
    summary = "Every achievement with the player's progress",
    responses((status = 200, body = Vec<Line>)))]
#[tracing::instrument(skip_all)]
async fn of_player(
    State(state): State<QueryState>,
    Extension(builtins): Extension<BuiltinAchievements>,
    auth: Result<Authenticated, Problem>,
    id: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let Path(id) = id?;
    let player = if id == "me" {
        actor.identity.0
    } else {
        Uuid::parse_str(&id)
            .map_err(|_| ApiError::not_found("player_not_found", "there is no such player"))?
    };
    let consistency = Consistency::parse(query(read)?)?;
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let sees_hidden = actor.role == Role::Admin || actor.identity.0 == player;
    let lines: Vec<Line> = bind_builtins(
        sqlx::query_as(&format!(
            "SELECT a.achievement, a.title, a.description, a.goal, \
                coalesce(p.progress, 0) AS progress, p.unlocked_at, \
                p.unlocked_position AS position \
           FROM {} \
           LEFT JOIN {} \
             ON p.achievement = a.achievement AND p.player_id = $1 \
          WHERE NOT a.hidden OR p.unlocked_at IS NOT NULL OR $2 \
          ORDER BY a.builtin, a.defined_position",
            definitions(at),
            lines(at, "p")
        ))
        .bind(player)
        .bind(sees_hidden),
        &builtins,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(answer(position, &lines))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = AchievementEntry)]
struct Entry {
    achievement: String,
    title: Option<String>,
    description: Option<String>,
    hidden: bool,
    goal: i64,
    rule: Option<Value>,
    authoritative: bool,
    unlocked_by: i64,
    #[sqlx(skip)]
    rarity: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AchievementCatalog)]
struct Catalog {
    position: i64,
    /// The registered players rarity is a share of.
    players: i64,
    achievements: Vec<Entry>,
}

/// `GET /v1/achievements`: the catalog, with `unlocked_by` (players who hold it now) and
/// `rarity` (their share of registered players; `null` while there are none).
#[utoipa::path(get, path = "/v1/achievements", tag = "achievements", params(ReadParams),
    summary = "The catalog, with who unlocked each and its rarity",
    responses((status = 200, body = Catalog)))]
#[tracing::instrument(skip_all)]
async fn catalog(
    State(state): State<QueryState>,
    Extension(builtins): Extension<BuiltinAchievements>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let players: i64 = sqlx::query_scalar(&match at {
        At::Now => "SELECT count(*) FROM rm_players".to_owned(),
        // Every registered player has a version of its leaderboard entry from registration on.
        At::AsOf(p) => format!(
            "SELECT count(*) FROM rm_leaderboard_history WHERE {}",
            questlog_query_api::as_of::valid_at(&p.to_string())
        ),
    })
    .fetch_one(&mut *tx)
    .await?;
    let mut achievements: Vec<Entry> = bind_builtins(
        sqlx::query_as(&format!(
            "SELECT a.achievement, a.hidden, a.goal, a.authoritative, \
                CASE WHEN shown THEN a.title END AS title, \
                CASE WHEN shown THEN a.description END AS description, \
                CASE WHEN shown THEN a.rule END AS rule, \
                (SELECT count(*) FROM {lines} \
                  WHERE p.achievement = a.achievement AND p.unlocked_at IS NOT NULL) \
                  AS unlocked_by \
           FROM {definitions}, LATERAL (SELECT NOT a.hidden OR $1 OR EXISTS ( \
                  SELECT 1 FROM {mine} WHERE m.achievement = a.achievement \
                     AND m.player_id = $2 AND m.unlocked_at IS NOT NULL) AS shown) s \
          ORDER BY a.builtin, a.defined_position",
            lines = lines(at, "p"),
            definitions = definitions(at),
            mine = lines(at, "m"),
        ))
        .bind(actor.role == Role::Admin)
        .bind(actor.identity.0),
        &builtins,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for a in &mut achievements {
        #[allow(clippy::cast_precision_loss)]
        {
            a.rarity = (players > 0).then(|| a.unlocked_by as f64 / players as f64);
        }
    }
    Ok(answer(
        position,
        &Catalog {
            position,
            players,
            achievements,
        },
    ))
}
