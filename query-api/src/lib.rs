//! questlog's read side over HTTP, as a kernel: the read infrastructure every module's reads
//! share, and the reads of the log itself (admin views), with read-your-writes. The modules'
//! reads — routes, live topics, how their states render — are registered on the
//! [`App`](questlog_domain::App) through [`QueryApp`] and merged here.
//!
//! Layers, each pointing only down: [`error`]; [`snapshot`] (one consistent look at the read
//! models) and [`as_of`] (time travel); [`standby`] (what a streaming replica read from has
//! replayed); the live hub ([`live::Hub`], with the [`live::Topic`]
//! traits); [`positions`] (read-your-writes, feeding the hub); [`params`] (the shared query
//! parameters); [`QueryState`] and the [`registry`]; the routes (subscribe and tickets in
//! [`live`], admin views).
//!
//! Live subscriptions (`GET /v1/subscribe`, Server-Sent Events) follow the registered topics: see
//! [`live`]. `GET /metrics` (served beside `/healthz` by the binary) shows their counters
//! ([`live::render_metrics`]).
//!
//! Every read answers with `Questlog-Position: P`, the least checkpoint of the projections it
//! read, taken in the same snapshot as its rows (see [`snapshot`]). A read with `min_position`
//! first waits, through [`Positions`], until those projections have applied it.
//!
//! Choices where the contract is silent:
//! - `wait_ms` out of range is 422 `invalid_wait_ms`: a well-formed but invalid value. An
//!   unparseable one is 400 `bad_request`.
//! - `as_of` (time travel, see [`as_of`]) is 422 `invalid_as_of` beyond the log or in the future,
//!   and 400 `as_of_unsupported` on `GET /v1/admin/projections`, which has no past.
//! - The admin stream read lists the events up to `to_version` with the state they fold to; its
//!   position is the log's head, and a `min_position` beyond the head is 504 at once (a position
//!   a client holds is always in the log already).

mod admin;
pub mod as_of;
pub mod error;
pub mod export;
pub mod live;
pub mod openapi;
pub mod params;
pub mod positions;
pub mod registry;
pub mod snapshot;
pub mod standby;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use questlog_domain::{App, Domain};
use questlog_web::{Problem, TokenKeys};
use sqlx::PgPool;

pub use error::ApiError;
pub use params::{DEFAULT_WAIT_MS, MAX_WAIT_MS};
pub use positions::{spawn_listener, NotCaughtUp, Positions, WaitError};
pub use registry::{QueryApp, Reads};
pub use snapshot::POSITION_HEADER;
pub use standby::Standby;

/// What the query API's handlers share.
#[derive(Clone)]
pub struct QueryState {
    /// The database reads come from: the read models and the log (the primary, or a streaming
    /// replica of it).
    pub pool: PgPool,
    /// The primary, for what the read side writes (subscription tickets).
    pub primary: PgPool,
    /// Checks the callers' tokens.
    pub tokens: TokenKeys,
    /// The projections' applied positions, for `min_position` waits.
    pub positions: Positions,
    /// The running modules' streams and events: parses stream ids and folds them.
    pub domain: Arc<Domain>,
    /// The running modules' reads.
    pub reads: Arc<Reads>,
}

impl QueryState {
    /// The state of a query API serving what the modules of `app` registered.
    pub fn new(pool: PgPool, tokens: TokenKeys, positions: Positions, app: &App) -> Self {
        Self {
            primary: pool.clone(),
            pool,
            tokens,
            positions,
            domain: app.domain(),
            reads: Reads::of(app),
        }
    }

    /// Reads from `self.pool`, a streaming replica of `primary`, where it writes.
    #[must_use]
    pub fn with_primary(mut self, primary: PgPool) -> Self {
        self.primary = primary;
        self
    }
}

impl FromRef<QueryState> for TokenKeys {
    fn from_ref(state: &QueryState) -> Self {
        state.tokens.clone()
    }
}

/// The query API's routes: the kernel's and every registered module's. It sets no fallback, so
/// that it merges with the command API's router (axum refuses to merge two fallbacks); served
/// alone, add `.fallback(questlog_web::problem::route_not_found)`.
pub fn router(state: QueryState) -> Router {
    state
        .reads
        .routes()
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
