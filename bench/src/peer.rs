//! The peer baseline: the command workload through cqrs-es with postgres-es, the framework a Rust
//! user would otherwise pick, in a scratch database of its own.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateError, DomainEvent};
use postgres_es::{postgres_cqrs, PostgresCqrs};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::setup::{drop_database, empty_database};
use crate::workloads::{questlog_store_pool, Meter};

/// postgres-es ships no migration: its README points at this schema (`db/init.sql`), without the
/// view table, since the peer runs no queries (questlog's command path commits no read model
/// either).
const SCHEMA: [&str; 2] = [
    "CREATE TABLE events (
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        sequence bigint CHECK (sequence >= 0) NOT NULL,
        event_type text NOT NULL,
        event_version text NOT NULL,
        payload json NOT NULL,
        metadata json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence)
    )",
    "CREATE TABLE snapshots (
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
    )",
];

/// A player as the peer models it: the labs completed and the XP earned.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PeerPlayer {
    completed: BTreeSet<String>,
    xp: u64,
}

#[derive(Debug)]
pub enum PlayerCommand {
    CompleteLab { lab_id: String, xp: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlayerEvent {
    LabCompleted { lab_id: String, xp: u64 },
}

impl DomainEvent for PlayerEvent {
    fn event_type(&self) -> String {
        match self {
            Self::LabCompleted { .. } => "LabCompleted".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// The one rule the workload exercises, as questlog's `complete_lab` does.
#[derive(Debug, PartialEq, Eq)]
pub struct AlreadyCompleted(String);

impl fmt::Display for AlreadyCompleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lab {} already completed", self.0)
    }
}

impl std::error::Error for AlreadyCompleted {}

impl Aggregate for PeerPlayer {
    const TYPE: &'static str = "player";
    type Command = PlayerCommand;
    type Event = PlayerEvent;
    type Error = AlreadyCompleted;
    type Services = ();

    async fn handle(
        &mut self,
        command: PlayerCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AlreadyCompleted> {
        match command {
            PlayerCommand::CompleteLab { lab_id, xp } => {
                if self.completed.contains(&lab_id) {
                    return Err(AlreadyCompleted(lab_id));
                }
                sink.write(PlayerEvent::LabCompleted { lab_id, xp }, self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: PlayerEvent) {
        match event {
            PlayerEvent::LabCompleted { lab_id, xp } => {
                self.completed.insert(lab_id);
                self.xp += xp;
            }
        }
    }
}

/// A client's supply of commands, as the questlog workload's `Player`: one aggregate completing
/// `lab-1` … in order, and a fresh player whenever the labs run out.
struct Client {
    player: String,
    next_lab: usize,
}

impl Client {
    fn new() -> Self {
        Self {
            player: format!("player-{}", Uuid::new_v4()),
            next_lab: 1,
        }
    }

    async fn complete_next(
        &mut self,
        cqrs: &PostgresCqrs<PeerPlayer>,
        labs: usize,
    ) -> anyhow::Result<()> {
        if self.next_lab > labs {
            *self = Self::new();
        }
        let lab_id = format!("lab-{}", self.next_lab);
        self.next_lab += 1;
        cqrs.execute(&self.player, PlayerCommand::CompleteLab { lab_id, xp: 10 })
            .await?;
        Ok(())
    }
}

/// Closed loop, as `command_throughput`: `clients` clients each execute `CompleteLab` back to
/// back through cqrs-es (each one a durable commit by postgres-es); commands per second over
/// `duration` after a warm-up. The scratch database is dropped whatever the outcome.
pub async fn command_throughput(
    maintenance: &str,
    clients: usize,
    duration: Duration,
    labs: usize,
) -> anyhow::Result<f64> {
    let (name, url) = empty_database(maintenance).await?;
    let outcome = measure(&url, clients, duration, labs).await;
    drop_database(maintenance, &name).await;
    outcome
}

async fn measure(
    url: &str,
    clients: usize,
    duration: Duration,
    labs: usize,
) -> anyhow::Result<f64> {
    let pool = questlog_store_pool(url, clients)?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    let cqrs = postgres_cqrs::<PeerPlayer>(pool.clone(), vec![], ());
    reject_twice(&cqrs).await?;

    let meter = Meter::default();
    let tasks = (0..clients).map(|_| {
        let (cqrs, meter) = (&cqrs, &meter);
        async move {
            let mut client = Client::new();
            while meter.running() {
                client.complete_next(cqrs, labs).await?;
                meter.count();
            }
            anyhow::Ok(())
        }
    });
    let run = futures::future::try_join_all(tasks);
    let clock = meter.measure(duration);
    let (outcome, rate) = tokio::join!(run, clock);
    outcome?;
    pool.close().await;
    Ok(rate)
}

/// The peer must do the same work as questlog: a lab completed twice is refused, so its answer
/// depends on the player's events read back from Postgres, not on a blind insert.
async fn reject_twice(cqrs: &PostgresCqrs<PeerPlayer>) -> anyhow::Result<()> {
    let mut client = Client::new();
    client.complete_next(cqrs, 1).await?;
    let again = PlayerCommand::CompleteLab {
        lab_id: "lab-1".to_owned(),
        xp: 10,
    };
    match cqrs.execute(&client.player, again).await {
        Err(AggregateError::UserError(AlreadyCompleted(_))) => Ok(()),
        other => anyhow::bail!("the peer accepted a lab completed twice: {other:?}"),
    }
}
