//! The storage's values, each parsed once at the edge: a collection's name, an object's key, its
//! owner, an indexed field, and who may read and write a collection.

use std::fmt;

use questlog_domain::values::PlayerId;
use questlog_domain::Rejection;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A collection's name: 1 to 64 of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectionName(String);

impl CollectionName {
    /// # Errors
    /// 422 `invalid_collection`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Rejection::invalid(
                "invalid_collection",
                "a collection is 1 to 64 of a-z, 0-9 and _",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CollectionName {
    type Error = Rejection;
    fn try_from(raw: String) -> Result<Self, Rejection> {
        Self::parse(&raw)
    }
}

impl From<CollectionName> for String {
    fn from(c: CollectionName) -> Self {
        c.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object's key: 1 to 128 of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// # Errors
    /// 422 `invalid_key`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Rejection::invalid(
                "invalid_key",
                "a key is 1 to 128 of A-Z, a-z, 0-9, _, ., : and -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = Rejection;
    fn try_from(raw: String) -> Result<Self, Rejection> {
        Self::parse(&raw)
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> Self {
        k.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose an object is: a player's (its identity), or the game's (no player's: written only by
/// an admin). Written as the identity, or `game`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Player(PlayerId),
    Game,
}

impl Owner {
    /// An owner as written (`game` or an identity); `me` is the caller's and resolved by the
    /// caller of this function.
    ///
    /// # Errors
    /// 422 `invalid_owner`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw == "game" {
            return Ok(Self::Game);
        }
        Uuid::parse_str(raw)
            .map(|id| Self::Player(PlayerId(id)))
            .map_err(|_| {
                Rejection::invalid(
                    "invalid_owner",
                    "an owner is a player's identity, `me` or `game`",
                )
            })
    }

    /// Whether `actor`'s identity is this owner.
    pub fn is(self, identity: PlayerId) -> bool {
        self == Self::Player(identity)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Player(id) => id.fmt(f),
            Self::Game => f.write_str("game"),
        }
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(|r| serde::de::Error::custom(r.detail))
    }
}

/// A top-level field a collection indexes (what listings filter and sort on): 1 to 64 of
/// `[A-Za-z0-9_]`, so that it can be named in a query string (`level[gte]=10`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldName(String);

impl FieldName {
    /// # Errors
    /// 422 `invalid_indexed`.
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Rejection::invalid(
                "invalid_indexed",
                "an indexed field is a top-level field of 1 to 64 of A-Z, a-z, 0-9 and _",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FieldName {
    type Error = Rejection;
    fn try_from(raw: String) -> Result<Self, Rejection> {
        Self::parse(&raw)
    }
}

impl From<FieldName> for String {
    fn from(f: FieldName) -> Self {
        f.0
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may read a collection's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// Their owner (and admins).
    Owner,
    /// Every player.
    Public,
}

/// Who may write a collection's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Write {
    /// Their owner (and admins).
    Owner,
    /// Admins only (server-authoritative).
    Server,
}

/// A collection's read and write rules together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub read: Read,
    pub write: Write,
}

/// The parts of an object's stream key: `<collection>:<owner>:<key>`.
pub fn split_object(key: &str) -> Option<(CollectionName, Owner, ObjectKey)> {
    let mut parts = key.splitn(3, ':');
    let collection = CollectionName::parse(parts.next()?).ok()?;
    let owner = Owner::parse(parts.next()?).ok()?;
    let object = ObjectKey::parse(parts.next()?).ok()?;
    Some((collection, owner, object))
}

/// The parts of an owner's stream key: `<collection>:<owner>`.
pub fn split_owner(key: &str) -> Option<(CollectionName, Owner)> {
    let (collection, owner) = key.split_once(':')?;
    Some((
        CollectionName::parse(collection).ok()?,
        Owner::parse(owner).ok()?,
    ))
}
