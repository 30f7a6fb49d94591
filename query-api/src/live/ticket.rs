//! Subscribe tickets: `POST /v1/subscribe/ticket {"topics": [...]}` with a Bearer token answers
//! a single-use ticket valid for [`TICKET_TTL`], for `GET /v1/subscribe?ticket=…` — how a browser's
//! `EventSource`, which cannot send headers, authenticates without putting a long-lived token in
//! a URL. The ticket carries the caller and the topics (checked and authorized when it is issued,
//! and again when it is used); only its SHA-256 is stored, and using it deletes it, on whichever
//! query API process it reaches.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use questlog_domain::json::UniqueKeys;
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, Role};
use questlog_web::{Authenticated, Problem};
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::topic::{LiveTopic, Options};
use crate::error::ApiError;
use crate::registry::Reads;
use crate::QueryState;

/// How long a ticket may wait for its subscription.
pub const TICKET_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// What a subscription follows: its topics and the options their kinds read (such as
/// `leaderboard_limit`).
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct TicketRequest {
    #[schema(min_items = 1, max_items = 16)]
    topics: Vec<String>,
    /// The subscription's options: only those a registered topic kind reads are accepted.
    #[serde(flatten)]
    options: serde_json::Map<String, serde_json::Value>,
}

/// The body's options, as the query would carry them: a number or a string each.
fn options(
    reads: &Reads,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<Options, ApiError> {
    let mut options = Options::default();
    for (name, value) in body {
        if !reads.reads_option(&name) {
            return Err(ApiError::Client(Problem::bad_request(format!(
                "the body: unknown field `{name}`, expected `topics` or a topic's option"
            ))));
        }
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Number(n) => options.set(&name, &n.to_string()),
            serde_json::Value::String(s) => options.set(&name, &s),
            _ => {
                return Err(ApiError::Client(Problem::bad_request(format!(
                    "the body: {name} is a number or a string"
                ))))
            }
        }
    }
    Ok(options)
}

fn invalid_ticket() -> ApiError {
    ApiError::Client(Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
        "the ticket is unknown, used already or expired: take a new one with POST /v1/subscribe/ticket",
    ))
}

/// A single-use ticket for `GET /v1/subscribe?ticket=…`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Ticket {
    ticket: String,
    /// Seconds it stays valid.
    expires_in: u64,
    /// The topics it opens, as the subscription names them.
    topics: Vec<String>,
}

/// `POST /v1/subscribe/ticket`.
#[utoipa::path(post, path = "/v1/subscribe/ticket", tag = "live", request_body = TicketRequest,
    summary = "A single-use ticket for one subscription, valid 60 s",
    description = "So that a long-lived token never sits in a URL: \
        `GET /v1/subscribe?ticket=<ticket>` opens the subscription the ticket names.",
    responses((status = 201, body = Ticket)))]
pub(crate) async fn issue(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Authenticated(actor) = auth?;
    let value = UniqueKeys::from_slice(&body)
        .map_err(|e| ApiError::Client(Problem::bad_request(format!("the body: {e}"))))?;
    let request: TicketRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::Client(Problem::bad_request(format!("the body: {e}"))))?;
    let raw: Vec<&str> = request.topics.iter().map(String::as_str).collect();
    let options = options(&state.reads, request.options)?;
    let topics = super::topics(&state.reads, &raw, &options, &actor)?;
    let mut ticket = [0_u8; 32];
    rand::thread_rng().fill_bytes(&mut ticket);
    let ticket = hex::encode(ticket);
    let names: Vec<String> = topics.iter().map(LiveTopic::name).collect();
    sqlx::query("DELETE FROM subscribe_tickets WHERE expires_at < now()")
        .execute(&state.primary)
        .await?;
    sqlx::query(
        "INSERT INTO subscribe_tickets \
             (ticket_sha256, identity, role, topics, options, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
    )
    .bind(Sha256::digest(ticket.as_bytes()).to_vec())
    .bind(actor.identity.0)
    .bind(role_name(actor.role))
    .bind(&names)
    .bind(sqlx::types::Json(&options))
    .bind(TICKET_TTL.as_secs_f64())
    .execute(&state.primary)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Ticket {
            ticket,
            expires_in: TICKET_TTL.as_secs(),
            topics: names,
        }),
    ))
}

/// Uses `ticket` up: the caller and the topics it was issued for.
pub(crate) async fn redeem(
    pool: &PgPool,
    reads: &Reads,
    ticket: &str,
) -> Result<(Actor, Vec<LiveTopic>), ApiError> {
    let row: Option<(uuid::Uuid, String, Vec<String>, sqlx::types::Json<Options>)> =
        sqlx::query_as(
            "DELETE FROM subscribe_tickets WHERE ticket_sha256 = $1 AND expires_at > now() \
         RETURNING identity, role, topics, options",
        )
        .bind(Sha256::digest(ticket.as_bytes()).to_vec())
        .fetch_optional(pool)
        .await?;
    let (identity, role, names, sqlx::types::Json(options)) = row.ok_or_else(invalid_ticket)?;
    let actor = Actor {
        identity: PlayerId(identity),
        role: if role == role_name(Role::Admin) {
            Role::Admin
        } else {
            Role::Player
        },
    };
    let raw: Vec<&str> = names.iter().map(String::as_str).collect();
    let topics = super::topics(reads, &raw, &options, &actor)?;
    Ok((actor, topics))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Player => "player",
    }
}
