//! The players feature's reads: a player's profile (`GET /v1/players/{id}`, the `player:<id>`
//! topic) and the leaderboard (`GET /v1/leaderboard`, `GET /v1/leaderboard/players/{id}`, the
//! `leaderboard` topic), from the players projection (`rm_players`, `rm_leaderboard_history`).

pub mod leaderboard;
pub mod profile;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use questlog_domain::App;
use questlog_query_api::{ApiError, QueryApp as _};
use uuid::Uuid;

use crate::names::{CATALOG, PLAYERS};

/// Registers the feature's routes and topics.
pub(crate) fn register_reads(app: &mut App) {
    app.add_read_routes(
        Router::new()
            .route("/v1/players/{id}", get(profile::route))
            .route("/v1/leaderboard", get(leaderboard::page))
            .route("/v1/leaderboard/players/{id}", get(leaderboard::around)),
    )
    .add_topic(leaderboard::LeaderboardTopics)
    .add_topic(profile::PlayerTopics)
    .add_read_projections(&[PLAYERS, CATALOG]);
}

/// The player a path names: `me` is the caller. Anything that is not a UUID names no player.
pub(crate) fn player_in_path(
    raw: Result<Path<String>, PathRejection>,
    caller: Uuid,
) -> Result<Uuid, ApiError> {
    let Path(raw) = raw?;
    if raw == "me" {
        return Ok(caller);
    }
    Uuid::parse_str(&raw).map_err(|_| player_not_found())
}

/// A player id that is not a UUID is 404 `player_not_found`, like an unknown one.
pub(crate) fn player_not_found() -> ApiError {
    ApiError::not_found("player_not_found", "there is no such player")
}
