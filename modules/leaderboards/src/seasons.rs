//! The seasons job: starts each board's next season at its reset schedule's tick.
//!
//! One process leads across replicas (advisory lock `leaderboard-seasons`), and leadership is
//! not what keeps seasons exact: a season is started by the internal `roll_seasons` command,
//! decided against the board's stream like any other, which starts exactly the seasons whose
//! ticks have passed (each with its tick's own time) and nothing when none has, so two
//! processes racing start each season once (the second conflicts, decides again and finds
//! nothing due). Nothing here remembers a tick: after a restart the first round starts every
//! season whose tick passed while everything was down. A score submitted after a tick lands in
//! the new season even before the job comes round (the submission starts the due seasons
//! first).

use std::time::Duration;

use chrono::{DateTime, Utc};
use questlog_command_api::jobs::JobContext;
use questlog_command_api::writer::Request;
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, Role};
use questlog_store::leader;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::values::{BoardId, Reset};
use crate::Command;

/// The job's name, and its advisory lock's.
pub const JOB: &str = "leaderboard-seasons";

/// The time between rounds unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The identity the job's commands are recorded under.
pub const SEASONS: Actor = Actor {
    identity: PlayerId(Uuid::nil()),
    role: Role::Admin,
};

/// The job: leads when it can, and rolls the seasons due every `interval`.
pub async fn job(interval: Duration, context: JobContext) {
    let shutdown = context.shutdown.clone();
    while !shutdown.is_cancelled() {
        let Some(conn) = leader::acquire(&context.database_url, JOB, interval, &shutdown).await
        else {
            break;
        };
        if let Err(e) = lead(&context, interval, conn).await {
            tracing::warn!(error = %e, "leaderboard seasons job interrupted; starting over");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
}

async fn lead(
    context: &JobContext,
    interval: Duration,
    mut conn: PgConnection,
) -> Result<(), sqlx::Error> {
    loop {
        let now = context.clock.now();
        let boards: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT leaderboard, reset, tick_base FROM rm_leaderboards \
             WHERE reset IS NOT NULL ORDER BY leaderboard",
        )
        .fetch_all(&mut conn)
        .await?;
        for (board, reset, base) in boards {
            let due = Reset::parse(&reset)
                .ok()
                .and_then(|r| r.next_after(base))
                .is_some_and(|tick| tick <= now);
            let Ok(board) = BoardId::parse(&board) else {
                continue;
            };
            if !due {
                continue;
            }
            let rolled = context
                .writer
                .submit(Request {
                    actor: SEASONS,
                    command: Box::new(Command::RollSeasons { board }),
                    correlation_id: None,
                    idempotency: None,
                })
                .await;
            if let Err(e) = rolled {
                tracing::debug!(error = %e, "a season roll was not taken; the next round sees");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = context.shutdown.cancelled() => return Ok(()),
        }
    }
}
