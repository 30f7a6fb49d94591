//! One log, one history, as the running services see it: a monitor that checks every few seconds
//! that the JetStream stream and the read models belong to this database's log, `/readyz`
//! answering 503 with the mismatch, and a gate that answers every read of the query API with the
//! same 503 while it lasts — so that no read ever answers from a history that is not this log's,
//! however it came about. The relay and the projectors refuse such a history on their own (they
//! publish and fold nothing of it); the monitor is what makes the refusal visible.

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
    found: Arc<watch::Sender<Vec<Mismatch>>>,
}

impl Monitor {
    /// Checks once now (so that the first request is already judged), then every `every` until
    /// `shutdown`. A check that cannot run (Postgres or NATS away) keeps the last verdict: being
    /// unreachable is `/readyz`'s other answer, not a mismatch.
    pub async fn spawn(
        pool: PgPool,
        nats: async_nats::Client,
        names: Names,
        every: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let js = async_nats::jetstream::new(nats);
        let monitor = Self {
            found: Arc::new(watch::Sender::new(Vec::new())),
        };
        if let Ok(found) = check(&pool, &js, &names).await {
            monitor.found.send_replace(found);
        }
        let task = monitor.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
                match check(&pool, &js, &names).await {
                    Ok(found) => {
                        if !found.is_empty() && *task.found.borrow() != found {
                            for mismatch in &found {
                                tracing::error!(%mismatch, remedy = Mismatch::REMEDY, "reads are refused");
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

    /// The mismatches found by the last check.
    pub fn found(&self) -> Vec<Mismatch> {
        self.found.borrow().clone()
    }
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
    let what: Vec<String> = found.iter().map(ToString::to_string).collect();
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_mismatch",
        format!(
            "questlog will not answer from a history that is not this database's log: {}. To \
             resolve it, {}.",
            what.join("; "),
            Mismatch::REMEDY
        ),
    )
}

/// Middleware: refuses every request with [`problem`] while the monitor reports a mismatch.
pub async fn gate(State(monitor): State<Monitor>, request: Request, next: Next) -> Response {
    let found = monitor.found();
    // (`/metrics` is not behind the gate: metrics describe the process, not a history, so they
    // stay up for whoever investigates.)
    if found.is_empty() {
        next.run(request).await
    } else {
        problem(&found).into_response()
    }
}
