//! The leaderboards' values, each built through a fallible `parse`: a board's id and title, its
//! order and operator, its reset schedule, a score and the metadata a submission carries.

use std::fmt;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use questlog_domain::values::{free_text, nul_refused, storable, storable_json};
use questlog_domain::Rejection;
use serde::{Deserialize, Serialize};

/// A board's id: 1–64 of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoardId(String);

impl BoardId {
    /// # Errors
    /// `invalid_leaderboard` for anything but 1–64 of `[a-z0-9_]`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if Self::valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Rejection::invalid(
                "invalid_leaderboard",
                "a leaderboard id is 1 to 64 of a-z, 0-9 and _",
            ))
        }
    }

    /// Whether `raw` is a board id.
    pub fn valid(raw: &str) -> bool {
        (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BoardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A board's title: 1–128 characters, not blank.
pub fn title(raw: String) -> Result<String, Rejection> {
    free_text(raw, "invalid_title", "a title", 128)
}

/// Which end of the scores ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Higher scores first.
    Desc,
    /// Lower scores first.
    Asc,
}

impl Order {
    /// # Errors
    /// `invalid_order` for anything but `desc` or `asc`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        match raw {
            "desc" => Ok(Self::Desc),
            "asc" => Ok(Self::Asc),
            _ => Err(Rejection::invalid(
                "invalid_order",
                "order is \"desc\" or \"asc\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desc => "desc",
            Self::Asc => "asc",
        }
    }
}

/// How a submission changes a player's record in the season.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// The better of the record and the submission (by the board's order).
    Best,
    /// The submission replaces the record.
    Set,
    /// The submission is added to the record.
    Incr,
    /// The submission is subtracted from the record.
    Decr,
}

impl Operator {
    /// # Errors
    /// `invalid_operator` for anything but `best`, `set`, `incr` or `decr`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        match raw {
            "best" => Ok(Self::Best),
            "set" => Ok(Self::Set),
            "incr" => Ok(Self::Incr),
            "decr" => Ok(Self::Decr),
            _ => Err(Rejection::invalid(
                "invalid_operator",
                "operator is \"best\", \"set\", \"incr\" or \"decr\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Best => "best",
            Self::Set => "set",
            Self::Incr => "incr",
            Self::Decr => "decr",
        }
    }
}

/// A reset schedule: a cron expression of exactly 5 fields (minute, hour, day of month, month,
/// day of week), in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reset(String);

impl Reset {
    /// # Errors
    /// `invalid_reset` for anything but 5 fields croner reads, or a schedule that never fires.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let invalid = |why: &str| {
            Rejection::invalid(
                "invalid_reset",
                format!("reset is a cron expression of 5 fields, in UTC: {why}"),
            )
        };
        if !storable(raw) {
            return Err(nul_refused("invalid_reset", "reset"));
        }
        let fields = raw.split_whitespace().count();
        if fields != 5 {
            return Err(invalid(&format!("{fields} fields")));
        }
        let cron = croner::Cron::from_str(raw).map_err(|e| invalid(&e.to_string()))?;
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        cron.find_next_occurrence(&epoch, false)
            .map_err(|_| invalid("it never fires"))?;
        Ok(Self(raw.split_whitespace().collect::<Vec<_>>().join(" ")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first tick strictly after `after` (`None` if it never fires again).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = croner::Cron::from_str(&self.0).ok()?;
        cron.find_next_occurrence(&after, false).ok()
    }
}

/// A score as sent: a JSON integer in int64.
///
/// # Errors
/// `invalid_score` (named by `code`) for a number that is not an integer in int64, `bad_request`
/// for anything but a number.
pub fn score(raw: &serde_json::Value, code: &'static str, what: &str) -> Result<i64, Rejection> {
    match raw {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| {
            Rejection::invalid(code, format!("{what} is an integer in int64 (±2^63)"))
        }),
        _ => Err(Rejection::bad_request(format!("{what} must be a number"))),
    }
}

/// The most bytes a submission's metadata takes, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 1024;

/// A submission's metadata: a JSON object of at most 1 KiB (compact JSON), storable.
///
/// # Errors
/// `invalid_metadata` for anything but an object, or one holding a NUL; `metadata_too_large`
/// over 1 KiB.
pub fn metadata(
    raw: serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    let serde_json::Value::Object(map) = raw else {
        return Err(Rejection::invalid(
            "invalid_metadata",
            "metadata is a JSON object",
        ));
    };
    if !storable_json(&serde_json::Value::Object(map.clone())) {
        return Err(nul_refused("invalid_metadata", "metadata"));
    }
    let bytes = serde_json::to_vec(&map).map_or(usize::MAX, |b| b.len());
    if bytes > MAX_METADATA_BYTES {
        return Err(Rejection::invalid(
            "metadata_too_large",
            format!("metadata is at most {MAX_METADATA_BYTES} bytes of JSON, not {bytes}"),
        ));
    }
    Ok(map)
}
