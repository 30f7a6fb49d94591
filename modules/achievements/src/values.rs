//! The achievements' values, each built through a fallible `parse`: an achievement's id, its
//! texts, its goal and its rule.

use std::fmt;

use questlog_domain::values::{free_text, nul_refused, storable, storable_json};
use questlog_domain::Rejection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An achievement's id: 1–64 of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AchievementId(String);

impl AchievementId {
    /// # Errors
    /// `invalid_achievement` for anything but 1–64 of `[a-z0-9_]`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if Self::valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Rejection::invalid(
                "invalid_achievement",
                "an achievement id is 1 to 64 of a-z, 0-9 and _",
            ))
        }
    }

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

impl fmt::Display for AchievementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A title: 1–128 characters, not blank.
pub fn title(raw: String) -> Result<String, Rejection> {
    free_text(raw, "invalid_title", "a title", 128)
}

/// A description: up to 1000 characters (may be empty), storable.
pub fn description(raw: String) -> Result<String, Rejection> {
    if raw.chars().count() > 1000 {
        return Err(Rejection::invalid(
            "invalid_description",
            "a description is at most 1000 characters",
        ));
    }
    if !storable(&raw) {
        return Err(nul_refused("invalid_description", "a description"));
    }
    Ok(raw)
}

/// A rule the server evaluates over a player's own history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rule {
    /// The player's events of a type (whose data has every `where` field equal), counted toward
    /// the goal.
    Count {
        count: String,
        #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
        filter: Option<Map<String, Value>>,
    },
    /// A score of at least `at_least` submitted for the player to a board.
    Score { score: String, at_least: i64 },
}

impl Rule {
    /// # Errors
    /// `invalid_rule` for anything but `{"count": "<event type>", "where"?: {…}}` or
    /// `{"score": "<leaderboard>", "at_least": int}` (storable, an event type of 1–64 of
    /// `[a-z0-9_]`).
    pub fn parse(raw: Value) -> Result<Self, Rejection> {
        let invalid = |why: &str| {
            Rejection::invalid(
                "invalid_rule",
                format!(
                    "a rule is {{\"count\": \"<event type>\", \"where\"?: {{…}}}} or \
                     {{\"score\": \"<leaderboard>\", \"at_least\": int}}: {why}"
                ),
            )
        };
        if !storable_json(&raw) {
            return Err(nul_refused("invalid_rule", "a rule"));
        }
        let Value::Object(mut map) = raw else {
            return Err(invalid("not an object"));
        };
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => Ok(s),
            _ => Err(invalid("names are strings")),
        };
        let rule = if map.contains_key("count") {
            let count = text(map.remove("count"))?;
            let filter = match map.remove("where") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m),
                Some(_) => return Err(invalid("where is an object")),
            };
            if !map.is_empty() {
                return Err(invalid("unknown fields"));
            }
            Self::Count { count, filter }
        } else if map.contains_key("score") {
            let score = text(map.remove("score"))?;
            let at_least = map
                .remove("at_least")
                .and_then(|v| v.as_i64())
                .ok_or_else(|| invalid("at_least is an integer in int64"))?;
            if !map.is_empty() {
                return Err(invalid("unknown fields"));
            }
            Self::Score { score, at_least }
        } else {
            return Err(invalid("neither count nor score"));
        };
        let name = match &rule {
            Self::Count { count, .. } => count,
            Self::Score { score, .. } => score,
        };
        if !AchievementId::valid(name) {
            return Err(invalid("names are 1 to 64 of a-z, 0-9 and _"));
        }
        Ok(rule)
    }
}
