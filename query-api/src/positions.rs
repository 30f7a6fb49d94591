//! Read-your-writes: which log position each projection has applied, learnt from the projectors'
//! change announcements on NATS, so that a read with `min_position` can wait for it.
//!
//! The same one subscription feeds the live subscriptions' [`Hub`], so a process follows the
//! announcements once, whatever its readers and subscribers.
//!
//! Core NATS delivers at most once and only to subscribers that exist when a message is sent, so
//! announcements are a wake-up call, never the truth: the truth is the `projection_checkpoints`
//! table, read once before waiting and once more before giving up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use questlog_bus::{ChangeAnnouncement, Names, ProjectionName};
use questlog_store::StoreError;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::as_of::AsOf;
use crate::error::ApiError;
pub use crate::error::{NotCaughtUp, WaitError};
use crate::live::Hub;
use crate::standby::Standby;

/// The applied position of each projection, as far as this process knows. Cheap to clone; every
/// clone shares the same knowledge.
#[derive(Clone)]
pub struct Positions {
    inner: Arc<Inner>,
}

struct Inner {
    /// Projection name → highest position known to be applied. Only ever moves forward.
    applied: watch::Sender<HashMap<String, i64>>,
    /// Whether the listener's subscription is confirmed by the NATS server.
    listening: watch::Sender<bool>,
    pool: PgPool,
    /// The live subscriptions fed by the same announcements.
    live: Hub,
    /// The streaming replica `pool` is, when reads come from one.
    standby: Option<Standby>,
}

impl Positions {
    /// Knowledge that only comes from the database (no listener): every wait then learns of
    /// progress only when it reads the checkpoints, before it waits and at its deadline.
    /// Live subscriptions then answer 503: they need the announcements.
    pub fn new(pool: PgPool) -> Self {
        Self::with_hub(pool, None, |_, _| Hub::detached())
    }

    fn with_hub(
        pool: PgPool,
        standby: Option<Standby>,
        hub: impl FnOnce(&PgPool, watch::Receiver<bool>) -> Hub,
    ) -> Self {
        let listening = watch::Sender::new(false);
        let live = hub(&pool, listening.subscribe());
        Self {
            inner: Arc::new(Inner {
                applied: watch::Sender::new(HashMap::new()),
                listening,
                pool,
                live,
                standby,
            }),
        }
    }

    /// Starts a task that follows every projection's announcements on `names.changes_wildcard()`
    /// until `shutdown`, and returns the positions it keeps up to date; the announcements also
    /// feed the live subscriptions' hub, which runs until `shutdown` too.
    pub fn spawn_listener(
        client: async_nats::Client,
        names: Names,
        pool: PgPool,
        shutdown: CancellationToken,
    ) -> Self {
        Self::spawn_listener_on(client, names, pool, None, shutdown)
    }

    /// [`Positions::spawn_listener`] for reads from `pool`, which is `standby` when that is
    /// given: a streaming replica of the primary the projectors commit to. A wait for a position
    /// then ends only once the standby shows it, and the live hub reads a change only once the
    /// standby holds it (see [`crate::standby`]).
    pub fn spawn_listener_on(
        client: async_nats::Client,
        names: Names,
        pool: PgPool,
        standby: Option<Standby>,
        shutdown: CancellationToken,
    ) -> Self {
        let positions = Self::with_hub(pool, standby.clone(), |pool, listening| {
            Hub::spawn(pool.clone(), standby, listening, shutdown.clone())
        });
        tokio::spawn(listen(client, names, positions.clone(), shutdown));
        positions
    }

    /// The standby reads come from, when they come from one.
    pub fn standby(&self) -> Option<&Standby> {
        self.inner.standby.as_ref()
    }

    /// The live subscriptions' hub.
    pub fn live(&self) -> &Hub {
        &self.inner.live
    }

    /// The highest position `projection` is known to have applied (0 when nothing is known).
    pub fn applied(&self, projection: &str) -> i64 {
        self.inner
            .applied
            .borrow()
            .get(projection)
            .copied()
            .unwrap_or(0)
    }

    /// How many reads are waiting right now.
    pub fn waiting(&self) -> usize {
        self.inner.applied.receiver_count()
    }

