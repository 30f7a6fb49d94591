//! The read side's kernel part of the OpenAPI document: the admin reads, the live subscription and
//! its tickets, the player's export, and the shapes of the live events. The modules document their
//! own reads (`questlog_web::openapi`).

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::OpenApi;
use utoipa::OpenApi as _;

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        crate::admin::projections,
        crate::admin::stream,
        crate::live::subscribe,
        crate::live::ticket::issue,
        crate::export::export,
    ),
    components(schemas(LiveSnapshot, LiveChange))
)]
struct Reads;

/// The read side's kernel document.
pub fn api_docs() -> OpenApi {
    Reads::openapi()
}

/// The query string of `GET /v1/subscribe`, beside the options the topics' kinds read (such as
/// `leaderboard_limit`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation: the handler reads the pairs as they come.
pub(crate) struct SubscribeParams {
    /// A topic to follow (repeat for several), of a kind a module registers: `<kind>` or
    /// `<kind>:<key>`. None beside a `ticket`.
    #[param(explode = true)]
    topic: Option<Vec<String>>,
    /// A ticket from `POST /v1/subscribe/ticket` (single use): the credential and the topics.
    ticket: Option<String>,
    /// A token, for clients that cannot send `Authorization` (a ticket keeps it out of URLs).
    access_token: Option<String>,
    /// Resume after this event id, for clients that cannot send `Last-Event-ID`.
    last_event_id: Option<i64>,
}

/// `event: snapshot`: a topic's whole state, the matching read's answer, exact at `position`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveSnapshot {
    topic: String,
    position: i64,
    data: Value,
}

/// `event: change`: one entity of a topic as of `position` (`op: delete` with `data: null`), or
/// a windowed topic's whole new window.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveChange {
    topic: String,
    position: i64,
    #[schema(pattern = "^(upsert|delete)$")]
    op: String,
    key: Option<String>,
    data: Value,
}
