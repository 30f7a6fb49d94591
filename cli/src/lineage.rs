//! One log, one history, as the running services see it: a monitor that checks every few seconds
//! that the JetStream stream and the read models belong to this database's log, `/readyz`
//! answering 503 with the mismatch, and a gate that answers every read of the query API with the
//! same 503 while it lasts — so that no read ever answers from a history that is not this log's,
//! however it came about. The relay and the projectors refuse such a history on their own (they
//! publish and fold nothing of it); the monitor is what makes the refusal visible.
//!
//! When the query API reads from a streaming replica (`QUESTLOG_READ_DATABASE_URL`), the monitor
//! also checks that the replica is a copy of this database's log: the same database of the same
//! cluster (system identifier and database oid), whose newest event the primary holds at the same
//! position — a replica of another cluster, another database, or a standby promoted and written to
//! on its own is refused like another history.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use questlog_bus::lineage::{self, Mismatch};
use questlog_bus::Names;
use questlog_web::Problem;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the last check found. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    found: Arc<watch::Sender<Verdict>>,
}

/// One check's findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Where the stream or a read model is not this log's.
    pub mismatches: Vec<Mismatch>,
    /// Why the database reads come from is not a copy of this log, when it is not.
    pub read_database: Option<String>,
}

impl Verdict {
    /// Whether reads may be answered.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty() && self.read_database.is_none()
    }
}

impl Monitor {
    /// Checks once now (so that the first request is already judged), then every `every` until
    /// `shutdown`. A check that cannot run (Postgres or NATS away) keeps the last verdict: being
    /// unreachable is `/readyz`'s other answer, not a mismatch. `reads` is the streaming replica
    /// the query API reads from, when it reads from one.
    pub async fn spawn(
        pool: PgPool,
        reads: Option<PgPool>,
        nats: async_nats::Client,
        names: Names,
        every: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let js = async_nats::jetstream::new(nats);
        let monitor = Self {
            found: Arc::new(watch::Sender::new(Verdict::default())),
        };
        if let Ok(found) = verdict(&pool, reads.as_ref(), &js, &names).await {
            monitor.found.send_replace(found);
        }
        let task = monitor.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
                match verdict(&pool, reads.as_ref(), &js, &names).await {
                    Ok(found) => {
                        if !found.is_clean() && *task.found.borrow() != found {
                            for mismatch in &found.mismatches {
                                tracing::error!(%mismatch, remedy = Mismatch::REMEDY, "reads are refused");
                            }
                            if let Some(why) = &found.read_database {
                                tracing::error!(mismatch = why, "reads are refused");
                            }
                        }
                        task.found.send_replace(found);
                    }
                    Err(e) => tracing::debug!(error = format!("{e:#}"), "lineage check skipped"),
                }
            }
        });
        monitor
    }

    /// What the last check found.
    pub fn found(&self) -> Verdict {
        self.found.borrow().clone()
    }
}

/// The stream, the read models and, when reads come from a replica, the replica, checked.
async fn verdict(
    pool: &PgPool,
    reads: Option<&PgPool>,
    js: &async_nats::jetstream::Context,
    names: &Names,
) -> anyhow::Result<Verdict> {
    let mismatches = check(pool, js, names).await?;
    let read_database = match reads {
        Some(reads) => read_database(pool, reads).await?,
        None => None,
    };
    Ok(Verdict {
        mismatches,
        read_database,
    })
}

/// Why the database `reads` is not a copy of the log of `primary`, when it is not: it must be the
/// same database of the same cluster, and the primary must hold its newest event at the same
/// position (read there after it, so that a replica behind the primary is still a copy).
///
/// # Errors
/// When either database cannot be asked.
pub async fn read_database(primary: &PgPool, reads: &PgPool) -> anyhow::Result<Option<String>> {
    let ours = {
        let mut conn = primary.acquire().await?;
        questlog_store::lineage::identity(&mut conn).await?
    };
    let mut conn = reads.acquire().await?;
    let theirs = questlog_store::lineage::identity(&mut conn).await?;
    if theirs != ours {
        return Ok(Some(format!(
            "the read database (QUESTLOG_READ_DATABASE_URL) is another database ({theirs}) than \
             QUESTLOG_DATABASE_URL's ({ours}, system identifier:database oid): it must name the \
             same database on a streaming replica of that server"
        )));
    }
    let newest: Option<(i64, uuid::Uuid)> =
        sqlx::query_as("SELECT position, event_id FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    drop(conn);
    let Some((position, event_id)) = newest else {
        return Ok(None);
    };
    let held: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events WHERE position = $1")
            .bind(position)
            .fetch_optional(primary)
            .await?;
    Ok((held != Some(event_id)).then(|| {
        format!(
            "the read database (QUESTLOG_READ_DATABASE_URL) holds event {event_id} at position \
             {position}, which QUESTLOG_DATABASE_URL's log does not: it is no longer a replica \
             of it (promoted and written to, or the primary restored from a backup); point it at \
             a standby that follows the primary"
        )
    }))
}

/// One check of the stream and every read model against the log.
///
/// # Errors
/// When Postgres or JetStream cannot be asked.
pub async fn check(
    pool: &PgPool,
    js: &async_nats::jetstream::Context,
    names: &Names,
) -> anyhow::Result<Vec<Mismatch>> {
    let mut conn = pool.acquire().await?;
    lineage::check(&mut conn, Some(js), names).await
}

/// The answer while a mismatch lasts: 503 `log_mismatch`, naming it and the remedy.
pub fn problem(found: &[Mismatch]) -> Problem {
    problem_of(&Verdict {
        mismatches: found.to_vec(),
        read_database: None,
    })
}

/// [`problem`] for everything a check found.
pub fn problem_of(found: &Verdict) -> Problem {
    let what: Vec<String> = found
        .mismatches
        .iter()
        .map(ToString::to_string)
        .chain(found.read_database.iter().cloned())
        .collect();
    let mut detail = format!(
        "questlog will not answer from a history that is not this database's log: {}.",
        what.join("; ")
    );
    if !found.mismatches.is_empty() {
        detail.push_str(&format!(" To resolve it, {}.", Mismatch::REMEDY));
    }
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "log_mismatch", detail)
}

/// Middleware: refuses every request with [`problem`] while the monitor reports a mismatch.
pub async fn gate(State(monitor): State<Monitor>, request: Request, next: Next) -> Response {
    let found = monitor.found();
    // (`/metrics` is not behind the gate: metrics describe the process, not a history, so they
    // stay up for whoever investigates.)
    if found.is_clean() {
        next.run(request).await
    } else {
        problem_of(&found).into_response()
    }
}
