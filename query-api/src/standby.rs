//! Reading from a streaming replica (`QUESTLOG_READ_DATABASE_URL`): what the standby has
//! replayed, so that a read that must reflect position P answers only once the standby shows P.
//!
//! The projectors commit on the primary; their announcements say what the *primary* holds. A
//! standby replays the primary's WAL in commit order, a little later. So a read that waits for P
//! waits for the announcement first (no polling while the projector works), then for a look at
//! the standby itself that shows every projection it reads at P or beyond: the checkpoint as the
//! standby shows it is what the read's own snapshot will report, since a projection's rows and
//! checkpoint change in one transaction, and a standby makes a transaction visible whole or not at
//! all. (The other gauge, `pg_last_wal_replay_lsn()` against the LSN of the projector's commit,
//! would need the primary's LSN of every commit carried in the announcements and a look at the
//! standby all the same; the checkpoint is the thing the answer is labelled with.)
//!
//! One task per process looks at the standby — one query: the log's head and every checkpoint —
//! and only while someone waits; every waiter takes the first look that *started* after it
//! began waiting, so a waiter never trusts what the standby showed before it asked (a standby
//! restarted after a crash may accept reads before it has replayed as far as it had before).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use questlog_store::StoreError;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{NotCaughtUp, WaitError};

/// How long the follower pauses between two looks while someone waits.
const BETWEEN_LOOKS: Duration = Duration::from_millis(1);
/// How long it pauses after a look failed (the standby restarting, unreachable).
const AFTER_FAILURE: Duration = Duration::from_millis(200);

/// The standby the read side reads from, and the primary it replicates. Cheap to clone.
#[derive(Clone)]
pub struct Standby {
    inner: Arc<Inner>,
}

struct Inner {
    /// The standby: the read models and the log, as replayed so far.
    replica: PgPool,
    /// The primary, for what only it can say (where a time or a position beyond the standby's
    /// head falls in the log).
    primary: PgPool,
    /// The last look at the standby; waiters hold a receiver while they wait.
    looks: watch::Sender<Look>,
    /// How many looks have been started (a look's id is its number).
    started: AtomicU64,
    /// Wakes the follower when a waiter arrives.
    wake: Notify,
}

/// What one look at the standby found.
#[derive(Debug, Clone, Default)]
struct Look {
    id: u64,
    /// The look failed (the standby restarting, unreachable): what follows is the last look's.
    failed: bool,
    head: i64,
    checkpoints: HashMap<String, i64>,
}

impl Look {
    /// The least checkpoint among `projections` (0 for one the standby has none of yet).
    fn least(&self, projections: &[&str]) -> (String, i64) {
        projections
            .iter()
            .map(|p| {
                (
                    (*p).to_owned(),
                    self.checkpoints.get(*p).copied().unwrap_or(0),
                )
            })
            .min_by_key(|(_, position)| *position)
            .unwrap_or_default()
    }
}

impl Standby {
    /// Starts the follower (idle until someone waits), until `shutdown`.
    pub fn spawn(replica: PgPool, primary: PgPool, shutdown: CancellationToken) -> Self {
        let standby = Self {
            inner: Arc::new(Inner {
                replica,
                primary,
                looks: watch::Sender::new(Look::default()),
                started: AtomicU64::new(0),
                wake: Notify::new(),
            }),
        };
        tokio::spawn(follow(standby.inner.clone(), shutdown));
        standby
    }

    /// The primary.
    pub fn primary(&self) -> &PgPool {
        &self.inner.primary
    }

    /// Waits until a look at the standby, started after this call, shows every one of
    /// `projections` at `position` or beyond, and returns the least of their checkpoints then.
    ///
    /// # Errors
    /// [`WaitError::NotCaughtUp`] when `deadline` passes first; [`WaitError::Store`] when the
    /// standby cannot be read at the deadline.
    pub async fn checkpoints(
        &self,
        projections: &[&str],
        position: i64,
        deadline: Instant,
    ) -> Result<i64, WaitError> {
        let wants: Vec<(&str, i64)> = projections.iter().map(|p| (*p, position)).collect();
        self.reached(&wants, deadline).await?;
        // Every one is at `position` or beyond in the look that satisfied the wait, and
        // checkpoints only grow.
        Ok(self.inner.looks.borrow().least(projections).1.max(position))
    }

