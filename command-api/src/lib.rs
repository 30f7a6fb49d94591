//! questlog's write side over HTTP: anonymous identities, token refresh (sessions' rotation), and
//! commands that are decided by the pure domain and committed together by the group-commit
//! [`writer`]; the routes modules add beside them ([`routes`]).

pub mod admin;
pub mod clients;
pub mod jobs;
pub mod limits;
pub mod openapi;
pub mod routes;
pub mod sessions;
pub mod writer;

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use questlog_domain::{Domain, Edge, Role};
use questlog_store::{EventStore, StoredResponse};
use questlog_web::problem::body_rejection;
use questlog_web::{Authenticated, Problem, TokenKeys};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use clients::{AddressLimiter, ClientAddresses};
pub use limits::SenderLimiter;
pub use sessions::Sessions;
pub use writer::{Clock, CommandError, CommandOutcome, WriterConfig, WriterHandle};

/// The default limit on a request body: 1 MiB of content a command may carry (the largest JSON
/// value a module accepts in one command) and 64 KiB for the rest of its body.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024 + 64 * 1024;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// What the command API's handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The running modules' commands.
    pub domain: Arc<Domain>,
    pub store: Arc<dyn EventStore>,
    pub writer: WriterHandle,
    pub tokens: TokenKeys,
    /// The per-sender limit on rate-limited commands.
    pub limiter: Arc<SenderLimiter>,
    /// Refresh-token sessions.
    pub sessions: Sessions,
    /// The per-address limit on creating anonymous identities.
    pub identity_limiter: Arc<AddressLimiter>,
    /// How a client's address is found.
    pub clients: ClientAddresses,
    /// The deployment's key for names a stream is named for (`questlog_store::sealing::name_key`).
    pub names: questlog_domain::NameKey,
}

impl FromRef<AppState> for TokenKeys {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

/// The command API's routes, with the modules' write routes (`extra`), all under `body_limit`.
pub fn router(state: AppState, body_limit: usize, extra: Router) -> Router {
    Router::new()
        .route("/v1/identity", post(create_identity))
        .route("/v1/identity/refresh", post(refresh_identity))
        .route("/v1/commands/{name}", post(command))
        .with_state(state)
        .merge(extra)
        .layer(DefaultBodyLimit::max(body_limit))
}

/// The client's network address, as [`ClientAddresses`] finds it.
struct ClientAddress(Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.clients.of(parts)))
    }
}

/// A new or renewed identity's token.
#[derive(Serialize, utoipa::ToSchema)]
struct IdentityOut {
    identity: Uuid,
    token: String,
}

/// `POST /v1/identity`: a new anonymous player identity and its token, at most so many per client
/// address.
#[utoipa::path(post, path = "/v1/identity", tag = "identity", security(()),
    summary = "A new anonymous player identity and its token",
    description = "Limited per client address: beyond it `429 rate_limited` with `Retry-After`.",
    responses((status = 201, description = "The identity and its token", body = IdentityOut)))]
async fn create_identity(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
) -> Result<impl IntoResponse, Problem> {
    if let Some(address) = address {
        if let Err(wait) = state.identity_limiter.check(address) {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many identities created from this address; wait before creating more",
            )
            .retry_after(clients::retry_after_secs(wait)));
        }
    }
    let identity = Uuid::new_v4();
    let token = state.tokens.issue(identity, Role::Player);
    Ok((StatusCode::CREATED, Json(IdentityOut { identity, token })))
}

/// A session's rotation.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshIn {
    refresh_token: String,
}

/// A session's next token pair.
#[derive(Serialize, utoipa::ToSchema)]
struct RefreshOut {
    identity: Uuid,
    #[serde(flatten)]
    pair: questlog_web::TokenPair,
}

/// `POST /v1/identity/refresh`: with `{"refresh_token"}`, the session's next token pair
/// (rotation); with only a Bearer identity token (no session), the same identity and role with a
/// fresh expiry.
#[utoipa::path(post, path = "/v1/identity/refresh", tag = "identity", security((), ("bearer" = [])),
    summary = "Renew a token, or rotate a session's refresh token",
    description = "With `{\"refresh_token\"}` (no Bearer needed): the session's next token pair; \
        a refresh token presented after it was rotated ends its session (`401 refresh_reused`). \
        Without a body, a Bearer identity token (not a session's access token) is renewed.",
    request_body(content = Option<RefreshIn>, content_type = "application/json"),
    responses((status = 200, description = "The renewed token, or the session's next pair",
        body = RefreshAnswer)))]
async fn refresh_identity(
    State(state): State<AppState>,
    auth: Result<questlog_web::Bearer, Problem>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(|e| body_rejection(&e))?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let RefreshIn { refresh_token } = questlog_domain::body(&body).map_err(Problem::from)?;
        let identity = state
            .tokens
            .verify_refresh(&refresh_token)?
            .actor
            .identity
            .0;
        let pair = state.sessions.rotate(&refresh_token).await?;
        return Ok(Json(RefreshOut { identity, pair }).into_response());
    }
    let bearer = auth?;
    if bearer.session.is_some() {
        // A session's access token is short-lived on purpose: only its refresh token renews it,
        // so that ending the session ends the renewals.
        return Err(Problem::unauthorized(
            "this access token belongs to a session: send its refresh token as {\"refresh_token\"}",
        ));
    }
    let actor = bearer.actor;
    let token = state.tokens.issue(actor.identity.0, actor.role);
    Ok(Json(IdentityOut {
        identity: actor.identity.0,
        token,
    })
    .into_response())
}

/// What `POST /v1/identity/refresh` answers: a renewed identity token, or a session's next pair.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // A schema only: the handler answers one of the two.
enum RefreshAnswer {
    Renewed(IdentityOut),
    Rotated(RefreshOut),
}

