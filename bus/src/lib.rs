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

/// The NATS names of one deployment, and the settings its log's stream is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    stream: StreamSettings,
}

/// How the log's JetStream stream is kept: its replicas on a NATS cluster, and its bound.
///
/// The log in Postgres is the history; the stream is a feed of it. A bounded stream drops its
/// oldest messages (by age or size), and a projection that needs events older than its first
/// message reads them from the log (see the projector's runner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Copies of every message on a NATS cluster (1 on a single server, 3 on a cluster of three
    /// or more: one node may then be lost without losing the stream or stopping it).
    pub replicas: usize,
    /// Messages older than this are dropped (`None`: kept by age for ever).
    pub max_age: Option<std::time::Duration>,
    /// The stream's size is kept under this many bytes by dropping its oldest messages
    /// (`None`: no bound).
    pub max_bytes: Option<i64>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: None,
            max_bytes: None,
        }
    }
}

/// How long JetStream remembers a message id, to drop a second publish of the same event.
const DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

impl StreamSettings {
    /// The stream's JetStream configuration for `names`.
    fn config(&self, names: &Names) -> async_nats::jetstream::stream::Config {
        use async_nats::jetstream::stream;
        stream::Config {
            name: names.events_stream(),
            subjects: vec![names.events_wildcard()],
            storage: stream::StorageType::File,
            // JetStream refuses a duplicate window longer than the stream's max age.
            duplicate_window: self
                .max_age
                .map_or(DUPLICATE_WINDOW, |age| age.min(DUPLICATE_WINDOW)),
            num_replicas: self.replicas.max(1),
            max_age: self.max_age.unwrap_or_default(),
            max_bytes: self.max_bytes.filter(|b| *b > 0).unwrap_or(-1),
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    /// Whether `config` (a stream's, as JetStream reports it) keeps messages as these settings say.
    fn matches(&self, config: &async_nats::jetstream::stream::Config) -> bool {
        let bytes = |b: i64| if b > 0 { b } else { -1 };
        config.num_replicas.max(1) == self.replicas.max(1)
            && config.max_age == self.max_age.unwrap_or_default()
            && bytes(config.max_bytes) == bytes(self.max_bytes.unwrap_or(-1))
    }
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
        Self {
            prefix: clean,
            stream: StreamSettings::default(),
        }
    }

    /// The same names, with the stream created (and, by the relay, kept) with `settings`.
    #[must_use]
    pub fn with_stream(mut self, settings: StreamSettings) -> Self {
        self.stream = settings;
        self
    }

    /// The settings the log's stream is created with.
    pub fn stream_settings(&self) -> &StreamSettings {
        &self.stream
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

/// Connects to NATS, retrying in the background for ever when the server is away. `urls` is one
/// URL or a comma-separated list of them (the servers of a cluster: the client connects to any
/// and moves to another when it is lost; it also learns the cluster's other servers from the one
/// it reaches).
///
/// # Errors
/// When a URL is malformed.
pub async fn connect(urls: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    let servers = server_urls(urls).map_err(async_nats::ConnectError::from)?;
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(2))
        .connect(servers)
        .await
}

/// The servers of a comma-separated list of NATS URLs (blanks around each ignored).
///
/// # Errors
/// When one is malformed, or the list is empty.
pub fn server_urls(urls: &str) -> std::io::Result<Vec<async_nats::ServerAddr>> {
    let servers = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::parse::<async_nats::ServerAddr>)
        .collect::<std::io::Result<Vec<_>>>()?;
    if servers.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no NATS URL given",
        ));
    }
    Ok(servers)
}

/// How long a JetStream API request (stream and consumer look-ups, not publish acknowledgements)
/// may take. A stream with a leader answers within milliseconds; while a NATS cluster elects a
/// new leader (after losing a node) requests go unanswered, and a short timeout asks again
/// sooner than the client's default of 5 s.
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A JetStream context for looking up and opening the stream and its consumers, whose requests
/// time out after [`API_TIMEOUT`].
pub fn jetstream_api(client: async_nats::Client) -> async_nats::jetstream::Context {
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(API_TIMEOUT);
    js
}

