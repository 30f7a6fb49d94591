//! Bearer tokens: signed (HS256) with the configured secret, carrying identity, role and expiry, so
//! they stay valid across restarts and across every service that shares the secret.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Problem;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    iat: i64,
    exp: i64,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

/// Signs and checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

impl TokenKeys {
    /// Keys from a secret; tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }))
    }

    /// A token for `identity` with `role`, expiring after the configured lifetime.
    pub fn issue(&self, identity: Uuid, role: Role) -> String {
        self.issue_for(identity, role, self.0.ttl)
    }

    /// A token with an explicit lifetime (a negative one makes an expired token, for tests).
    pub fn issue_for(&self, identity: Uuid, role: Role, ttl: Duration) -> String {
        let now = Utc::now();
        let claims = Claims {
            sub: identity,
            role,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        // HS256 signing of a plain struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .unwrap_or_default()
    }

    /// The actor a token speaks for.
    ///
    /// # Errors
    /// `unauthorized` when the token is malformed, forged or expired.
    pub fn verify(&self, token: &str) -> Result<Actor, Problem> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &validation).map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "the token has expired; refresh it or get a new one"
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature is not valid"
                    }
                    _ => "the token is not a valid questlog token",
                };
                Problem::unauthorized(why)
            })?;
        Ok(Actor {
            identity: PlayerId(data.claims.sub),
            role: data.claims.role,
        })
    }
}

/// The caller, from `Authorization: Bearer <token>` or, for EventSource clients, `?access_token=`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Actor);

fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "access_token")
        .map(|(_, v)| v)
}

impl<S> FromRequestParts<S> for Authenticated
where
    TokenKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = TokenKeys::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION);
        let token = match header {
            Some(value) => {
                let value = value.to_str().map_err(|_| {
                    Problem::unauthorized("the Authorization header is not readable")
                })?;
                value
                    .strip_prefix("Bearer ")
                    .ok_or_else(|| Problem::unauthorized("use Authorization: Bearer <token>"))?
                    .trim()
            }
            None => parts
                .uri
                .query()
                .and_then(query_token)
                .ok_or_else(|| Problem::unauthorized("a Bearer token is required"))?,
        };
        keys.verify(token).map(Authenticated)
    }
}
