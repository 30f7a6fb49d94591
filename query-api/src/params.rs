//! Query parameters every read shares (`min_position`, `wait_ms`, `as_of`), parsed once into what
//! a handler acts on. Unknown parameters are ignored; a malformed value is 400 `bad_request`; a
//! well-formed value out of range is 422 with its own code.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use questlog_bus::ProjectionName;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::as_of::AsOf;
use crate::error::ApiError;
use crate::positions::Positions;
use crate::snapshot::{begin, checkpoint};

/// How long a read waits for `min_position` unless told otherwise.
pub const DEFAULT_WAIT_MS: u64 = 5_000;
/// The longest a read may be asked to wait; more is 422 `invalid_wait_ms`.
pub const MAX_WAIT_MS: u64 = 30_000;

/// The query string as every read accepts it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Read your writes: wait (up to `wait_ms`) until the read models have applied this position,
    /// else `504 not_caught_up`.
    min_position: Option<i64>,
    /// How long a `min_position` wait may take, in milliseconds (default 5000, at most 30000).
    #[param(maximum = 30000)]
    wait_ms: Option<u64>,
    /// Time travel: answer as the read stood at this log position or RFC 3339 time.
    as_of: Option<String>,
}

/// Which rows a read answers from: the read models as they stand, or the versions their
/// projections keep that were valid at a past position of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Now,
    AsOf(i64),
}

/// What a read must wait for before it answers, or the past point it answers as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consistency {
    /// The position the answer must reflect at least, and how long to wait for it.
    pub wait: Option<(i64, Duration)>,
    /// Answer as the read models stood at this point of the log (time travel).
    pub as_of: Option<AsOf>,
    /// How long a read may wait (for `min_position`, or for a projection to reach `as_of`).
    pub wait_for: Duration,
}

impl Consistency {
    /// Checks the shared parameters.
    pub fn parse(params: ReadParams) -> Result<Self, ApiError> {
        let as_of = params.as_of.as_deref().map(AsOf::parse).transpose()?;
        let wait_ms = params.wait_ms.unwrap_or(DEFAULT_WAIT_MS);
        if wait_ms > MAX_WAIT_MS {
            return Err(ApiError::invalid(
                "invalid_wait_ms",
                format!("wait_ms is at most {MAX_WAIT_MS}"),
            ));
        }
        Ok(Self {
            wait: params
                .min_position
                .map(|p| (p, Duration::from_millis(wait_ms))),
            as_of,
            wait_for: Duration::from_millis(wait_ms),
        })
    }

    /// The position `as_of` stands for, once every one of `projections` has applied it (their
    /// read models, or the history they keep, then hold everything up to it); `None` without
    /// `as_of`.
    pub async fn as_of_applied(
        &self,
        pool: &PgPool,
        positions: &Positions,
        projections: &[ProjectionName],
    ) -> Result<Option<i64>, ApiError> {
        let Some(as_of) = self.as_of else {
            return Ok(None);
        };
        let position = positions.resolve(as_of, pool, self.wait_for).await?;
        if !projections.is_empty() {
            positions
                .wait_for(projections, position, self.wait_for)
                .await?;
        }
        Ok(Some(position))
    }

    /// Opens the snapshot a read of `projections` answers in, with the position its answer is
    /// exact at and which rows it reads: the versions valid at `as_of` once every one of them
    /// applied it, else the read models as they stand once they applied `min_position`.
    pub async fn open(
        &self,
        pool: &PgPool,
        positions: &Positions,
        projections: &[ProjectionName],
    ) -> Result<(Transaction<'static, Postgres>, i64, At), ApiError> {
        if let Some(position) = self.as_of_applied(pool, positions, projections).await? {
            return Ok((begin(pool).await?, position, At::AsOf(position)));
        }
        self.wait(positions, projections).await?;
        let mut tx = begin(pool).await?;
        let position = checkpoint(&mut tx, projections).await?;
        Ok((tx, position, At::Now))
    }

    /// Refuses `as_of` on a read that has no past (400 `as_of_unsupported`).
    pub fn now_only(&self, what: &str) -> Result<(), ApiError> {
        if self.as_of.is_some() {
            return Err(ApiError::bad_request(
                "as_of_unsupported",
                format!("{what} has no past to read; read without as_of"),
            ));
        }
        Ok(())
    }

    /// Waits, when asked to, until every one of `projections` has applied `min_position`.
    pub async fn wait(
        &self,
        positions: &Positions,
        projections: &[ProjectionName],
    ) -> Result<(), ApiError> {
        if let Some((min_position, timeout)) = self.wait {
            positions
                .wait_for(projections, min_position, timeout)
                .await?;
        }
        Ok(())
    }
}

/// The value of a query extractor, or a 400 problem instead of axum's plain-text rejection.
pub fn query<T: DeserializeOwned>(
    extracted: Result<Query<T>, QueryRejection>,
) -> Result<T, ApiError> {
    extracted.map(|Query(value)| value).map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Consistency, ApiError> {
        // Through axum's own extractor, as a request would be.
        let uri: axum::http::Uri = format!("/?{query}").parse().expect("valid URI");
        let Query(params) = Query::<ReadParams>::try_from_uri(&uri).expect("well-formed");
        Consistency::parse(params)
    }

    #[test]
    fn without_min_position_a_read_does_not_wait() {
        assert_eq!(parse("").ok().map(|c| c.wait), Some(None));
        assert_eq!(parse("wait_ms=10").ok().map(|c| c.wait), Some(None));
    }

    #[test]
    fn min_position_waits_five_seconds_by_default() {
        assert_eq!(
            parse("min_position=7").ok().map(|c| c.wait),
            Some(Some((7, Duration::from_secs(5))))
        );
    }

    #[test]
    fn a_wait_longer_than_thirty_seconds_is_refused() {
        assert!(parse("min_position=7&wait_ms=30000").is_ok());
        assert!(matches!(
            parse("min_position=7&wait_ms=30001"),
            Err(ApiError::Client(p)) if p.code == "invalid_wait_ms"
        ));
    }

    #[test]
    fn as_of_is_a_position_or_a_time() {
        assert_eq!(
            parse("as_of=12").ok().and_then(|c| c.as_of),
            Some(AsOf::Position(12))
        );
        assert!(matches!(
            parse("as_of=2026-11-29T18:00:00Z")
                .ok()
                .and_then(|c| c.as_of),
            Some(AsOf::Time(_))
        ));
        assert!(matches!(
            parse("as_of=yesterday"),
            Err(ApiError::Client(p)) if p.code == "bad_request"
        ));
    }
}
