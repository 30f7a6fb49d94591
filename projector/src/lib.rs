//! Projectors: one runner per process reads the event stream once and hands each decoded batch to
//! every projection it leads, which folds it into its Postgres read model. A batch's rows and the
//! projection's checkpoint change in one transaction, then the change is announced on NATS for the
//! query side.
//!
//! A redelivered or duplicate event is at or below the checkpoint and changes nothing; events
//! apply in log order; one replica per projection is active (a Postgres advisory lock, with the
//! projection's writes made on the lock's own connection).

pub mod projections;
pub mod rebuild;
pub mod replay;
pub mod runner;
pub mod verify;

use async_trait::async_trait;
use questlog_bus::Change;
use questlog_store::RecordedEvent;
use sqlx::PgConnection;

pub use runner::{run, ProjectorConfig};

/// A read model fed by events. `apply` runs inside the projector's transaction.
#[async_trait]
pub trait Projection: Send + Sync {
    /// The projection's name: its checkpoint row, leadership lock and announcement
    /// subject.
    fn name(&self) -> &'static str;

    /// The tables it writes, and only it. `apply` names them unqualified, so a rebuild can point
    /// the same code at other tables of the same names (temporary ones, or another schema).
    fn tables(&self) -> &'static [&'static str];

    /// Folds events (in log order, all above the checkpoint) into the read model; returns what
    /// changed, for live subscribers.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Change>>;
}

/// Every projection questlog maintains.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(projections::Players),
        Box::new(projections::Catalog),
        Box::new(projections::Presence),
        Box::new(projections::Labs),
        Box::new(projections::Chat),
    ]
}