/// The answer to a command the writer did not accept, for routes that submit commands of their
/// own (a module's write routes).
pub fn command_problem(error: CommandError) -> Problem {
    match error {
        CommandError::Rejected(rejection) => rejection.into(),
        CommandError::IdempotencyRace => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "a request with the same Idempotency-Key is still in flight; retry",
        ),
        CommandError::Contended => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "the command kept conflicting with concurrent writes; retry",
        )
        .retry_after(1),
        CommandError::Unavailable | CommandError::Stopped => {
            Problem::unavailable("the event store is unavailable; retry shortly")
        }
        CommandError::Internal => Problem::internal(),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY);
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
    })
}

fn correlation_id(headers: &HeaderMap) -> Option<Uuid> {
    headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
}

/// The fingerprint of a request that an idempotency key is bound to: the command's name and its
/// body as canonical JSON (so whitespace and key order do not matter).
fn request_hash(name: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// What a command says beside its events, as it said it the first time: [`Command::result`] of
/// the stored events, decoded by the modules' domain (`None` when one cannot be decoded, which a
/// stored answer of this log never is).
fn result_of(
    domain: &questlog_domain::Domain,
    command: &dyn questlog_domain::Command,
    events: &[questlog_store::RecordedEvent],
) -> Option<serde_json::Value> {
    let decoded = events
        .iter()
        .map(|e| domain.decode(&e.event_type, e.schema_version, &e.data))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    command.result(&decoded)
}

fn replayed(stored: StoredResponse, result: Option<serde_json::Value>) -> Response {
    let outcome = CommandOutcome {
        command_id: stored.command_id,
        position: stored.events.last().map_or(stored.head, |e| e.position),
        events: stored.events.into_iter().map(Into::into).collect(),
        result,
    };
    let mut response = Json(outcome).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

async fn stored_answer(
    state: &AppState,
    identity: Uuid,
    key: &str,
    hash: &str,
    command: &dyn questlog_domain::Command,
) -> Result<Option<Response>, Problem> {
    let stored = state
        .store
        .idempotent_response(identity, key)
        .await
        .map_err(store_problem)?;
    match stored {
        Some(s) if s.request_hash != hash => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request",
        )),
        Some(mut s) => {
            state
                .store
                .open(&state.domain, &mut s.events)
                .await
                .map_err(store_problem)?;
            let result = result_of(&state.domain, command, &s.events);
            Ok(Some(replayed(s, result)))
        }
        None => Ok(None),
    }
}

fn store_problem(err: questlog_store::StoreError) -> Problem {
    match err {
        questlog_store::StoreError::Unavailable(e) => {
            tracing::warn!(error = %e, "event store unavailable");
            Problem::unavailable("the event store is unavailable; retry shortly")
        }
        other => {
            tracing::error!(error = %other, cause = ?std::error::Error::source(&other), "event store failure");
            Problem::internal()
        }
    }
}

/// `POST /v1/commands/{name}`: decide and commit one command.
#[tracing::instrument(skip_all, fields(command = tracing::field::Empty))]
async fn command(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    auth: Result<Authenticated, Problem>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Authenticated(actor) = auth?;
    let Path(name) = name.map_err(|e| Problem::bad_request(e.body_text()))?;
    let body = body.map_err(|e| body_rejection(&e))?;
    tracing::Span::current().record("command", name.as_str());
    let key = idempotency_key(&headers)?;
    let edge = Edge {
        caller: actor.identity,
        new_id: Uuid::now_v7(),
        names: state.names,
    };
    let command = state.domain.parse(&name, &body, &edge)?;
    if command.rate_limited() {
        if let Err(wait) = state.limiter.check(actor.identity.0) {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                command.rate_limit_detail(),
            )
            .retry_after(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)));
        }
    }
    let idempotency = match key {
        Some(key) => {
            let hash = request_hash(&name, &body);
            if let Some(answer) =
                stored_answer(&state, actor.identity.0, &key, &hash, command.as_ref()).await?
            {
                return Ok(answer);
            }
            Some((key, hash))
        }
        None => None,
    };
    let raced = idempotency.clone();
    let request = writer::Request {
        actor,
        command,
        correlation_id: correlation_id(&headers),
        idempotency,
    };
    match state.writer.submit(request).await {
        Ok(outcome) => Ok(Json(outcome).into_response()),
        Err(CommandError::Rejected(rejection)) => {
            // A twin request with the same key may have committed after our look-up; its
            // answer, not a refusal caused by its own effects, is what this retry should get.
            if let Some((key, hash)) = &raced {
                // The command went to the writer; parsing the same body again gives the same one.
                let command = state.domain.parse(&name, &body, &edge)?;
                if let Some(answer) =
                    stored_answer(&state, actor.identity.0, key, hash, command.as_ref()).await?
                {
                    return Ok(answer);
                }
            }
            Err(rejection.into())
        }
        Err(CommandError::IdempotencyRace) => {
            let (key, hash) = raced.unwrap_or_default();
            let command = state.domain.parse(&name, &body, &edge)?;
            match stored_answer(&state, actor.identity.0, &key, &hash, command.as_ref()).await? {
                Some(answer) => Ok(answer),
                None => Err(Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "a request with the same Idempotency-Key is still in flight; retry",
                )),
            }
        }
        Err(CommandError::Contended) => Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "the command kept conflicting with concurrent writes; retry",
        )
        .retry_after(1)),
        Err(CommandError::Unavailable | CommandError::Stopped) => Err(Problem::unavailable(
            "the event store is unavailable; retry shortly",
        )),
        Err(CommandError::Internal) => Err(Problem::internal()),
    }
}
