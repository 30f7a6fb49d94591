//! Configuration: one clap-derive struct per command, every field settable by flag or environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// questlog: an event-sourced backend for games and learning platforms.
#[derive(Debug, Parser)]
#[command(name = "questlog", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Cmd,
}

/// The binary's own commands; the modules' admin commands (`AdminCommandsExt`) are added to
/// these when the command line is read (`main.rs`).
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the database if needed and bring its schema up to date.
    Migrate,
    /// Run the services (all of them in one process by default).
    Serve(ServeArgs),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Show a stream's events, straight from the log (read-only).
    History(HistoryArgs),
    /// Show a stream's state at a version or a time, folded by the domain (read-only).
    State(StateArgs),
    /// Show the log's size and each projection's checkpoint and lag (read-only).
    Stats(StatsArgs),
    /// Rebuild every read model from the log and compare it with the live one; exits 1 on any
    /// drift.
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild read models from the log into new tables and switch them in, reads staying up
    /// (after changing a projection's code); with --to, build them as of a past point into a
    /// schema of their own instead, switching nothing.
    Replay {
        /// A projection (as `questlog stats` lists them) or all.
        projection: String,
        /// Build as of this log position or RFC 3339 time, for inspection.
        #[arg(long)]
        to: Option<crate::admin::rebuild::Point>,
        /// Switch the rebuilt tables in (without it, only say what would be done).
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the event log, with what the modules keep beside it (their archive sections) and the
    /// idempotency keys, to a compressed, checksummed file (one consistent snapshot; the services may
    /// keep running).
    Export(ExportArgs),
    /// Load a file written by `export` into a database whose event log is empty, exactly as it
    /// was (same positions, ids, payloads and times). Read models are rebuilt by replay when
    /// questlog starts on it.
    Import(ImportArgs),
    /// Bring the JetStream stream and the read models back to this database's log when they hold
    /// another history (another deployment's stream on the same NATS prefix, or a stream ahead of
    /// a database restored from a backup): deletes such a stream, so that the relay republishes
    /// the log, and empties such read models, so that their projectors rebuild them. Run it with
    /// every questlog process of the deployment stopped.
    Repair {
        /// Repair. Without it, only say what is wrong and what would be done (exit status 2 when
        /// something is).
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Issue a token (the only way to get an admin token).
    Issue(TokenIssueArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Postgres URL of the event log and the read models.
    #[arg(
        long,
        env = "QUESTLOG_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/questlog",
        global = true
    )]
    pub database_url: String,

    /// NATS URL (JetStream must be enabled), or a comma-separated list of the servers of a NATS
    /// cluster: the client connects to any of them and moves to another when one is lost.
    #[arg(
        long,
        env = "QUESTLOG_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,

    /// Prefix of every NATS name (JetStream stream, consumers, subjects), so that several
    /// deployments can share one nats-server.
    #[arg(
        long,
        env = "QUESTLOG_NATS_PREFIX",
        default_value = "questlog",
        global = true
    )]
    pub nats_prefix: String,

    /// Secret that signs tokens, at least 32 bytes (shorter is refused at start). When unset, a
    /// development secret is generated once and kept in the database (with a warning): set it in
    /// production.
    #[arg(
        long,
        env = "QUESTLOG_TOKEN_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub token_secret: Option<String>,

    /// Days a token stays valid.
    #[arg(
        long,
        env = "QUESTLOG_TOKEN_TTL_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub token_ttl_days: i64,
}

/// One of questlog's services, to run alone (split mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// The write side: identities and commands over HTTP.
    CommandApi,
    /// Publishes the log to NATS JetStream.
    Relay,
    /// Folds the published log into the read models.
    Projector,
    /// The read side over HTTP, with live subscriptions.
    QueryApi,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Run only this service (every service in one process when omitted).
    #[arg(value_enum)]
    pub service: Option<Service>,

    /// Address to listen on.
    #[arg(long, env = "QUESTLOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Largest request body, in bytes.
    #[arg(long, env = "QUESTLOG_BODY_LIMIT", default_value_t = questlog_command_api::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Most commands committed in one transaction.
    #[arg(long, env = "QUESTLOG_MAX_BATCH", default_value_t = 256)]
    pub max_batch: usize,

    /// Postgres connections in the pool.
    #[arg(long, env = "QUESTLOG_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

    /// Postgres URL of a streaming replica of `QUESTLOG_DATABASE_URL`'s server (the same
    /// database on a hot standby) for the query API to read the read models and the log from;
    /// writes (commands, projectors, the relay, subscription tickets) stay on the primary. Reads
    /// with `min_position` wait until the standby shows the position. Name one standby per
    /// process (not a pool of them behind one address). Unset: reads go to the primary.
    #[arg(long, env = "QUESTLOG_READ_DATABASE_URL")]
    pub read_database_url: Option<String>,

    /// The modules' settings (`crate::modules`).
    #[command(flatten)]
    pub modules: crate::modules::ModuleArgs,

    /// Sessions' tokens and the limit on anonymous identities.
    #[command(flatten)]
    pub sessions: SessionArgs,

    /// The JetStream stream's replicas and bound.
    #[command(flatten)]
    pub stream: StreamArgs,

    /// Origins whose web pages may call questlog (CORS), comma-separated, each as the browser
    /// sends it (`http://localhost:5173`); `*` (the default) for any — safe because questlog
    /// authenticates with Bearer tokens, never cookies; empty for none (same-origin pages only).
    #[arg(
        long,
        env = "QUESTLOG_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,
}

