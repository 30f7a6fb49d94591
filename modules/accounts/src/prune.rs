//! The sessions job: deletes the sessions nothing can use any more (the kernel's
//! `questlog_command_api::sessions::prune`: past their refresh token's expiry, or ended more than
//! a day ago), so `auth_sessions` holds the live sessions and the recently ended ones, not every
//! login ever made.
//!
//! Every process that runs the command API runs it; no leadership is needed, since a deletion is
//! idempotent (two processes pruning at once delete each row once). It reads the writer's clock, so
//! that a test moving the clock moves expiry for the job as for the tokens.

use std::time::Duration;

use questlog_command_api::jobs::JobContext;
use questlog_command_api::sessions::prune;

/// The job's name.
pub const JOB: &str = "session-pruning";

/// The time between rounds unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The job: a round at once, then one every `interval`, until the process stops.
pub async fn job(interval: Duration, context: JobContext) {
    loop {
        match prune(&context.pool, context.clock.now()).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "sessions pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning sessions failed; the next round retries"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = context.shutdown.cancelled() => return,
        }
    }
}
