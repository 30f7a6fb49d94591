//! Streams: the unit of consistency. Every event belongs to exactly one stream, and a command's
//! decision is checked against the versions of the streams it read. The academy's stream kinds
//! and the view it folds of each (its registration on the kernel's `View`).

use std::fmt;
use std::str::FromStr;

use questlog_domain::{NameKey, StreamKind, UnknownStream, View};
use uuid::Uuid;

use crate::catalog::CatalogState;
use crate::event::Event;
use crate::player::PlayerState;
use crate::values::{PlayerId, Username};

/// The id of one of the academy's streams, written as `player-<uuid>`, `username-<claim key>` or
/// `catalog`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamId {
    /// The catalog of modules and labs (one stream).
    Catalog,
    /// A player's progression.
    Player(PlayerId),
    /// The claim on a username: guarantees uniqueness through the log itself. Its key is the
    /// keyed digest of the name's lowercase form ([`claim_key`]); a claim made before digests
    /// were is keyed by that lowercase form itself, and still holds the name ([`claim_keys`]).
    Username(String),
}

impl StreamId {
    /// The stream's kind: the first part of its id.
    pub fn kind(&self) -> StreamKind {
        match self {
            Self::Catalog => CATALOG,
            Self::Player(_) => PLAYER,
            Self::Username(_) => USERNAME,
        }
    }

    /// The stream as the kernel names it.
    pub fn id(&self) -> questlog_domain::StreamId {
        match self {
            Self::Catalog => CATALOG.stream(String::new()),
            Self::Player(id) => PLAYER.uuid(id.0),
            Self::Username(key) => USERNAME.stream(key.clone()),
        }
    }
}

/// The catalog of modules and labs (one stream, `catalog`).
pub const CATALOG: StreamKind = StreamKind::new("catalog");
/// A player's progression (`player-<uuid>`).
pub const PLAYER: StreamKind = StreamKind::new("player");
/// The claim on a username (`username-<digest>`; `username-<lowercase name>` before digests).
pub const USERNAME: StreamKind = StreamKind::new("username");

/// The key of the stream a new claim on `name` is made on: the keyed digest of its lowercase form
/// under the deployment's name key, so the log never shows the name.
pub fn claim_key(name: &Username, names: &NameKey) -> String {
    names.digest(&name.key())
}

/// Every key a claim on `name` may be on: the digest new claims use, then the lowercase name an
/// earlier build claimed it under. Uniqueness is decided on both.
pub fn claim_keys(name: &Username, names: &NameKey) -> [String; 2] {
    [claim_key(name, names), name.key()]
}

impl From<&StreamId> for questlog_domain::StreamId {
    fn from(stream: &StreamId) -> Self {
        stream.id()
    }
}

impl From<StreamId> for questlog_domain::StreamId {
    fn from(stream: StreamId) -> Self {
        stream.id()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Catalog => f.write_str("catalog"),
            Self::Player(id) => write!(f, "player-{id}"),
            Self::Username(key) => write!(f, "username-{key}"),
        }
    }
}

impl FromStr for StreamId {
    type Err = UnknownStream;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownStream(s.to_owned());
        if s == "catalog" {
            return Ok(Self::Catalog);
        }
        let (kind, rest) = s.split_once('-').ok_or_else(bad)?;
        match kind {
            "player" => Uuid::parse_str(rest)
                .map(|u| Self::Player(PlayerId(u)))
                .map_err(|_| bad()),
            // A username stream holds a digest (64 lowercase hex digits, longer than any name), or
            // the lowercase name an earlier build claimed it under: `username-Ada` is that claim's
            // stream, and what no username could be is no stream.
            "username" if NameKey::is_digest(rest) => Ok(Self::Username(rest.to_owned())),
            "username" => Username::parse(rest)
                .map(|name| Self::Username(name.key()))
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// Folds the academy's events of one stream into its view, from the view of no events.
pub fn fold<'a, V: Default>(
    evolve: fn(&mut V, &Event),
    events: impl IntoIterator<Item = &'a Event>,
) -> V {
    let mut view = V::default();
    for event in events {
        evolve(&mut view, event);
    }
    view
}

/// Who holds a username, if anyone: the view the academy folds of a `username-<key>` stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsernameHolder(pub Option<PlayerId>);

impl UsernameHolder {
    pub fn evolve(&mut self, event: &Event) {
        if let Event::UsernameClaimed { player_id, .. } = event {
            self.0 = Some(*player_id);
        }
    }
}

impl View for UsernameHolder {
    fn initial(_stream: &questlog_domain::StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &questlog_domain::Event) {
        if let Some(event) = event.get::<Event>() {
            UsernameHolder::evolve(self, event);
        }
    }
}

/// The catalog stream's view: its modules and labs.
impl View for CatalogState {
    fn initial(_stream: &questlog_domain::StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &questlog_domain::Event) {
        if let Some(event) = event.get::<Event>() {
            CatalogState::evolve(self, event);
        }
    }
}

/// A player stream's view: the player's progression (and presence).
impl View for PlayerState {
    fn initial(_stream: &questlog_domain::StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &questlog_domain::Event) {
        if let Some(event) = event.get::<Event>() {
            PlayerState::evolve(self, event);
        }
    }
}
