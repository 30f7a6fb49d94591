//! Streams: the unit of consistency. Every event belongs to exactly one stream, and a command's
//! decision is checked against the versions of the streams it read.

use std::fmt;
use std::str::FromStr;

use questlog_domain::{StreamKind, UnknownStream, View};
use uuid::Uuid;

use crate::catalog::CatalogState;
use crate::event::Event;
use crate::lab::LabSession;
use crate::player::PlayerState;
use crate::values::{LabId, PlayerId, Username};

/// The id of a stream, written as `player-<uuid>`, `username-<lowercase name>`, `catalog` or
/// `lab-<player uuid>-<lab id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamId {
    /// The catalog of modules and labs (one stream).
    Catalog,
    /// A player's progression.
    Player(PlayerId),
    /// The claim on a username (its lowercase key): guarantees uniqueness through the log itself.
    Username(String),
    /// One player's session of one lab (started, progressed, deleted).
    Lab(PlayerId, LabId),
}

impl StreamId {
    /// The stream's kind: the first part of its id.
    pub fn kind(&self) -> StreamKind {
        match self {
            Self::Catalog => CATALOG,
            Self::Player(_) => PLAYER,
            Self::Username(_) => USERNAME,
            Self::Lab(..) => LAB,
        }
    }

    /// The stream as the kernel names it.
    pub fn id(&self) -> questlog_domain::StreamId {
        let key = match self {
            Self::Catalog => String::new(),
            Self::Player(id) => id.to_string(),
            Self::Username(key) => key.clone(),
            Self::Lab(player, lab) => format!("{player}-{lab}"),
        };
        self.kind().stream(key)
    }
}

/// The catalog of modules and labs (one stream, `catalog`).
pub const CATALOG: StreamKind = StreamKind::new("catalog");
/// A player's progression (`player-<uuid>`).
pub const PLAYER: StreamKind = StreamKind::new("player");
/// The claim on a username (`username-<lowercase name>`).
pub const USERNAME: StreamKind = StreamKind::new("username");
/// One player's session of one lab (`lab-<player uuid>-<lab id>`).
pub const LAB: StreamKind = StreamKind::new("lab");

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
            Self::Lab(player, lab) => write!(f, "lab-{player}-{lab}"),
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
            // A username stream holds the name's lowercase key: `username-Ada` is Ada's stream, and
            // what no username could be is no stream.
            "username" => Username::parse(rest)
                .map(|name| Self::Username(name.key()))
                .map_err(|_| bad()),
            // A UUID is 36 characters, then `-`, then the lab id.
            "lab" => {
                let (player, lab) = rest
                    .get(..36)
                    .zip(rest.get(36..).and_then(|r| r.strip_prefix('-')))
                    .ok_or_else(bad)?;
                let player = Uuid::parse_str(player).map_err(|_| bad())?;
                let lab = LabId::parse(lab).map_err(|_| bad())?;
                Ok(Self::Lab(PlayerId(player), lab))
            }
            _ => Err(bad()),
        }
    }
}

/// The folded state of one stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamState {
    Catalog(CatalogState),
    Player(PlayerState),
    /// Who holds the username, if anyone.
    Username(Option<PlayerId>),
    Lab(LabSession),
}

impl StreamState {
    /// The state of a stream with no events.
    pub fn initial(stream: &StreamId) -> Self {
        match stream {
            StreamId::Catalog => Self::Catalog(CatalogState::default()),
            StreamId::Player(_) => Self::Player(PlayerState::default()),
            StreamId::Username(_) => Self::Username(None),
            StreamId::Lab(..) => Self::Lab(LabSession::default()),
        }
    }

    /// Applies one event of this stream. Events of another stream's kind are ignored.
    pub fn evolve(&mut self, event: &Event) {
        match self {
            Self::Catalog(state) => state.evolve(event),
            Self::Player(state) => state.evolve(event),
            Self::Lab(state) => state.evolve(event),
            Self::Username(holder) => {
                if let Event::UsernameClaimed { player_id, .. } = event {
                    *holder = Some(*player_id);
                }
            }
        }
    }

    /// Folds a stream's events from its initial state.
    pub fn fold<'a>(stream: &StreamId, events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Self::initial(stream);
        for event in events {
            state.evolve(event);
        }
        state
    }
}

/// The academy folds one view of each of its streams: the stream's own state.
impl View for StreamState {
    fn initial(stream: &questlog_domain::StreamId) -> Self {
        match stream.kind() {
            CATALOG => Self::Catalog(CatalogState::default()),
            USERNAME => Self::Username(None),
            LAB => Self::Lab(LabSession::default()),
            _ => Self::Player(PlayerState::default()),
        }
    }

    fn evolve(&mut self, event: &questlog_domain::Event) {
        if let Some(event) = event.get::<Event>() {
            StreamState::evolve(self, event);
        }
    }
}