/// How a projector reads the stream from `start_sequence`: a pull consumer without acks (every
/// opening names its start), dropped by the server 60 s after its reader went away.
///
/// With the stream on one server, an ephemeral consumer. With the stream on several nodes, a
/// consumer replicated like the stream, under a name of its own: an ephemeral consumer has one
/// replica, and JetStream before 2.12 may place it on any node of the stream, a node it lost
/// included (nats-server pull request 7165), where opening it hangs until it times out, as often
/// as the placement falls there. A replicated consumer needs only a majority of the stream's
/// nodes, and moves to a surviving one when its leader's node is lost.
pub fn reader_config(
    names: &Names,
    start_sequence: u64,
) -> async_nats::jetstream::consumer::pull::Config {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
    let replicas = names.stream_settings().replicas;
    async_nats::jetstream::consumer::pull::Config {
        durable_name: (replicas > 1).then(|| {
            format!(
                "{}_reader_{}",
                names.prefix().replace(['.', '*', '>'], "_"),
                uuid::Uuid::new_v4().simple()
            )
        }),
        num_replicas: if replicas > 1 { replicas } else { 0 },
        ack_policy: AckPolicy::None,
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
        inactive_threshold: std::time::Duration::from_secs(60),
        ..Default::default()
    }
}

/// One delivery of a reader's pull stream: an event of the log, or why the pull failed.
pub type Delivery =
    Result<async_nats::jetstream::Message, async_nats::jetstream::consumer::pull::MessagesError>;

/// Pulls from a reader (made by [`reader_config`]) up to `batch` events a request. A consumer
/// whose node was lost (on a NATS cluster) is noticed by its missed heartbeats: the reader then
/// opens another.
///
/// # Errors
/// When JetStream refuses the pull.
pub async fn pull(
    consumer: &async_nats::jetstream::consumer::Consumer<
        async_nats::jetstream::consumer::pull::Config,
    >,
    batch: usize,
) -> anyhow::Result<async_nats::jetstream::consumer::pull::Stream> {
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(std::time::Duration::from_secs(2))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pulling from the event stream: {e}"))
}

/// Creates the log's JetStream stream, with the settings `names` carry, if it does not exist.
///
/// # Errors
/// When JetStream cannot be reached or refuses the stream.
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    names: &Names,
) -> Result<async_nats::jetstream::stream::Stream, async_nats::jetstream::context::CreateStreamError>
{
    js.get_or_create_stream(names.stream.config(names)).await
}

/// [`ensure_stream`], then brings an existing stream's replicas and bound to the settings `names`
/// carry (JetStream moves a stream to more or fewer replicas, and applies a new bound, in
/// place). The relay does it as it starts leading, so one process decides.
///
/// # Errors
/// When JetStream cannot be reached or refuses the stream or the change.
pub async fn ensure_stream_settings(
    js: &async_nats::jetstream::Context,
    names: &Names,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    let mut stream = ensure_stream(js, names).await.map_err(|e| {
        anyhow::anyhow!(
            "creating the JetStream stream {}: {e}",
            names.events_stream()
        )
    })?;
    let info = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("reading the JetStream stream's settings: {e}"))?;
    if !names.stream.matches(&info.config) {
        let mut config = info.config.clone();
        let wanted = names.stream.config(names);
        config.num_replicas = wanted.num_replicas;
        config.max_age = wanted.max_age;
        config.max_bytes = wanted.max_bytes;
        config.discard = wanted.discard;
        config.duplicate_window = wanted.duplicate_window;
        tracing::info!(
            stream = %names.events_stream(),
            replicas = config.num_replicas,
            max_age_secs = config.max_age.as_secs(),
            max_bytes = config.max_bytes,
            "changing the event stream's replicas and bound"
        );
        js.update_stream(&config).await.map_err(|e| {
            anyhow::anyhow!(
                "changing the JetStream stream {}: {e}",
                names.events_stream()
            )
        })?;
        stream = js.get_stream(names.events_stream()).await.map_err(|e| {
            anyhow::anyhow!(
                "opening the JetStream stream {}: {e}",
                names.events_stream()
            )
        })?;
    }
    Ok(stream)
}