impl ServeArgs {
    /// The defaults, listening on `listen`.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            service: None,
            listen,
            body_limit: questlog_command_api::DEFAULT_BODY_LIMIT,
            max_batch: 256,
            db_pool: 16,
            read_database_url: None,
            modules: crate::modules::ModuleArgs::default(),
            sessions: SessionArgs::default(),
            stream: StreamArgs::default(),
            cors_origins: vec!["*".to_owned()],
        }
    }
}

/// Sessions' tokens, and how anonymous identities are limited per client address.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Seconds a session's access token lives (a login's, a refresh's).
    #[arg(long, env = "QUESTLOG_ACCESS_TTL_SECS", default_value_t = 900)]
    pub access_ttl_secs: u32,

    /// Seconds a refresh token lives (each refresh hands out a new one).
    #[arg(long, env = "QUESTLOG_REFRESH_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_ttl_secs: u32,

    /// Anonymous identities (`POST /v1/identity`) one client address may create per minute, on
    /// average.
    #[arg(long, env = "QUESTLOG_IDENTITY_PER_MINUTE", default_value_t = std::num::NonZeroU32::new(10).expect("positive"))]
    pub identity_per_minute: std::num::NonZeroU32,

    /// Anonymous identities one client address may create at once.
    #[arg(long, env = "QUESTLOG_IDENTITY_BURST", default_value_t = std::num::NonZeroU32::new(20).expect("positive"))]
    pub identity_burst: std::num::NonZeroU32,

    /// The header a trusted reverse proxy puts the client's address in (`X-Forwarded-For`:
    /// its last address counts; `X-Real-IP`). Unset: clients connect directly and the peer's
    /// address counts; no header is believed.
    #[arg(long, env = "QUESTLOG_TRUSTED_PROXY_HEADER")]
    pub trusted_proxy_header: Option<String>,
}

impl Default for SessionArgs {
    fn default() -> Self {
        Self {
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            identity_per_minute: std::num::NonZeroU32::new(10).expect("positive"),
            identity_burst: std::num::NonZeroU32::new(20).expect("positive"),
            trusted_proxy_header: None,
        }
    }
}

/// How the log's JetStream stream is kept. The relay creates the stream with these settings and,
/// when it finds them changed, applies them to the existing stream.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Copies of the stream on a NATS cluster: 1 on a single server, 3 on a cluster of three or
    /// more (any one node may then be lost, the stream's leader included, without stopping
    /// anything). At most the cluster's size (and 5).
    #[arg(long, env = "QUESTLOG_STREAM_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,

    /// Seconds the stream keeps a message (unset: no age bound). The log in Postgres is the
    /// history: a projection that needs an event the stream dropped reads it from the log. Keep
    /// it well above the longest relay outage you plan for (a relay that finds the stream
    /// emptied by age resumes from where it recorded leaving it).
    #[arg(long, env = "QUESTLOG_STREAM_MAX_AGE_SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_max_age_secs: Option<u64>,

    /// Bytes the stream may hold before it drops its oldest messages (unset: no size bound).
    #[arg(long, env = "QUESTLOG_STREAM_MAX_BYTES",
          value_parser = clap::value_parser!(i64).range(1..))]
    pub stream_max_bytes: Option<i64>,
}

impl Default for StreamArgs {
    fn default() -> Self {
        Self {
            stream_replicas: 1,
            stream_max_age_secs: None,
            stream_max_bytes: None,
        }
    }
}

impl StreamArgs {
    /// The stream settings these arguments name.
    pub fn settings(&self) -> questlog_bus::StreamSettings {
        questlog_bus::StreamSettings {
            replicas: usize::from(self.stream_replicas),
            max_age: self.stream_max_age_secs.map(std::time::Duration::from_secs),
            max_bytes: self.stream_max_bytes,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TokenIssueArgs {
    /// Issue an admin token.
    #[arg(long)]
    pub admin: bool,

    /// The identity the token speaks for (a new one when omitted).
    #[arg(long)]
    pub identity: Option<uuid::Uuid>,

    /// Print the identity and token as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The stream: `<kind>-<key>`, or `<kind>` for a kind's one stream (the running modules'
    /// kinds).
    pub stream: String,

    /// The first version to show (from the stream's first event when omitted).
    #[arg(long)]
    pub from: Option<u64>,

    /// The last version to show (up to the stream's latest event when omitted).
    #[arg(long)]
    pub to: Option<u64>,

    /// Print the events as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The file to write (it must not exist yet).
    pub file: PathBuf,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// The stream, as for `questlog history`.
    pub stream: String,

    /// A stream version (0: before its first event), or an RFC 3339 time: the state after the
    /// last event recorded at or before it.
    #[arg(long)]
    pub at: crate::admin::inspect::At,

    /// Print the state as JSON (the `state` of `GET /v1/admin/streams/{stream}`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Print the statistics as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file to read, as written by `questlog export`.
    pub file: PathBuf,

    /// Import. Without it the file is verified and what would be imported is printed, nothing is
    /// written, and the exit status is 2.
    #[arg(long)]
    pub yes: bool,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}
