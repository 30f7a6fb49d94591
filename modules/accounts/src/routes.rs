//! The accounts' HTTP routes, on the write side (`POST /v1/accounts/…`): register (or upgrade an
//! anonymous identity), log in, log out, log out everywhere, change the password.

use self::bytes_body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use questlog_command_api::command_problem;
use questlog_command_api::routes::WriteContext;
use questlog_command_api::writer::Request;
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, Command, Role};
use questlog_web::{Bearer, Problem, TokenPair};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::command::{ChangePassword, RegisterAccount};
use crate::lockout::Lockout;
use crate::password::Hasher;
use crate::values::{Email, Password, Username, MAX_PASSWORD};

/// What the accounts' routes share.
#[derive(Clone)]
pub struct AccountsState {
    pub ctx: WriteContext,
    pub hasher: Hasher,
    pub lockout: Lockout,
}

impl axum::extract::FromRef<AccountsState> for questlog_web::TokenKeys {
    fn from_ref(state: &AccountsState) -> Self {
        state.ctx.tokens.clone()
    }
}

/// The accounts' routes in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(register, login, logout, logout_all, change_password))]
pub(crate) struct ApiDoc;

/// The accounts' routes.
pub fn router(state: AccountsState) -> Router {
    Router::new()
        .route("/v1/accounts/register", post(register))
        .route("/v1/accounts/login", post(login))
        .route("/v1/accounts/logout", post(logout))
        .route("/v1/accounts/logout_all", post(logout_all))
        .route("/v1/accounts/password", post(change_password))
        .with_state(state)
}

/// The JSON body of a request, parsed like a command's (an object, no key twice, the shape `T`).
mod bytes_body {
    use axum::extract::rejection::BytesRejection;
    use questlog_web::problem::body_rejection;
    use questlog_web::Problem;
    use serde::de::DeserializeOwned;

    pub struct Body;

    impl Body {
        pub fn parse<T: DeserializeOwned>(
            raw: Result<bytes::Bytes, BytesRejection>,
        ) -> Result<T, Problem> {
            let raw = raw.map_err(|e| body_rejection(&e))?;
            questlog_domain::body(&raw).map_err(Problem::from)
        }
    }
}

/// A session's tokens.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AccountSession)]
struct SessionOut {
    identity: Uuid,
    #[serde(flatten)]
    pair: TokenPair,
    /// The log position of the registration (reads with `min_position` see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<i64>,
}

fn db_problem(e: &sqlx::Error) -> Problem {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => {
            tracing::warn!(error = %e, "accounts: database unavailable");
            Problem::unavailable("the database is unavailable; retry shortly")
        }
        _ => {
            tracing::error!(error = %e, "accounts: database failure");
            Problem::internal()
        }
    }
}

fn internal(e: &anyhow::Error) -> Problem {
    tracing::error!(error = %e, "accounts: internal failure");
    Problem::internal()
}

fn invalid_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the email or the password is wrong",
    )
}

fn locked(secs: u64) -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "locked",
        "too many failed attempts for this email; wait before trying again",
    )
    .retry_after(secs)
}

async fn submit(
    ctx: &WriteContext,
    player: PlayerId,
    command: Box<dyn Command>,
) -> Result<i64, Problem> {
    ctx.writer
        .submit(Request {
            actor: Actor {
                identity: player,
                role: Role::Player,
            },
            command,
            correlation_id: None,
            idempotency: None,
        })
        .await
        .map(|outcome| outcome.position)
        .map_err(command_problem)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterIn {
    email: String,
    /// At least 8 characters, not a common password, at most 256.
    password: String,
    /// Registers the player under this name too.
    #[serde(default)]
    username: Option<String>,
}

/// `POST /v1/accounts/register`: an account for a new identity, or — with the Bearer token of an
/// anonymous identity — for that identity, which keeps everything it did.
#[utoipa::path(post, path = "/v1/accounts/register", tag = "accounts", security((), ("bearer" = [])),
    request_body = RegisterIn,
    summary = "An account: for a new identity, or (with its Bearer token) an anonymous one's",
    responses((status = 201, body = SessionOut)))]
