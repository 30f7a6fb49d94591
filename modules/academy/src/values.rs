//! The academy's newtypes. Each is built through a fallible `parse`; past the edge nothing re-checks them.

use std::fmt;

use questlog_domain::Rejection;
use serde::{Deserialize, Serialize};

pub use questlog_domain::values::{free_text, nul_refused, storable, storable_json, PlayerId};

fn all_chars(s: &str, ok: impl Fn(char) -> bool) -> bool {
    s.chars().all(ok)
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// 1–30 characters of `[A-Za-z0-9_.-]`; unique case-insensitively (see [`Username::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 30;

    /// # Errors
    /// `invalid_username` when empty, longer than 30 characters, or outside `[A-Za-z0-9_.-]`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !all_chars(raw, name_char) {
            return Err(Rejection::invalid(
                "invalid_username",
                "a username is 1 to 30 characters of A-Z, a-z, 0-9, '_', '.' or '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key that uniqueness is decided on.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lab's id in the catalog: 1–64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabId(String);

impl LabId {
    pub const MAX_LEN: usize = 64;

    /// # Errors
    /// `invalid_lab_id` when empty, too long or outside `[A-Za-z0-9_.-]`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !all_chars(raw, name_char) {
            return Err(Rejection::invalid(
                "invalid_lab_id",
                "a lab id is 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' or '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of lab ids in their order (a player's completed labs): a sorted vector. A player holds
/// tens to hundreds; a binary search over one contiguous vector costs fewer comparisons and no
/// allocation per node, where a `BTreeSet` walked its nodes for every lab a fold inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabSet(Vec<LabId>);

impl LabSet {
    pub fn contains(&self, lab: &LabId) -> bool {
        self.0.binary_search(lab).is_ok()
    }

    /// Adds `lab` (a copy of it) unless the set holds it; whether it was added.
    pub fn insert(&mut self, lab: &LabId) -> bool {
        match self.0.binary_search(lab) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, lab.clone());
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labs in order.
    pub fn iter(&self) -> std::slice::Iter<'_, LabId> {
        self.0.iter()
    }
}

impl FromIterator<LabId> for LabSet {
    fn from_iter<I: IntoIterator<Item = LabId>>(labs: I) -> Self {
        let mut labs: Vec<LabId> = labs.into_iter().collect();
        labs.sort_unstable();
        labs.dedup();
        Self(labs)
    }
}

/// An achievement's name: 1–64 characters of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Achievement(String);

impl Achievement {
    pub const FIRST_LAB: &'static str = "first_lab";
    pub const TEN_LABS: &'static str = "ten_labs";
    pub const FIRST_MODULE: &'static str = "first_module";
    pub const STREAK_7: &'static str = "streak_7";
    pub const STREAK_30: &'static str = "streak_30";
    pub const LEVEL_5: &'static str = "level_5";
    pub const LEVEL_10: &'static str = "level_10";

    /// # Errors
    /// `invalid_achievement` when empty, too long or outside `[a-z0-9_]`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.is_empty()
            || raw.len() > 64
            || !all_chars(raw, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
            })
        {
            return Err(Rejection::invalid(
                "invalid_achievement",
                "an achievement is 1 to 64 characters of a-z, 0-9 or '_'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub(crate) fn builtin(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone; streak days are the player's local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timezone(pub chrono_tz::Tz);

impl Default for Timezone {
    fn default() -> Self {
        Self(chrono_tz::UTC)
    }
}

impl Timezone {
    /// # Errors
    /// `invalid_timezone` when the name is not in the IANA database.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        raw.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            Rejection::invalid(
                "invalid_timezone",
                "not an IANA time zone name, e.g. Europe/Berlin",
            )
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Serialize for Timezone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// A module's number in the catalog (module 1 is always unlocked): 1 to [`MAX_MODULE`].
pub type ModuleNo = u32;

/// The largest module number: the read models keep module numbers as Postgres `integer`.
pub const MAX_MODULE: ModuleNo = i32::MAX.unsigned_abs();