    /// Resolves once the NATS server has confirmed the listener's subscription: announcements
    /// sent from then on reach it. Never resolves for [`Positions::new`].
    pub async fn listening(&self) {
        let mut rx = self.inner.listening.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|listening| *listening).await;
    }

    /// Records that `projection` has applied `position` (ignored unless it moves forward), and
    /// wakes the reads waiting for it.
    pub fn advance(&self, projection: &str, position: i64) {
        self.inner
            .applied
            .send_if_modified(|applied| match applied.get_mut(projection) {
                Some(known) if *known >= position => false,
                Some(known) => {
                    *known = position;
                    true
                }
                None => {
                    applied.insert(projection.to_owned(), position);
                    true
                }
            });
    }

    /// Waits until every one of `projections` has applied `min_position`, for at most `timeout`,
    /// and returns the least position among them.
    ///
    /// The checkpoints are read from Postgres before waiting (an announcement may have gone out
    /// before the listener subscribed) and once more at the deadline (core NATS may lose one), so
    /// a lost announcement costs latency, never a wrong answer. No polling in between: the wait
    /// sleeps on a watch that announcements wake.
    ///
    /// # Errors
    /// [`WaitError::NotCaughtUp`] when the deadline passes first; [`WaitError::Store`] when the
    /// checkpoints cannot be read.
    pub async fn wait_for(
        &self,
        projections: &[ProjectionName],
        min_position: i64,
        timeout: Duration,
    ) -> Result<i64, WaitError> {
        let projections: Vec<&str> = projections.iter().map(|p| p.as_str()).collect();
        let projections = projections.as_slice();
        let deadline = Instant::now() + timeout;
        let least = self.announced(projections, min_position, deadline).await?;
        match &self.inner.standby {
            // The primary has it; the standby shows it a moment later.
            Some(standby) => {
                standby
                    .checkpoints(projections, min_position, deadline)
                    .await
            }
            None => Ok(least),
        }
    }

    /// Waits until every one of `projections` is known to have applied `min_position` (on the
    /// primary: from the announcements, or from the checkpoints `pool` shows, never beyond the
    /// primary's).
    async fn announced(
        &self,
        projections: &[&str],
        min_position: i64,
        deadline: Instant,
    ) -> Result<i64, WaitError> {
        // Subscribed before anything is read, so no change between a check and the wait is missed.
        let mut rx = self.inner.applied.subscribe();
        if let Some(least) = caught_up(&rx.borrow_and_update(), projections, min_position) {
            return Ok(least);
        }
        self.refresh(projections).await?;
        loop {
            if let Some(least) = caught_up(&rx.borrow_and_update(), projections, min_position) {
                return Ok(least);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // Err(_) from `changed` would mean the sender is gone, but `self` holds it.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        self.refresh(projections).await?;
        let applied = rx.borrow_and_update();
        caught_up(&applied, projections, min_position).ok_or_else(|| {
            let (projection, position) = projections
                .iter()
                .map(|p| (*p, applied.get(*p).copied().unwrap_or(0)))
                .min_by_key(|(_, position)| *position)
                .unwrap_or(("", 0));
            WaitError::NotCaughtUp(NotCaughtUp {
                projection: projection.to_owned(),
                applied: position,
                wanted: min_position,
            })
        })
    }

    /// The log position `as_of` stands for, in the log reads come from. On a standby, a position
    /// beyond what it has replayed — and any time, which the primary's log places exactly — is
    /// placed by the primary's log and then waited for (up to `timeout`), so that an answer as of
    /// a point is the same whichever database it is read from.
    ///
    /// # Errors
    /// 422 `invalid_as_of` as [`AsOf::resolve`] on the primary; 504 when the standby does not
    /// hold the point in time; 503 when a database is out of reach.
    pub async fn resolve(
        &self,
        as_of: AsOf,
        pool: &PgPool,
        timeout: Duration,
    ) -> Result<i64, ApiError> {
        let Some(standby) = &self.inner.standby else {
            let mut conn = pool.acquire().await?;
            return as_of.resolve(&mut conn).await;
        };
        if let AsOf::Position(_) = as_of {
            let mut conn = pool.acquire().await?;
            if let Ok(position) = as_of.resolve(&mut conn).await {
                return Ok(position);
            }
        }
        let position = {
            let mut conn = standby.primary().acquire().await?;
            as_of.resolve(&mut conn).await?
        };
        standby.log(position, Instant::now() + timeout).await?;
        Ok(position)
    }

    /// Waits (up to `timeout`) until the log reads come from holds `position`, which a log `head`
    /// long does not: on a standby, when the primary's log holds it (a position a client holds
    /// is in the primary's log, and in the standby's a moment later).
    ///
    /// # Errors
    /// [`WaitError::NotCaughtUp`] when the log does not hold it in time (at once without a
    /// standby, or when the primary's log does not hold it either).
    pub async fn log(&self, position: i64, head: i64, timeout: Duration) -> Result<(), WaitError> {
        let beyond = || {
            WaitError::NotCaughtUp(NotCaughtUp {
                projection: "events".to_owned(),
                applied: head,
                wanted: position,
            })
        };
        let Some(standby) = &self.inner.standby else {
            return Err(beyond());
        };
        let primary_head: i64 =
            sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
                .fetch_one(standby.primary())
                .await
                .map_err(|e| WaitError::Store(StoreError::from_sqlx(e)))?;
        if primary_head < position {
            return Err(beyond());
        }
        standby.log(position, Instant::now() + timeout).await
    }

    /// Learns the checkpoints of `projections` from the database.
    async fn refresh(&self, projections: &[&str]) -> Result<(), WaitError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT projection, position FROM projection_checkpoints WHERE projection = ANY($1)",
        )
        .bind(projections)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| WaitError::Store(StoreError::from_sqlx(e)))?;
        for (projection, position) in rows {
            self.advance(&projection, position);
        }
        Ok(())
    }
}

