//! Time travel: `as_of=<position|RFC 3339 time>` on the reads. An answer as of position P equals
//! what a replay of the log up to P produces, through the domain's own folds:
//!
//! - a read of a few streams (an admin stream view, and the modules' reads of one entity) folds
//!   the streams it shows, read straight from the log up to P ([`events_until`]);
//! - a read spanning every entity of a kind reads the history its projection keeps (one version
//!   per change, valid over a range of positions): the versions valid at P.
//!
//! A time stands for the last event recorded at or before it.

use chrono::{DateTime, Utc};
use questlog_domain::LegacyField;
use questlog_store::RecordedEvent;
use sqlx::PgConnection;

use crate::error::ApiError;

/// The SQL condition that a version (a row with `valid_from` and `valid_to`) stood at `position`
/// (an SQL expression: a number, or a bound parameter such as `$1::bigint`): `valid_from <=
/// position < valid_to`, written as the point `(valid_from, valid_to)` inside a box, so that a
/// history's GiST index on `point(valid_from, valid_to)` answers it. (An index on the point is
/// built sorted, several times faster than one on `int8range(valid_from, valid_to)`, which a
/// rebuild pays for every history table; positions are exact as `float8` below 2^53.)
pub fn valid_at(position: &str) -> String {
    format!(
        "point(valid_from, valid_to) <@ box(point(-1, ({position}) + 1), point({position}, 'Infinity'))"
    )
}

/// A point of the log as a client names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Position(i64),
    Time(DateTime<Utc>),
}

impl AsOf {
    /// # Errors
    /// 400 `bad_request` when it is neither a position nor an RFC 3339 time.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if let Ok(p) = raw.parse::<i64>() {
            return Ok(Self::Position(p));
        }
        // An unencoded `+01:00` arrives as ` 01:00`: take it as the client meant it.
        DateTime::parse_from_rfc3339(&raw.replace(' ', "+"))
            .map(|t| Self::Time(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::bad_request("bad_request", "as_of is a log position or an RFC 3339 time")
            })
    }

    /// The log position this point stands for, checked against the log in this snapshot.
    ///
    /// # Errors
    /// 422 `invalid_as_of` for a position beyond the log's head, a negative one, or a time in the
    /// future (whose answer could still change).
    pub async fn resolve(self, conn: &mut PgConnection) -> Result<i64, ApiError> {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
            .fetch_one(&mut *conn)
            .await?;
        match self {
            Self::Position(p) if (0..=head).contains(&p) => Ok(p),
            Self::Position(p) => Err(ApiError::invalid(
                "invalid_as_of",
                format!("as_of {p} is not in the log, whose head is {head}"),
            )),
            Self::Time(t) if t > Utc::now() => Err(ApiError::invalid(
                "invalid_as_of",
                "as_of is a time in the past",
            )),
            Self::Time(t) => Ok(sqlx::query_scalar(
                "SELECT coalesce(max(position), 0)::bigint FROM events WHERE recorded_at <= $1",
            )
            .bind(t)
            .fetch_one(&mut *conn)
            .await?),
        }
    }
}

/// The events of `streams` up to `position`, by stream and version, their personal fields
/// opened with the keys as they are now (an erased player's read as erased, whatever the
/// position: `questlog_store::sealing`), and the plain-text ones of `legacy` too.
pub async fn events_until(
    conn: &mut PgConnection,
    streams: &[String],
    position: i64,
    legacy: &[LegacyField],
) -> Result<Vec<RecordedEvent>, ApiError> {
    let mut events = questlog_store::read_streams_until(&mut *conn, streams, position).await?;
    questlog_store::sealing::open_all(conn, legacy, &mut events).await?;
    Ok(events)
}

/// A module's events of recorded ones (read by [`events_until`] from streams that hold only
/// events of type `E`).
///
/// # Errors
/// [`ApiError::Decode`] when a recorded event is not one of `E`'s, or its data does not fit.
pub fn decode<E: questlog_domain::DomainEvent>(
    recorded: &[RecordedEvent],
) -> Result<Vec<E>, ApiError> {
    recorded
        .iter()
        .map(|e| E::from_parts(&e.event_type, e.schema_version, &e.data))
        .collect::<Result<_, _>>()
        .map_err(ApiError::Decode)
}