async fn register(
    State(state): State<AccountsState>,
    headers: HeaderMap,
    auth: Result<Bearer, Problem>,
    raw: Result<bytes::Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (player, upgraded) = if headers.contains_key(AUTHORIZATION) {
        let bearer = auth?;
        if bearer.actor.role != Role::Player {
            return Err(Problem::forbidden(
                "an admin token cannot be upgraded to an account",
            ));
        }
        (bearer.actor.identity, true)
    } else {
        (PlayerId(Uuid::new_v4()), false)
    };
    let body: RegisterIn = Body::parse(raw)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let username = body.username.as_deref().map(Username::parse).transpose()?;
    // Refused early, before the costly hash; the append's claims decide races.
    let taken: Option<(bool, bool, bool)> = sqlx::query_as(
        "SELECT coalesce(bool_or(player_id = $1), false), coalesce(bool_or(email_key = $2), false), \
                coalesce(bool_or(username_key = $3), false) \
           FROM accounts WHERE player_id = $1 OR email_key = $2 OR username_key = $3",
    )
    .bind(player.0)
    .bind(&email.key)
    .bind(username.as_ref().map(|u| &u.key))
    .fetch_optional(&state.ctx.pool)
    .await
    .map_err(|e| db_problem(&e))?;
    if let Some((identity, email_taken, username_taken)) = taken {
        if identity {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "already_registered",
                "this identity has an account already",
            ));
        }
        if email_taken {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email exists",
            ));
        }
        if username_taken {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "username_taken",
                "an account with this username exists",
            ));
        }
    }
    let password_hash = state
        .hasher
        .hash(&password)
        .await
        .map_err(|e| internal(&e))?;
    let position = submit(
        &state.ctx,
        player,
        Box::new(RegisterAccount {
            player,
            email,
            username,
            password_hash,
            upgraded,
        }),
    )
    .await?;
    let (_, pair) = state
        .ctx
        .sessions
        .open(Actor {
            identity: player,
            role: Role::Player,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionOut {
            identity: player.0,
            pair,
            position: Some(position),
        }),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginIn {
    email: String,
    password: String,
}

/// `POST /v1/accounts/login`: a new session for the account of an email and its password.
#[utoipa::path(post, path = "/v1/accounts/login", tag = "accounts", security(()),
    request_body = LoginIn,
    summary = "A new session for an email and its password",
    description = "`401 invalid_credentials` whether the email exists or not; after 5 failures \
        within 15 minutes, `429 locked` with `Retry-After`.",
    responses((status = 200, body = SessionOut)))]
async fn login(
    State(state): State<AccountsState>,
    raw: Result<bytes::Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body: LoginIn = Body::parse(raw)?;
    // No account can have a malformed email or an over-long password: refused without a look
    // (nothing about any account is learnt from it).
    let Ok(email) = Email::parse(&body.email) else {
        return Err(invalid_credentials());
    };
    if body.password.chars().count() > MAX_PASSWORD {
        return Err(invalid_credentials());
    }
    let attempt = match state
        .lockout
        .begin(&email.key, state.ctx.clock.now())
        .await
        .map_err(|e| db_problem(&e))?
    {
        Ok(attempt) => attempt,
        Err(secs) => return Err(locked(secs)),
    };
    let account: Option<(Uuid, String)> =
        sqlx::query_as("SELECT player_id, password_hash FROM accounts WHERE email_key = $1")
            .bind(&email.key)
            .fetch_optional(&state.ctx.pool)
            .await
            .map_err(|e| db_problem(&e))?;
    let (player, stored) = match account {
        Some((player, hash)) => (Some(player), Some(hash)),
        None => (None, None),
    };
    // An unknown email costs one verification against the dummy hash, like a known one.
    let matches = state
        .hasher
        .verify_or_dummy(stored, &body.password)
        .await
        .map_err(|e| internal(&e))?;
    let Some(player) = player.filter(|_| matches) else {
        return Err(invalid_credentials());
    };
    state
        .lockout
        .succeeded(&email.key, attempt)
        .await
        .map_err(|e| db_problem(&e))?;
    let (_, pair) = state
        .ctx
        .sessions
        .open(Actor {
            identity: PlayerId(player),
            role: Role::Player,
        })
        .await?;
    Ok(Json(SessionOut {
        identity: player,
        pair,
        position: None,
    })
    .into_response())
}

