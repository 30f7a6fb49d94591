//! The chat's values: a message's id and text and the channel it is sent to. Each is built
//! through a fallible `parse`; past the edge nothing re-checks them.

use std::fmt;

use questlog_academy::values::{nul_refused, storable, LabId, PlayerId};
use questlog_domain::Rejection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
