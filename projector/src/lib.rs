//! Projectors: one runner per process reads the event stream once and hands each decoded batch to
//! every projection it leads, which folds it into its Postgres read model. A batch's rows and the
//! projection's checkpoint change in one transaction, then the change is announced on NATS for the
//! query side.
//!
//! The projector knows no read model: modules register their projections on the [`App`]
//! ([`ProjectorExt::add_projection`]) and the binary runs what is registered ([`Projections::of`]).
//! Every event is decoded once per process, by the modules' [`Domain`], and handed to the
//! projections as [`Decoded`].
//!
//! A redelivered or duplicate event is at or below the checkpoint and changes nothing; events
//! apply in log order; one replica per projection is active (a Postgres advisory lock, with the
//! projection's writes made on the lock's own connection).

pub mod copy;
pub mod replay;
pub mod rows;
pub mod runner;
pub mod verify;

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use questlog_bus::{Change, ProjectionName};
use questlog_domain::{App, Domain, Event};
use questlog_store::RecordedEvent;
use sqlx::PgConnection;

pub use runner::{run, ProjectorConfig};

/// Makes a session plan each of its statements for its parameters and its tables as they are
/// then. A read model's tables, and the log, grow
/// from empty while a projector's connection lives, and the plan Postgres keeps for a prepared
/// statement after five runs (a generic plan) is not made again as a table grows without an
/// `ANALYZE`: one made while a table was empty scans the table whole every time. Planning each
/// statement costs a fraction of a millisecond per batch.
pub const PLAN_EACH_STATEMENT: &str = "SET plan_cache_mode = force_custom_plan";

/// An event as the log recorded it, with its decoded kernel [`Event`] (a module looks into it with
/// `event.get::<its::Event>()`).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub recorded: RecordedEvent,
    pub event: Event,
}

impl Decoded {
    /// Decodes `recorded` with the running modules' registry. A type no module registers is kept
    /// as stored and ignored by every projection.
    ///
    /// # Errors
    /// When a registered type's data does not fit, or its schema version is newer than this build.
    pub fn decode(domain: &Domain, recorded: RecordedEvent) -> anyhow::Result<Self> {
        let event = domain
            .decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.data,
            )
            .with_context(|| format!("event at position {}", recorded.position))?;
        Ok(Self { recorded, event })
    }

    /// Decodes every event of a page read from the log, in order.
    ///
    /// # Errors
    /// As [`Decoded::decode`].
    pub fn decode_all(
        domain: &Domain,
        events: impl IntoIterator<Item = RecordedEvent>,
    ) -> anyhow::Result<Vec<Self>> {
        events
            .into_iter()
            .map(|e| Self::decode(domain, e))
            .collect()
    }

    pub fn position(&self) -> i64 {
        self.recorded.position
    }

    /// Opens the personal fields of events as recorded (with the keys as `conn` sees them:
    /// `questlog_store::sealing`), then decodes them.
    ///
    /// # Errors
    /// When the keys cannot be read, or as [`Decoded::decode`].
    pub async fn open_all(
        conn: &mut PgConnection,
        domain: &Domain,
        mut events: Vec<RecordedEvent>,
    ) -> anyhow::Result<Vec<Self>> {
        questlog_store::sealing::open_all(conn, domain.legacy_personal(), &mut events)
            .await
            .context("reading the keys of personal data")?;
        Self::decode_all(domain, events)
    }

    /// Up to `limit` events of the log after `after`, opened and decoded.
    ///
    /// # Errors
    /// As [`Decoded::open_all`], or when the log cannot be read.
    pub async fn read_after(
        conn: &mut PgConnection,
        domain: &Domain,
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<Self>> {
        let events = questlog_store::read_after(&mut *conn, after, limit)
            .await
            .context("reading the log")?;
        Self::open_all(conn, domain, events).await
    }
}

/// The players `events` erase (`player_erased`), each with the position of its erasure: a
/// projection that derived anything from their personal data drops it (see
/// `questlog_domain::personal`).
pub fn erasures(events: &[&Decoded]) -> Vec<(uuid::Uuid, i64)> {
    events
        .iter()
        .filter_map(|d| {
            questlog_domain::personal::erased_player(&d.event).map(|p| (p.0, d.position()))
        })
        .collect()
}