    /// Waits until a look at the standby, started after this call, shows each projection of
    /// `wants` at its position or beyond.
    ///
    /// # Errors
    /// As [`Standby::checkpoints`]; a standby that cannot be read fails the wait at once.
    pub async fn reached(&self, wants: &[(&str, i64)], deadline: Instant) -> Result<(), WaitError> {
        let behind = |look: &Look| {
            wants
                .iter()
                .map(|(p, want)| (*p, *want, look.checkpoints.get(*p).copied().unwrap_or(0)))
                .find(|(_, want, shown)| shown < want)
        };
        self.wait(
            |look| behind(look).is_none(),
            deadline,
            |look| {
                let (projection, wanted, applied) = behind(look).unwrap_or_default();
                NotCaughtUp {
                    projection: projection.to_owned(),
                    applied,
                    wanted,
                }
            },
        )
        .await
    }

    /// Waits until a look at the standby, started after this call, shows its log holding
    /// `position`.
    ///
    /// # Errors
    /// As [`Standby::checkpoints`], the log named `events`.
    pub async fn log(&self, position: i64, deadline: Instant) -> Result<(), WaitError> {
        self.wait(
            |look| look.head >= position,
            deadline,
            |look| NotCaughtUp {
                projection: "events".to_owned(),
                applied: look.head,
                wanted: position,
            },
        )
        .await
    }

    /// Waits until a look started after this call satisfies `done`. When a look fails, one of
    /// the waiter's own says whether the standby is out of reach (an error at once) or answers
    /// again (the wait goes on); at `deadline`, one of its own has the last word.
    async fn wait(
        &self,
        done: impl Fn(&Look) -> bool,
        deadline: Instant,
        behind: impl Fn(&Look) -> NotCaughtUp,
    ) -> Result<(), WaitError> {
        loop {
            if self.until(&done, deadline).await {
                return Ok(());
            }
            let look = self.look_now().await?;
            if done(&look) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(WaitError::NotCaughtUp(behind(&look)));
            }
        }
    }

    /// Whether a look started after this call satisfies `done` before `deadline`; false at the
    /// deadline or when such a look fails.
    async fn until(&self, done: impl Fn(&Look) -> bool, deadline: Instant) -> bool {
        // Subscribed first: the follower looks while someone holds a receiver.
        let mut looks = self.inner.looks.subscribe();
        let after = self.inner.started.load(Ordering::SeqCst);
        self.inner.wake.notify_one();
        loop {
            {
                let look = looks.borrow_and_update();
                if look.id > after {
                    if look.failed {
                        return false;
                    }
                    if done(&look) {
                        return true;
                    }
                }
            }
            match tokio::time::timeout_at(deadline, looks.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self`; only the deadline ends the wait.
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// One look of the waiter's own (at its deadline), so that an unreachable standby is an
    /// error, not a wait that ran out.
    async fn look_now(&self) -> Result<Look, WaitError> {
        look(&self.inner.replica)
            .await
            .map_err(|e| WaitError::Store(StoreError::from_sqlx(e)))
    }
}

/// The log's head and every checkpoint, as the standby shows them, in one statement (one
/// snapshot).
async fn look(replica: &PgPool) -> Result<Look, sqlx::Error> {
    let (head, sqlx::types::Json(checkpoints)): (i64, sqlx::types::Json<HashMap<String, i64>>) =
        sqlx::query_as(
            "SELECT (SELECT coalesce(max(position), 0) FROM events)::bigint, \
                    coalesce((SELECT jsonb_object_agg(projection, position) \
                                FROM projection_checkpoints), '{}'::jsonb)",
        )
        .fetch_one(replica)
        .await?;
    Ok(Look {
        id: 0,
        failed: false,
        head,
        checkpoints,
    })
}

#[tracing::instrument(name = "standby", skip_all)]
async fn follow(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        // Nobody waits: no look until someone does.
        while inner.looks.receiver_count() == 0 {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = inner.wake.notified() => {}
            }
        }
        let id = inner.started.fetch_add(1, Ordering::SeqCst) + 1;
        let pause = match look(&inner.replica).await {
            Ok(found) => {
                inner.looks.send_replace(Look { id, ..found });
                BETWEEN_LOOKS
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot look at the standby");
                inner.looks.send_modify(|look| {
                    look.id = id;
                    look.failed = true;
                });
                AFTER_FAILURE
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
