//! Sessions of refresh tokens, for whatever logs an identity in (a module's login route): opened
//! with a token pair, rotated by `POST /v1/identity/refresh`, ended one at a time or all of an
//! identity's at once. State beside the log (`auth_sessions`): a session is not history, and
//! ending one must be possible without appending anything.
//!
//! Rotation: a refresh token names its session and generation (signed, so neither can be forged).
//! Presenting the current generation moves the session to the next and answers the next pair;
//! presenting an older one means the token was rotated already, so someone holds a copy: the
//! whole session ends (`refresh_reused`). The compare-and-set is one `UPDATE`, so two presentations
//! of one token cannot both rotate.

use axum::http::StatusCode;
use questlog_domain::{Actor, Role};
use questlog_web::{Problem, TokenKeys, TokenPair};
use sqlx::PgPool;
use uuid::Uuid;

/// The session store. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    keys: TokenKeys,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Player => "player",
        Role::Admin => "admin",
    }
}

fn db_problem(e: &sqlx::Error) -> Problem {
    tracing::warn!(error = %e, "session store unavailable");
    Problem::unavailable("the session store is unavailable; retry shortly")
}

impl Sessions {
    pub fn new(pool: PgPool, keys: TokenKeys) -> Self {
        Self { pool, keys }
    }

    /// The keys sessions' tokens are signed with (and their clock).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Opens a session for `actor`: its first token pair.
    ///
    /// # Errors
    /// `unavailable` when the database is.
    pub async fn open(&self, actor: Actor) -> Result<(Uuid, TokenPair), Problem> {
        let session = Uuid::new_v4();
        let now = self.keys.now();
        sqlx::query(
            "INSERT INTO auth_sessions (session_id, identity, role, generation, created_at, \
             refreshed_at, expires_at) VALUES ($1, $2, $3, 1, $4, $4, $5)",
        )
        .bind(session)
        .bind(actor.identity.0)
        .bind(role_name(actor.role))
        .bind(now)
        .bind(now + self.keys.refresh_ttl())
        .execute(&self.pool)
        .await
        .map_err(|e| db_problem(&e))?;
        Ok((
            session,
            self.keys
                .issue_session(actor.identity.0, actor.role, session, 1),
        ))
    }

    /// The next token pair of the session a refresh token names.
    ///
    /// # Errors
    /// `unauthorized` for a malformed, forged or expired token, an access token, or a session
    /// that ended; `refresh_reused` (401) for a token already rotated, which ends the session.
    pub async fn rotate(&self, refresh_token: &str) -> Result<TokenPair, Problem> {
        let claims = self.keys.verify_refresh(refresh_token)?;
        let now = self.keys.now();
        let rotated: Option<(i64,)> = sqlx::query_as(
            "UPDATE auth_sessions SET generation = generation + 1, refreshed_at = $3, \
             expires_at = $4 \
             WHERE session_id = $1 AND identity = $2 AND generation = $5 AND ended_at IS NULL \
             RETURNING generation",
        )
        .bind(claims.session)
        .bind(claims.actor.identity.0)
        .bind(now)
        .bind(now + self.keys.refresh_ttl())
        .bind(claims.generation)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_problem(&e))?;
        if let Some((generation,)) = rotated {
            return Ok(self.keys.issue_session(
                claims.actor.identity.0,
                claims.actor.role,
                claims.session,
                generation,
            ));
        }
        let found: Option<(i64, bool)> = sqlx::query_as(
            "SELECT generation, ended_at IS NOT NULL FROM auth_sessions \
             WHERE session_id = $1 AND identity = $2",
        )
        .bind(claims.session)
        .bind(claims.actor.identity.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_problem(&e))?;
        match found {
            Some((generation, false)) if generation > claims.generation => {
                self.end_where("session_id = $1", claims.session, "refresh_reused")
                    .await?;
                Err(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "refresh_reused",
                    "this refresh token was already used; the session has ended, log in again",
                ))
            }
            Some((_, true)) => Err(Problem::unauthorized("the session has ended; log in again")),
            _ => Err(Problem::unauthorized("the refresh token names no session")),
        }
    }

    /// Ends one session (idempotent). Answers whether it was open.
    ///
    /// # Errors
    /// `unavailable` when the database is.
    pub async fn end(&self, session: Uuid, reason: &str) -> Result<bool, Problem> {
        Ok(self.end_where("session_id = $1", session, reason).await? > 0)
    }

    /// Ends every open session of `identity` but `except`. Answers how many ended.
    ///
    /// # Errors
    /// `unavailable` when the database is.
    pub async fn end_all(
        &self,
        identity: Uuid,
        except: Option<Uuid>,
        reason: &str,
    ) -> Result<u64, Problem> {
        let ended = sqlx::query(
            "UPDATE auth_sessions SET ended_at = $3, end_reason = $4 \
             WHERE identity = $1 AND ended_at IS NULL AND session_id IS DISTINCT FROM $2",
        )
        .bind(identity)
        .bind(except)
        .bind(self.keys.now())
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(|e| db_problem(&e))?;
        Ok(ended.rows_affected())
    }

    async fn end_where(&self, filter: &str, id: Uuid, reason: &str) -> Result<u64, Problem> {
        let ended = sqlx::query(&format!(
            "UPDATE auth_sessions SET ended_at = $2, end_reason = $3 \
             WHERE {filter} AND ended_at IS NULL"
        ))
        .bind(id)
        .bind(self.keys.now())
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(|e| db_problem(&e))?;
        Ok(ended.rows_affected())
    }

    /// The open sessions of `identity`: (id, created, last refreshed, refresh expiry), for a
    /// player's export.
    ///
    /// # Errors
    /// `unavailable` when the database is.
    pub async fn list(&self, identity: Uuid) -> Result<Vec<SessionRow>, Problem> {
        sqlx::query_as(
            "SELECT session_id, created_at, refreshed_at, expires_at, ended_at, end_reason \
             FROM auth_sessions WHERE identity = $1 ORDER BY created_at",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_problem(&e))
    }
}

/// How long a session that ended (a logout, a reused token, a password change) is kept before
/// [`prune`] deletes it: long enough for its owner's export to show the logout and for a client
/// still holding its refresh token to be told the session ended.
pub const ENDED_KEPT: chrono::Duration = chrono::Duration::days(1);

/// Deletes the sessions nothing can use any more, as of `now`: those whose refresh token has
/// expired (a token past its expiry is refused before the table is read, and no refresh can
/// extend it), and those that ended more than [`ENDED_KEPT`] ago. Answers how many it deleted.
/// Idempotent: two processes pruning at once delete each row once.
///
/// # Errors
/// When the database cannot be reached.
pub async fn prune(pool: &PgPool, now: chrono::DateTime<chrono::Utc>) -> Result<u64, sqlx::Error> {
    let pruned = sqlx::query("DELETE FROM auth_sessions WHERE expires_at < $1 OR ended_at < $2")
        .bind(now)
        .bind(now - ENDED_KEPT)
        .execute(pool)
        .await?;
    Ok(pruned.rows_affected())
}

/// One session as its owner may see it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct SessionRow {
    pub session_id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub refreshed_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    pub end_reason: Option<String>,
}
