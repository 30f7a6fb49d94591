//! questlog's names and messages on NATS. Every name hangs off one prefix, so several deployments
//! (or tests) share a nats-server without seeing each other.
//!
//! - JetStream stream `<PREFIX>_EVENTS` holds the log, one message per event, on subject
//!   `<prefix>.events.<stream kind>.<stream id>`; message id = event id; headers carry the
//!   position and event type.
//! - Core subject `<prefix>.changes.<projection>` carries a [`ChangeAnnouncement`] after every
//!   projector commit.

pub mod lineage;

use serde::{Deserialize, Serialize};

/// Header with the event's global log position.
pub const POSITION_HEADER: &str = "Questlog-Position";
/// Header with the event's type.
pub const EVENT_TYPE_HEADER: &str = "Questlog-Event-Type";
/// Header with the event's stream id.
pub const STREAM_HEADER: &str = "Questlog-Stream";

/// The NATS names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (letters, digits, `_` and `-`; default `questlog`).
    pub fn new(prefix: &str) -> Self {
        let clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self { prefix: clean }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The JetStream stream holding the log.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase())
    }

    /// Every subject of the log.
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// The subject of one event, from its stream id (`<kind>-<key>` → `…events.<kind>.<key>`).
    pub fn event_subject(&self, stream_id: &str) -> String {
        let (kind, id) = stream_id.split_once('-').unwrap_or((stream_id, "_"));
        let id: String = id
            .chars()
            .map(|c| {
                if matches!(c, '.' | '*' | '>' | ' ') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        format!(
            "{}.events.{}.{}",
            self.prefix,
            kind,
            if id.is_empty() { "_".into() } else { id }
        )
    }

    /// Where a projection announces its commits.
    pub fn changes_subject(&self, projection: &str) -> String {
        format!("{}.changes.{projection}", self.prefix)
    }

    /// Every projection's announcements.
    pub fn changes_wildcard(&self) -> String {
        format!("{}.changes.>", self.prefix)
    }
}

/// A projection's name: its checkpoint row, leadership lock and announcement subject. Declared
/// once by the module that owns the projection and used by its readers, so a name cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectionName(&'static str);

impl ProjectionName {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The kind of a live topic: its first part (`board`, or `item` in `item:<key>`).
/// Declared once by the module that owns the topic; its projections name their changes with it
/// and the live hub parses subscriptions with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKind(&'static str);

impl TopicKind {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The topic of this kind for `key`: `<kind>:<key>`.
    pub fn topic(self, key: impl std::fmt::Display) -> String {
        format!("{}:{key}", self.0)
    }

    /// Splits a written topic into its kind's name and the rest (`None` for a bare kind).
    pub fn split(written: &str) -> (&str, Option<&str>) {
        match written.split_once(':') {
            Some((kind, rest)) => (kind, Some(rest)),
            None => (written, None),
        }
    }
}

impl std::fmt::Display for TopicKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// What a projector committed: the projection, the log position it now reflects, and which
/// keys of which topics changed (for live subscriptions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeAnnouncement {
    pub projection: String,
    pub position: i64,
    /// The position the projection reflected before this commit. A listener that last heard of
    /// a lower one has missed an announcement (core NATS delivers at most once), so it knows its
    /// changes are incomplete instead of silently skipping them. `None` from older projectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<i64>,
    /// The identity of the log the projector folds ([`questlog_store::lineage::identity`]): a
    /// listener ignores announcements of another log (another deployment on the same NATS
    /// prefix). `None` from older projectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    pub changes: Vec<Change>,
}

/// One changed row: its topic (`<kind>` or `<kind>:<key>`, see [`TopicKind`]), key and operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub topic: String,
    pub key: String,
    pub op: ChangeOp,
    /// The position of the event that made this change.
    pub position: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Upsert,
    Delete,
}

/// Connects to NATS, retrying in the background for ever when the server is away.
///
/// # Errors
/// When the URL is malformed.
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(2))
        .connect(url)
        .await
}

/// Creates the log's JetStream stream if it does not exist.
///
/// # Errors
/// When JetStream cannot be reached or refuses the stream.
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    names: &Names,
) -> Result<async_nats::jetstream::stream::Stream, async_nats::jetstream::context::CreateStreamError>
{
    use async_nats::jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: names.events_stream(),
        subjects: vec![names.events_wildcard()],
        storage: stream::StorageType::File,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    })
    .await
}
