//! The academy's newtypes. Each is built through a fallible `parse`; past the edge nothing re-checks them.

use std::fmt;

use questlog_domain::Rejection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// A chat message's id. The edge draws it (a time-ordered UUID) before the command is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub Uuid);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A chat message's text: 1–2000 characters, not only white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageContent(String);

impl MessageContent {
    pub const MAX_CHARS: usize = 2000;

    /// # Errors
    /// `invalid_content` when blank, longer than 2000 characters or holding a NUL.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.trim().is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(Rejection::invalid(
                "invalid_content",
                "a message is 1 to 2000 characters, not only white space",
            ));
        }
        if !storable(raw) {
            return Err(nul_refused("invalid_content", "a message"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chat channel in canonical form: everyone's `global`, one per lab, and one per pair of
/// players. A direct channel belongs to the pair, whichever side names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Global,
    Lab(LabId),
    /// The two players, the lesser id first.
    Direct(PlayerId, PlayerId),
}

impl Channel {
    /// A channel as `caller` names it: `global`, `lab:<lab_id>`, `dm:<player_id>` (the caller's
    /// conversation with that player) or the canonical `dm:<a>:<b>`, which only its two players
    /// may name.
    ///
    /// # Errors
    /// `invalid_channel` for any other shape, a direct channel with oneself, or a canonical direct
    /// channel the caller is not part of (indistinguishable, on purpose, from one that does not
    /// exist).
    pub fn parse(raw: &str, caller: PlayerId) -> Result<Self, Rejection> {
        let invalid = || {
            Rejection::invalid(
                "invalid_channel",
                format!("{raw:?} is not a channel: global, lab:<lab_id> or dm:<player_id>"),
            )
        };
        if raw == "global" {
            return Ok(Self::Global);
        }
        let (kind, rest) = raw.split_once(':').ok_or_else(invalid)?;
        match kind {
            "lab" => LabId::parse(rest).map(Self::Lab).map_err(|_| invalid()),
            "dm" => {
                let id = |s: &str| Uuid::parse_str(s).map(PlayerId).map_err(|_| invalid());
                let (a, b) = match rest.split_once(':') {
                    Some((a, b)) => {
                        let (a, b) = (id(a)?, id(b)?);
                        if a != caller && b != caller {
                            return Err(invalid());
                        }
                        (a, b)
                    }
                    None => (caller, id(rest)?),
                };
                if a == b {
                    return Err(Rejection::invalid(
                        "invalid_channel",
                        "a direct channel is between two different players",
                    ));
                }
                Ok(Self::direct(a, b))
            }
            _ => Err(invalid()),
        }
    }

    /// The direct channel of two players.
    pub fn direct(a: PlayerId, b: PlayerId) -> Self {
        if a <= b {
            Self::Direct(a, b)
        } else {
            Self::Direct(b, a)
        }
    }

    /// Reads back a canonical name, as stored in events.
    pub fn from_canonical(raw: &str) -> Option<Self> {
        match raw.split_once(':') {
            None if raw == "global" => Some(Self::Global),
            Some(("lab", lab)) => LabId::parse(lab).ok().map(Self::Lab),
            Some(("dm", pair)) => {
                let (a, b) = pair.split_once(':')?;
                let a = PlayerId(Uuid::parse_str(a).ok()?);
                let b = PlayerId(Uuid::parse_str(b).ok()?);
                (a != b).then(|| Self::direct(a, b))
            }
            _ => None,
        }
    }

    /// Whether `player` may read the channel: everyone, except a direct channel, which only its
    /// two players may.
    pub fn visible_to(&self, player: PlayerId) -> bool {
        match self {
            Self::Direct(a, b) => *a == player || *b == player,
            Self::Global | Self::Lab(_) => true,
        }
    }

    /// The other player of a direct channel, from `me`'s side.
    pub fn peer(&self, me: PlayerId) -> Option<PlayerId> {
        match self {
            Self::Direct(a, b) if *a == me => Some(*b),
            Self::Direct(a, b) if *b == me => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    /// The canonical name: `global`, `lab:<lab_id>`, `dm:<lesser id>:<greater id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("global"),
            Self::Lab(lab) => write!(f, "lab:{lab}"),
            Self::Direct(a, b) => write!(f, "dm:{a}:{b}"),
        }
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::from_canonical(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("not a channel: {raw:?}")))
    }
}

/// A lab's steps are numbered from 0 up to this.
pub const MAX_STEP: u32 = 1000;
/// The largest saved virtual file system, as compact JSON.
pub const MAX_VFS_BYTES: usize = 32 * 1024;
