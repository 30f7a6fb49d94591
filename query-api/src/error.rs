//! The query API's one error type: client errors become their problem+json as they are; store
//! faults become an opaque 503 (unreachable) or 500 (anything else), logged with their whole cause
//! chain and never echoed. The bottom layer of the read side: it points at nothing else in it.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use questlog_domain::DecodeError;
use questlog_store::StoreError;
use questlog_web::Problem;

/// A read-your-writes wait that ran out of time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {projection} read model has applied position {applied} but not yet {wanted}; retry later or wait longer"
)]
pub struct NotCaughtUp {
    /// The projection furthest behind.
    pub projection: String,
    /// The position it had applied when the wait gave up.
    pub applied: i64,
    /// The position the read asked for.
    pub wanted: i64,
}

/// Why a `min_position` wait did not return a position.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed first.
    #[error(transparent)]
    NotCaughtUp(#[from] NotCaughtUp),
    /// The checkpoints could not be read.
    #[error("cannot read the projection checkpoints")]
    Store(#[source] StoreError),
}

/// Everything a read can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal the client caused (400, 401, 403, 404, 422), answered as it is.
    #[error("{}: {}", .0.code, .0.detail)]
    Client(Problem),
    /// A `min_position` wait ran out of time (504).
    #[error(transparent)]
    NotCaughtUp(#[from] NotCaughtUp),
    /// The store failed: 503 when out of reach, else 500.
    #[error("store failure")]
    Store(#[source] StoreError),
    /// A stored event this build cannot read (500).
    #[error("cannot decode a stored event")]
    Decode(#[source] DecodeError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Client(problem)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::from_sqlx(err))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<WaitError> for ApiError {
    fn from(err: WaitError) -> Self {
        match err {
            WaitError::NotCaughtUp(n) => Self::NotCaughtUp(n),
            WaitError::Store(e) => Self::Store(e),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Client(Problem::bad_request(rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::Client(Problem::bad_request(rejection.body_text()))
    }
}

impl ApiError {
    /// A well-formed value out of its range (422) with its own `code`.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Client(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail))
    }

    /// A malformed request (400) with its own `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Client(Problem::new(StatusCode::BAD_REQUEST, code, detail))
    }

    /// A stored row or event this build cannot read (500).
    pub fn stored(detail: impl Into<String>) -> Self {
        Self::Store(StoreError::Decode(detail.into()))
    }

    /// Something named that does not exist (404) with its own `code`.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Client(Problem::new(StatusCode::NOT_FOUND, code, detail))
    }
}

/// The error and its causes, outermost first: what the log gets and the client never does.
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Client(problem) => problem.clone(),
            Self::NotCaughtUp(n) => {
                Problem::new(StatusCode::GATEWAY_TIMEOUT, "not_caught_up", n.to_string())
            }
            Self::Store(StoreError::Unavailable(_)) => {
                tracing::warn!(error = %cause_chain(&self), "read store unavailable");
                Problem::unavailable("the read store is unavailable; retry shortly")
            }
            Self::Store(_) | Self::Decode(_) => {
                tracing::error!(error = %cause_chain(&self), "read failed");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}
