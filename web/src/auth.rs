//! Bearer tokens: signed (HS256) with the configured secret, carrying identity, role and expiry, so
//! they stay valid across restarts and across every service that shares the secret.
//!
//! Two kinds of token share the secret and are told apart by their `typ` claim, so that one is
//! never accepted for the other:
//! - **access tokens** (no `typ`, or `access`): what every route accepts. An identity's long-lived
//!   token ([`TokenKeys::issue`]) has no session; a session's ([`TokenKeys::issue_session`]) names
//!   it (`sid`) and lives [`TokenKeys::access_ttl`].
//! - **refresh tokens** (`typ: refresh`): accepted only by [`TokenKeys::verify_refresh`], naming
//!   their session and its generation (`gen`), which the session store compares with the one it
//!   keeps to rotate or to detect a reuse.
//!
//! Expiry is checked against the keys' clock, which tests replace to simulate time.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Problem;

const REFRESH: &str = "refresh";
const ACCESS: &str = "access";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gen: Option<i64>,
}

type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
    access_ttl: Duration,
    refresh_ttl: Duration,
    now: Now,
}

/// Signs and checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

/// A session's tokens, as a client receives them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// What a valid refresh token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshClaims {
    pub actor: Actor,
    pub session: Uuid,
    pub generation: i64,
}

/// The default lifetime of a session's access token: 15 minutes.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::minutes(15);
/// The default lifetime of a refresh token: 30 days.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::days(30);

impl TokenKeys {
    /// Keys from a secret; identity tokens live for `ttl`, sessions' tokens the defaults
    /// ([`DEFAULT_ACCESS_TTL`], [`DEFAULT_REFRESH_TTL`]); time is the system's.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            now: Arc::new(Utc::now),
        }))
    }

    /// The same keys with sessions' access and refresh tokens living `access` and `refresh`.
    #[must_use]
    pub fn with_session_ttls(self, access: Duration, refresh: Duration) -> Self {
        self.rebuilt(|k| {
            k.access_ttl = access;
            k.refresh_ttl = refresh;
        })
    }

    /// The same keys telling time by `now` (tests simulate it).
    #[must_use]
    pub fn with_clock(self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.rebuilt(|k| k.now = Arc::new(now))
    }

    fn rebuilt(self, change: impl FnOnce(&mut Keys)) -> Self {
        let k = &self.0;
        let mut keys = Keys {
            encoding: k.encoding.clone(),
            decoding: k.decoding.clone(),
            ttl: k.ttl,
            access_ttl: k.access_ttl,
            refresh_ttl: k.refresh_ttl,
            now: k.now.clone(),
        };
        change(&mut keys);
        Self(Arc::new(keys))
    }

    /// The time now, by the keys' clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0.now)()
    }

    /// How long a session's access token lives.
    pub fn access_ttl(&self) -> Duration {
        self.0.access_ttl
    }

    /// How long a refresh token lives.
    pub fn refresh_ttl(&self) -> Duration {
        self.0.refresh_ttl
    }

    /// A token for `identity` with `role`, expiring after the configured lifetime.
    pub fn issue(&self, identity: Uuid, role: Role) -> String {
        self.issue_for(identity, role, self.0.ttl)
    }

    /// A token with an explicit lifetime (a negative one makes an expired token, for tests).
    pub fn issue_for(&self, identity: Uuid, role: Role, ttl: Duration) -> String {
        self.sign(identity, role, ttl, None, None, None)
    }

    /// The tokens of generation `generation` of session `session`.
    pub fn issue_session(
        &self,
        identity: Uuid,
        role: Role,
        session: Uuid,
        generation: i64,
    ) -> TokenPair {
        TokenPair {
            access_token: self.sign(
                identity,
                role,
                self.0.access_ttl,
                Some(ACCESS),
                Some(session),
                None,
            ),
            refresh_token: self.sign(
                identity,
                role,
                self.0.refresh_ttl,
                Some(REFRESH),
                Some(session),
                Some(generation),
            ),
            expires_in: self.0.access_ttl.num_seconds(),
        }
    }

    fn sign(
        &self,
        identity: Uuid,
        role: Role,
        ttl: Duration,
        typ: Option<&str>,
        sid: Option<Uuid>,
        gen: Option<i64>,
    ) -> String {
        let now = self.now();
        let claims = Claims {
            sub: identity,
            role,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            typ: typ.map(str::to_owned),
            sid,
            gen,
        };
        // HS256 signing of a plain struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .unwrap_or_default()
    }

    fn decode(&self, token: &str) -> Result<Claims, Problem> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // Expiry is checked below against the keys' clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &validation).map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature is not valid"
                    }
                    _ => "the token is not a valid questlog token",
                };
                Problem::unauthorized(why)
            })?;
        if data.claims.exp <= self.now().timestamp() {
            return Err(Problem::unauthorized(
                "the token has expired; refresh it or get a new one",
            ));
        }
        Ok(data.claims)
    }

    /// The actor an access token speaks for.
    ///
    /// # Errors
    /// `unauthorized` when the token is malformed, forged, expired or a refresh token.
    pub fn verify(&self, token: &str) -> Result<Actor, Problem> {
        self.verify_access(token).map(|(actor, _)| actor)
    }

    /// The actor an access token speaks for and the session it belongs to, if any.
    ///
    /// # Errors
    /// As [`TokenKeys::verify`].
    pub fn verify_access(&self, token: &str) -> Result<(Actor, Option<Uuid>), Problem> {
        let claims = self.decode(token)?;
        match claims.typ.as_deref() {
            None | Some(ACCESS) => {}
            Some(_) => {
                return Err(Problem::unauthorized(
                    "a refresh token is not an access token: send it to POST /v1/identity/refresh",
                ))
            }
        }
        Ok((
            Actor {
                identity: PlayerId(claims.sub),
                role: claims.role,
            },
            claims.sid,
        ))
    }

    /// What a refresh token names.
    ///
    /// # Errors
    /// `unauthorized` when the token is malformed, forged, expired or not a refresh token.
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, Problem> {
        let claims = self.decode(token)?;
        match (claims.typ.as_deref(), claims.sid, claims.gen) {
            (Some(REFRESH), Some(session), Some(generation)) => Ok(RefreshClaims {
                actor: Actor {
                    identity: PlayerId(claims.sub),
                    role: claims.role,
                },
                session,
                generation,
            }),
            _ => Err(Problem::unauthorized(
                "this is not a refresh token (an access token cannot refresh a session)",
            )),
        }
    }
}