/// Starts a listener; the same as [`Positions::spawn_listener`].
pub fn spawn_listener(
    client: async_nats::Client,
    names: Names,
    pool: PgPool,
    shutdown: CancellationToken,
) -> Positions {
    Positions::spawn_listener(client, names, pool, shutdown)
}

/// The least applied position among `projections` when all have reached `min_position`.
fn caught_up(
    applied: &HashMap<String, i64>,
    projections: &[&str],
    min_position: i64,
) -> Option<i64> {
    let least = projections
        .iter()
        .map(|p| applied.get(*p).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    (least >= min_position).then_some(least)
}

#[tracing::instrument(skip_all, fields(subject = %names.changes_wildcard()))]
async fn listen(
    client: async_nats::Client,
    names: Names,
    positions: Positions,
    shutdown: CancellationToken,
) {
    // Announcements of another log (another deployment sharing the NATS prefix) are not ours.
    let log = loop {
        let identity = async {
            let mut conn = positions.inner.pool.acquire().await?;
            questlog_store::lineage::identity(&mut conn).await
        };
        match identity.await {
            Ok(log) => break log,
            Err(e) => tracing::warn!(error = %e, "cannot read the log's identity; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    };
    let mut subscriber = match client.subscribe(names.changes_wildcard()).await {
        Ok(subscriber) => subscriber,
        Err(e) => {
            // Only a closed client refuses; reads still answer, learning from the database.
            tracing::error!(error = %e, "cannot subscribe to change announcements");
            return;
        }
    };
    // A flush is a round trip to the server, which handles our SUB before it: from here on,
    // announcements reach us.
    tokio::select! {
        () = shutdown.cancelled() => return,
        flushed = client.flush() => match flushed {
            Ok(()) => {
                positions.inner.listening.send_replace(true);
                tracing::debug!("listening to change announcements");
            }
            Err(e) => tracing::warn!(error = %e, "cannot confirm the announcement subscription"),
        },
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            message = subscriber.next() => {
                let Some(message) = message else {
                    tracing::warn!("the announcement subscription ended; reads now learn positions from the database only");
                    break;
                };
                match serde_json::from_slice::<ChangeAnnouncement>(&message.payload) {
                    Ok(announcement) if announcement.log.as_ref().is_some_and(|l| *l != log) => {
                        tracing::debug!(subject = %message.subject, "ignoring another log's announcement");
                    }
                    Ok(announcement) => {
                        positions.advance(&announcement.projection, announcement.position);
                        positions.inner.live.offer(announcement);
                    }
                    Err(e) => {
                        tracing::warn!(subject = %message.subject, error = %e, "ignoring a malformed change announcement");
                    }
                }
            }
        }
    }
    let _ = subscriber.unsubscribe().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn caught_up_answers_the_least_position_once_all_have_reached_the_minimum() {
        let map = applied(&[("a", 12), ("b", 9)]);
        assert_eq!(caught_up(&map, &["a", "b"], 9), Some(9));
        assert_eq!(caught_up(&map, &["a", "b"], 10), None);
        assert_eq!(caught_up(&map, &["a"], 12), Some(12));
    }

    #[test]
    fn an_unknown_projection_counts_as_position_zero() {
        let map = applied(&[("a", 12)]);
        assert_eq!(caught_up(&map, &["a", "c"], 1), None);
        assert_eq!(caught_up(&map, &["a", "c"], 0), Some(0));
    }
}
