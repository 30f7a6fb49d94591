//! The presence reaper: takes a player offline when its last heartbeat is older than the timeout.
//!
//! One reaper is active across every replica (a Postgres advisory lock). It reads the last-seen
//! times the command side keeps (`presence_seen`, written in the same transaction as the batch
//! that carried the heartbeat), so it survives restarts: players whose heartbeats stopped while
//! everything was down go offline at the first round after the restart. Each claim goes through
//! the writer as an internal `go_offline` command, decided by the domain like any other; the append
//! refuses it if a heartbeat arrived after the reaper looked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use questlog_command_api::jobs::JobContext;
use questlog_command_api::writer::{Clock, Request, WriterHandle};
use questlog_domain::{Actor, Role};
use questlog_store::leader;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use questlog_academy::values::PlayerId;

use crate::Command;

/// The most players taken offline in one round.
const ROUND: i64 = 1000;

/// The job's name, and its advisory lock's.
pub const JOB: &str = "presence-reaper";

/// The default timeout: offline after two minutes without a heartbeat.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The interval between rounds for a timeout: a quarter of it, at least 50 ms, at most 5 s.
pub fn interval_for(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// How the reaper runs.
#[derive(Debug, Clone)]
pub struct ReaperConfig {
    pub database_url: String,
    /// Offline after this long without a heartbeat.
    pub timeout: Duration,
    /// Time between rounds (and between leadership attempts).
    pub interval: Duration,
    pub clock: Clock,
}

impl ReaperConfig {
    /// A reaper for `timeout`, looking every quarter of it (at most every 5 s).
    pub fn new(database_url: &str, timeout: Duration, clock: Clock) -> Self {
        Self {
            database_url: database_url.to_owned(),
            timeout,
            interval: interval_for(timeout),
            clock,
        }
    }
}

/// The reaper as a scheduled job: its timeout and interval from the module, the rest from the
/// process.
pub async fn job(timeout: Duration, interval: Duration, context: JobContext) {
    let config = ReaperConfig {
        database_url: context.database_url,
        timeout,
        interval,
        clock: context.clock,
    };
    run(config, context.writer, context.shutdown).await;
}

/// The identity the reaper's commands are recorded under.
pub const REAPER: Actor = Actor {
    identity: PlayerId(Uuid::nil()),
    role: Role::Admin,
};

/// Runs the reaper until `shutdown` fires.
pub async fn run(config: ReaperConfig, writer: WriterHandle, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let Some(conn) =
            leader::acquire(&config.database_url, JOB, config.interval, &shutdown).await
        else {
            break;
        };
        if let Err(e) = lead(&config, &writer, conn, &shutdown).await {
            tracing::warn!(error = %e, "presence reaper interrupted; starting over");
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
}

async fn lead(
    config: &ReaperConfig,
    writer: &WriterHandle,
    mut conn: PgConnection,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let timeout = chrono::Duration::from_std(config.timeout).unwrap_or(chrono::Duration::MAX);
    loop {
        let cutoff = config.clock.now() - timeout;
        let stale: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
            "SELECT player_id, last_seen FROM presence_seen WHERE last_seen < $1 \
             ORDER BY last_seen LIMIT $2",
        )
        .bind(cutoff)
        .bind(ROUND)
        .fetch_all(&mut conn)
        .await?;
        let full = i64::try_from(stale.len()).unwrap_or(i64::MAX) == ROUND;
        let claims = stale.into_iter().map(|(player, last_seen)| {
            writer.submit(Request {
                actor: REAPER,
                command: Box::new(Command::GoOffline {
                    player_id: PlayerId(player),
                    last_seen,
                }),
                correlation_id: None,
                idempotency: None,
            })
        });
        let mut all_taken = true;
        for outcome in join_all(claims).await {
            if let Err(e) = outcome {
                // A heartbeat came in meanwhile, or the store is away: the next round sees.
                tracing::debug!(error = %e, "a presence claim was not taken");
                all_taken = false;
            }
        }
        if full && all_taken {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}