/// The events of a batch a projection keeps a row per entity of, each with its entity's key as
/// `of` finds it (in log order), and the keys they touch, each once and in order: what the
/// projection loads before folding them.
pub fn touched<'a, K: Ord + Copy, E: ?Sized>(
    events: &[&'a Decoded],
    of: impl Fn(&'a Decoded) -> Option<(K, &'a E)>,
) -> (Vec<(K, &'a E, &'a Decoded)>, Vec<K>) {
    let touched: Vec<(K, &E, &Decoded)> = events
        .iter()
        .filter_map(|d| of(d).map(|(key, event)| (key, event, *d)))
        .collect();
    let keys = touched
        .iter()
        .map(|(key, _, _)| *key)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    (touched, keys)
}

/// A read model fed by events. `apply` runs inside the projector's transaction.
#[async_trait]
pub trait Projection: Send + Sync {
    /// The projection's name: its checkpoint row, leadership lock and announcement
    /// subject.
    fn name(&self) -> ProjectionName;

    /// The tables it writes, and only it. `apply` names them unqualified, so a rebuild can point
    /// the same code at other tables of the same names (temporary ones, or another schema).
    fn tables(&self) -> &'static [&'static str];

    /// Folds events (in log order, all above the checkpoint, each decoded once for every
    /// projection) into the read model; returns what changed, for live subscribers.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>>;

    /// A rebuild from empty tables folded in memory ([`Bulk`]), for a projection that has one.
    /// `None`, the default, rebuilds by [`Projection::apply`], page by page.
    fn bulk(&self) -> Option<Box<dyn Bulk>> {
        None
    }
}

/// The map a [`Bulk`] fold keeps its rows in: a rebuild looks up an entity per event of the
/// log, a million times and more, and a fast hash (foldhash, seeded per map) does that in a
/// fraction of the default SipHash's time.
pub type FoldMap<K, V> = foldhash::HashMap<K, V>;

/// A projection's rebuild from empty tables (`replay`, `verify`): the log folded in memory over
/// large spans by the same fold as [`Projection::apply`], each row written once, in bulk
/// ([`copy::CopyRows`]), into fresh tables whose indexes are built after the load.
///
/// The rebuild calls [`Bulk::fold`] with every page of the log (each event decoded once for every
/// projection), [`Bulk::flush`] between spans, and [`Bulk::finish`] once at the end; the tables
/// are found by the connection's search path, as for `apply`.
#[async_trait]
pub trait Bulk: Send {
    /// Folds the next events of the log, in log order.
    ///
    /// # Errors
    /// When an event cannot be folded.
    fn fold(&mut self, events: &[&Decoded]) -> anyhow::Result<()>;

    /// Writes the rows no later event can change (a history's closed versions) and forgets them,
    /// so that memory holds the read model's current rows, not the log.
    ///
    /// # Errors
    /// When the database fails.
    async fn flush(&mut self, _conn: &mut PgConnection) -> anyhow::Result<()> {
        Ok(())
    }

    /// Writes every row still held.
    ///
    /// # Errors
    /// When the database fails.
    async fn finish(self: Box<Self>, conn: &mut PgConnection) -> anyhow::Result<()>;
}

/// The projections the modules registered, in registration order: the App's part of the
/// projector.
#[derive(Default)]
pub struct Projections(Vec<Arc<dyn Projection>>);

impl Projections {
    /// The projections registered on `app`, for the runner, rebuilds and verification.
    pub fn of(app: &App) -> Vec<Arc<dyn Projection>> {
        app.part::<Self>().map(|p| p.0.clone()).unwrap_or_default()
    }
}

/// How a module registers its projections on the [`App`].
pub trait ProjectorExt {
    /// Registers a projection.
    ///
    /// # Panics
    /// When another projection has its name, or writes one of its tables: a checkpoint and a
    /// table have one owner.
    fn add_projection(&mut self, projection: impl Projection + 'static) -> &mut Self;
}

impl ProjectorExt for App {
    fn add_projection(&mut self, projection: impl Projection + 'static) -> &mut Self {
        let registered = &mut self.part_mut::<Projections>().0;
        for other in registered.iter() {
            assert!(
                other.name() != projection.name(),
                "projection {} is registered twice",
                projection.name()
            );
            if let Some(table) = projection
                .tables()
                .iter()
                .find(|t| other.tables().contains(t))
            {
                panic!(
                    "table {table} is written by both {} and {}",
                    other.name(),
                    projection.name()
                );
            }
        }
        registered.push(Arc::new(projection));
        self
    }
}