/// `POST /v1/accounts/logout`: ends the session of the caller's access token.
#[utoipa::path(post, path = "/v1/accounts/logout", tag = "accounts",
    summary = "End the caller's session", responses((status = 204, description = "Ended")))]
async fn logout(
    State(state): State<AccountsState>,
    auth: Result<Bearer, Problem>,
) -> Result<Response, Problem> {
    let bearer = auth?;
    let Some(session) = bearer.session else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no_session",
            "this token belongs to no session (an identity's own token expires on its own)",
        ));
    };
    state.ctx.sessions.end(session, "logout").await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SessionsEnded)]
struct Ended {
    /// How many sessions ended.
    ended: u64,
}

/// `POST /v1/accounts/logout_all`: ends every session of the caller's identity.
#[utoipa::path(post, path = "/v1/accounts/logout_all", tag = "accounts",
    summary = "End every session of the caller's identity",
    responses((status = 200, body = Ended)))]
async fn logout_all(
    State(state): State<AccountsState>,
    auth: Result<Bearer, Problem>,
) -> Result<Response, Problem> {
    let bearer = auth?;
    let ended = state
        .ctx
        .sessions
        .end_all(bearer.actor.identity.0, None, "logout_all")
        .await?;
    Ok(Json(Ended { ended }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordIn {
    current: String,
    new: String,
}

async fn account_of(pool: &PgPool, player: PlayerId) -> Result<(String, String), Problem> {
    let found: Option<(String, String)> =
        sqlx::query_as("SELECT email_key, password_hash FROM accounts WHERE player_id = $1")
            .bind(player.0)
            .fetch_optional(pool)
            .await
            .map_err(|e| db_problem(&e))?;
    found.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no_account",
            "this identity has no account",
        )
    })
}

/// `POST /v1/accounts/password`: a new password, given the current one; every other session of
/// the identity ends.
#[utoipa::path(post, path = "/v1/accounts/password", tag = "accounts", request_body = PasswordIn,
    summary = "A new password, given the current one; every other session ends",
    responses((status = 200, body = Ended)))]
async fn change_password(
    State(state): State<AccountsState>,
    auth: Result<Bearer, Problem>,
    raw: Result<bytes::Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let bearer = auth?;
    let body: PasswordIn = Body::parse(raw)?;
    let new = Password::parse(body.new)?;
    let player = bearer.actor.identity;
    let (email_key, stored) = account_of(&state.ctx.pool, player).await?;
    // Guessing the current password through this route counts like failed logins.
    let attempt = match state
        .lockout
        .begin(&email_key, state.ctx.clock.now())
        .await
        .map_err(|e| db_problem(&e))?
    {
        Ok(attempt) => attempt,
        Err(secs) => return Err(locked(secs)),
    };
    if body.current.chars().count() > MAX_PASSWORD
        || !state
            .hasher
            .verify_or_dummy(Some(stored), &body.current)
            .await
            .map_err(|e| internal(&e))?
    {
        return Err(invalid_credentials());
    }
    state
        .lockout
        .succeeded(&email_key, attempt)
        .await
        .map_err(|e| db_problem(&e))?;
    let password_hash = state.hasher.hash(&new).await.map_err(|e| internal(&e))?;
    submit(
        &state.ctx,
        player,
        Box::new(ChangePassword {
            player,
            password_hash,
        }),
    )
    .await?;
    let ended = state
        .ctx
        .sessions
        .end_all(player.0, bearer.session, "password_changed")
        .await?;
    Ok(Json(Ended { ended }).into_response())
}
