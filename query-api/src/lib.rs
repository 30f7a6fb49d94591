//! questlog's read side over HTTP: the read models the projectors keep (players and leaderboard,
//! presence, catalog, lab sessions, chat) and admin views of the log, with read-your-writes.
//!
//! Live subscriptions (`GET /v1/subscribe`, Server-Sent Events) follow the same read models: see
//! [`live`]. `GET /metrics` (served beside `/healthz` by the binary) shows their counters
//! ([`live::render_metrics`]).
//!
//! Every read answers with `Questlog-Position: P`, the least checkpoint of the projections it
//! read, taken in the same snapshot as its rows (see [`snapshot`]). A read with `min_position`
//! first waits, through [`Positions`], until those projections have applied it.
//!
//! Choices where the contract is silent:
//! - `limit`, `radius` and `wait_ms` out of range are 422 (`invalid_limit`, `invalid_radius`,
//!   `invalid_wait_ms`): well-formed but invalid values. Unparseable ones are 400 `bad_request`.
//! - `as_of` (time travel, see [`as_of`]) is 422 `invalid_as_of` beyond the log or in the future,
//!   and 400 `as_of_unsupported` on `GET /v1/admin/projections`, which has no past.
//! - A player id that is not a UUID is 404 `player_not_found`, like an unknown one.
//! - The admin stream read lists the events up to `to_version` with the state they fold to; its
//!   position is the log's head, and a `min_position` beyond the head is 504 at once (a position
//!   a client holds is always in the log already).

mod admin;
mod as_of;
mod catalog;
mod channels;
pub mod error;
mod lab_sessions;
mod leaderboard;
pub mod live;
mod params;
mod players;
pub mod positions;
mod presence;
pub mod snapshot;
pub mod state_json;

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use questlog_web::{Problem, TokenKeys};
use sqlx::PgPool;

pub use error::ApiError;
pub use leaderboard::{DEFAULT_LIMIT, DEFAULT_RADIUS, MAX_LIMIT, MAX_RADIUS};
pub use params::{DEFAULT_WAIT_MS, MAX_WAIT_MS};
pub use positions::{spawn_listener, NotCaughtUp, Positions, WaitError};
pub use snapshot::POSITION_HEADER;

/// The projections this API reads, by the names their checkpoints and announcements carry.
pub mod projection {
    /// Players' profiles and the leaderboard (`rm_players`).
    pub const PLAYERS: &str = "players";
    /// Modules and labs (`rm_modules`, `rm_labs`).
    pub const CATALOG: &str = "catalog";
    /// Who is online (`rm_presence`).
    pub const PRESENCE: &str = "presence";
    /// Players' lab sessions (`rm_lab_sessions`).
    pub const LABS: &str = "labs";
    /// Chat messages (`rm_messages`).
    pub const CHAT: &str = "chat";
    /// Every one of them.
    pub const ALL: &[&str] = &[PLAYERS, CATALOG, PRESENCE, LABS, CHAT];
}

/// What the query API's handlers share.
#[derive(Clone)]
pub struct QueryState {
    /// The database holding the read models and the log.
    pub pool: PgPool,
    /// Checks the callers' tokens.
    pub tokens: TokenKeys,
    /// The projections' applied positions, for `min_position` waits.
    pub positions: Positions,
}

impl FromRef<QueryState> for TokenKeys {
    fn from_ref(state: &QueryState) -> Self {
        state.tokens.clone()
    }
}

/// The query API's routes. It sets no fallback, so that it merges with the command API's router
/// (axum refuses to merge two fallbacks); served alone, add
/// `.fallback(questlog_web::problem::route_not_found)`.
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/v1/players/{id}", get(players::profile))
        .route("/v1/leaderboard", get(leaderboard::page))
        .route("/v1/leaderboard/players/{id}", get(leaderboard::around))
        .route("/v1/presence", get(presence::online))
        .route("/v1/players/{id}/labs/{lab_id}", get(lab_sessions::session))
        .route("/v1/channels/{channel}/messages", get(channels::messages))
        .route("/v1/labs", get(catalog::labs))
        .route("/v1/admin/projections", get(admin::projections))
        .route("/v1/admin/streams/{stream}", get(admin::stream))
        .route("/v1/subscribe", get(live::subscribe))
        .route(
            "/v1/subscribe/ticket",
            axum::routing::post(live::issue_ticket),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