/// The caller, from `Authorization: Bearer <token>` or, for EventSource clients, `?access_token=`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Actor);

/// The caller and the session its access token belongs to (`None` for an identity's long-lived
/// token, which belongs to no session).
#[derive(Debug, Clone, Copy)]
pub struct Bearer {
    pub actor: Actor,
    pub session: Option<Uuid>,
}

fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "access_token")
        .map(|(_, v)| v)
}

fn request_token(parts: &Parts) -> Result<&str, Problem> {
    match parts.headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| Problem::unauthorized("the Authorization header is not readable"))?;
            Ok(value
                .strip_prefix("Bearer ")
                .ok_or_else(|| Problem::unauthorized("use Authorization: Bearer <token>"))?
                .trim())
        }
        None => parts
            .uri
            .query()
            .and_then(query_token)
            .ok_or_else(|| Problem::unauthorized("a Bearer token is required")),
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    TokenKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = TokenKeys::from_ref(state);
        keys.verify(request_token(parts)?).map(Authenticated)
    }
}

impl<S> FromRequestParts<S> for Bearer
where
    TokenKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = TokenKeys::from_ref(state);
        keys.verify_access(request_token(parts)?)
            .map(|(actor, session)| Bearer { actor, session })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn keys_at(clock: Arc<AtomicI64>) -> TokenKeys {
        TokenKeys::new(b"a test secret of thirty-two bytes!!", Duration::days(30))
            .with_session_ttls(Duration::minutes(15), Duration::days(30))
            .with_clock(move || {
                DateTime::from_timestamp(clock.load(Ordering::SeqCst), 0).unwrap_or_default()
            })
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token_and_an_access_token_does_not_refresh() {
        let keys = keys_at(Arc::new(AtomicI64::new(1_700_000_000)));
        let pair = keys.issue_session(Uuid::from_u128(7), Role::Player, Uuid::from_u128(9), 3);
        let (actor, session) = keys.verify_access(&pair.access_token).expect("access");
        assert_eq!(actor.identity, PlayerId(Uuid::from_u128(7)));
        assert_eq!(session, Some(Uuid::from_u128(9)));
        assert!(keys.verify(&pair.refresh_token).is_err());
        let refresh = keys.verify_refresh(&pair.refresh_token).expect("refresh");
        assert_eq!(
            (refresh.session, refresh.generation),
            (Uuid::from_u128(9), 3)
        );
        assert!(keys.verify_refresh(&pair.access_token).is_err());
        let anonymous = keys.issue(Uuid::from_u128(7), Role::Player);
        assert!(keys.verify_refresh(&anonymous).is_err());
        assert_eq!(keys.verify_access(&anonymous).expect("valid").1, None);
    }

    #[test]
    fn tokens_expire_by_the_keys_clock() {
        let clock = Arc::new(AtomicI64::new(1_700_000_000));
        let keys = keys_at(clock.clone());
        let pair = keys.issue_session(Uuid::from_u128(7), Role::Player, Uuid::from_u128(9), 1);
        clock.fetch_add(14 * 60, Ordering::SeqCst);
        assert!(keys.verify(&pair.access_token).is_ok());
        clock.fetch_add(60, Ordering::SeqCst);
        assert!(keys.verify(&pair.access_token).is_err());
        assert!(keys.verify_refresh(&pair.refresh_token).is_ok());
        clock.fetch_add(30 * 24 * 3600, Ordering::SeqCst);
        assert!(keys.verify_refresh(&pair.refresh_token).is_err());
    }
}
