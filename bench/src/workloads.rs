//! The workloads and their baselines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use uuid::Uuid;

use crate::report::Row;
use crate::setup::{drop_database, scratch_database, Env};
use crate::Args;
use crate::{live, peer};

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    // Recorded in microseconds.
    #[allow(clippy::cast_precision_loss)]
    let v = h.value_at_quantile(q) as f64;
    v / 1000.0
}

/// Two rows, p50 and p99, of a latency `figure` beside its `baseline`'s.
pub fn latency_rows(
    rows: &mut Vec<Row>,
    figure: &str,
    value: &Histogram<u64>,
    baseline_name: &str,
    baseline: &Histogram<u64>,
) {
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        rows.push(Row::new(
            &format!("{figure}: {name}"),
            ms(value, q),
            baseline_name,
            ms(baseline, q),
            "ms",
        ));
    }
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

pub async fn run_all(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    // A course of 100 labs per player, as a terminal academy has; players are added as they finish.
    let labs = 100;
    env.catalog(labs).await?;
    let duration = args.duration();
    if args.runs("commands") {
        commands_rows(args, env, rows, labs, duration).await?;
    }
    if args.runs("logins") {
        crate::logins::login_rows(args, env, rows).await?;
    }
    if args.write_only {
        return Ok(());
    }
    if args.runs("visibility") {
        visibility_rows(args, env, rows, labs).await?;
    }
    if args.runs("live") {
        live_rows(args, env, rows, labs).await?;
    }
    if args.runs("history") {
        crate::history::history_rows(args, rows).await?;
    }
    if args.runs("storage") {
        crate::storage::storage_rows(args, env, rows).await?;
    }
    if args.runs("boards") {
        crate::boards::board_rows(args, env, rows).await?;
    }
    if args.runs("processes") {
        crate::processes::processes_rows(args, env, rows, labs).await?;
    }
    Ok(())
}

/// Command throughput against raw INSERTs and against the cqrs-es peer, and latency at half of
/// it against raw INSERTs.
async fn commands_rows(
    args: &Args,
    env: &Env,
    rows: &mut Vec<Row>,
    labs: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    eprintln!("command throughput: {} clients, {duration:?}", args.clients);
    let commands = command_throughput(env, args.clients, duration, labs).await?;
    eprintln!("  {commands:.0} commands/s");
    eprintln!(
        "raw INSERT throughput: {} clients, {duration:?}",
        args.clients
    );
    let (scratch, scratch_url) = scratch_database(&env.maintenance_url).await?;
    let inserts = insert_throughput(
        &scratch_url,
        args.clients,
        duration,
        &RawEvent::lab_completed(),
    )
    .await;
    eprintln!("  {:.0} inserts/s", inserts.as_ref().map_or(0.0, |v| *v));
    rows.push(
        Row::new(
            "command throughput (complete_lab over HTTP)",
            commands,
            "raw single-row INSERT",
            inserts.as_ref().copied().unwrap_or(0.0),
            "/s",
        )
        .at_least(1.0),
    );
    eprintln!(
        "cqrs-es peer throughput: {} clients, {duration:?}",
        args.clients
    );
    let peer = peer::command_throughput(&env.maintenance_url, args.clients, duration, labs).await;
    eprintln!("  {:.0} commands/s", peer.as_ref().map_or(0.0, |v| *v));
    rows.push(
        Row::new(
            "command throughput ÷ cqrs-es peer",
            commands,
            "cqrs-es + postgres-es, CompleteLab in process",
            peer.as_ref().copied().unwrap_or(0.0),
            "/s",
        )
        .at_least(3.0),
    );

    let rate = (commands / 2.0).max(10.0);
    eprintln!("latency at {rate:.0}/s (half the measured command maximum)");
    let command_latency = command_latency(env, rate, duration, labs).await?;
    let insert_latency = insert_latency(&scratch_url, rate, duration).await?;
    drop_database(&env.maintenance_url, &scratch).await;
    inserts?;
    peer?;
    rows.push(Row::new(
        "command p50 at half max rate",
        ms(&command_latency, 0.5),
        "raw INSERT p50",
        ms(&insert_latency, 0.5),
        "ms",
    ));
    rows.push(
        Row::new(
            "command p99 at half max rate",
            ms(&command_latency, 0.99),
            "raw INSERT p99",
            ms(&insert_latency, 0.99),
            "ms",
        )
        .at_most(1.5),
    );
    rows.push(Row::new(
        "command p999 at half max rate",
        ms(&command_latency, 0.999),
        "raw INSERT p999",
        ms(&insert_latency, 0.999),
        "ms",
    ));

    Ok(())
}

/// Command sent → read model committed.
async fn visibility_rows(
    args: &Args,
    env: &Env,
    rows: &mut Vec<Row>,
    labs: usize,
) -> anyhow::Result<()> {
    let n = if args.quick {
        100
    } else {
        args.visibility_commands
    };
    eprintln!("command → read model visibility over {n} commands");
    let (visible, published, answered) = visibility(env, n, labs).await?;
    against_commands(
        rows,
        |q| format!("command sent → event in JetStream (the relay's part), {q}"),
        &published,
        &answered,
    );
    against_commands(
        rows,
        |q| format!("command sent → read model committed, {q}"),
        &visible,
        &answered,
    );
    Ok(())
}

/// Rows of a latency's p50 and p99 (`figure` names each from the quantile's name), each against
/// the commands' own of the same run.
fn against_commands(
    rows: &mut Vec<Row>,
    figure: impl Fn(&str) -> String,
    latency: &Histogram<u64>,
    answered: &Histogram<u64>,
) {
    for (quantile, name) in [(0.5, "p50"), (0.99, "p99")] {
        rows.push(Row::new(
            &figure(name),
            ms(latency, quantile),
            &format!("command {name} (same run)"),
            ms(answered, quantile),
            "ms",
        ));
    }
}

/// Push lag to many subscribers, and idle fan-out against the bare SSE server.
async fn live_rows(args: &Args, env: &Env, rows: &mut Vec<Row>, labs: usize) -> anyhow::Result<()> {
    let (subscribers, commands) = if args.quick {
        (100, 100)
    } else {
        (args.subscribers, 500)
    };
    let push_rate = args.push_rate;
    eprintln!("push lag: {subscribers} subscribers, {commands} commands at {push_rate:.0}/s");
    let (lag, answered) = live::push_lag(
        env,
        std::slice::from_ref(&env.base),
        subscribers,
        push_rate,
        commands,
    )
    .await?;
    rows.push(Row::new(
        &format!("push lag p50, {subscribers} subscribers"),
        ms(&lag, 0.5),
        "command p50 (same run)",
        ms(&answered, 0.5),
        "ms",
    ));
    rows.push(
        Row::new(
            &format!("push lag p99, {subscribers} subscribers"),
            ms(&lag, 0.99),
            "command p99 (same run)",
            ms(&answered, 0.99),
            "ms",
        )
        .at_most(2.0),
    );
    // What delivering one change to that many connections costs on this machine by itself.
    eprintln!("the same against a bare axum SSE broadcast server");
    let (bare, _) = live::baseline_push_lag(subscribers, push_rate, commands).await?;
    rows.push(Row::new(
        &format!("push lag p99, {subscribers} subscribers"),
        ms(&lag, 0.99),
        &format!("bare axum SSE broadcast to {subscribers} subscribers, p99"),
        ms(&bare, 0.99),
        "ms",
    ));
    against_commands(
        rows,
        |q| format!("bare axum SSE broadcast to {subscribers} subscribers, {q}"),
        &bare,
        &answered,
    );

    let idle = if args.quick {
        1000
    } else {
        args.idle_subscribers
    };
    eprintln!("idle fan-out: {idle} subscribers on one query-api process, then the baseline");
    let questlog = live::questlog_fan_out(env, idle, labs).await?;
    let baseline = live::baseline_fan_out(idle).await?;
    rows.push(
        Row::new(
            &format!("RSS per idle subscriber, {} held", questlog.subscribers),
            questlog.bytes_per_subscriber / 1024.0,
            "bare axum SSE server",
            baseline.bytes_per_subscriber / 1024.0,
            "KiB",
        )
        .goal_value_at_most(16.0),
    );
    rows.push(Row::new(
        &format!(
            "one change reaches all {} idle subscribers",
            questlog.subscribers
        ),
        questlog.reach.as_secs_f64() * 1000.0,
        "bare axum SSE server",
        baseline.reach.as_secs_f64() * 1000.0,
        "ms",
    ));
    Ok(())
}

/// A client's supply of `complete_lab` commands: a fresh player whenever the labs run out.
pub struct Player {
    pub token: String,
    pub id: Uuid,
    next_lab: usize,
}

impl Player {
    pub async fn new(env: &Env) -> anyhow::Result<Self> {
        let (token, id) = env.player().await?;
        Ok(Self {
            token,
            id,
            next_lab: 1,
        })
    }

    pub async fn complete_next(&mut self, env: &Env, labs: usize) -> anyhow::Result<i64> {
        if self.next_lab > labs {
            *self = Self::new(env).await?;
        }
        let lab = format!("lab-{}", self.next_lab);
        self.next_lab += 1;
        let (status, body) = env
            .command(&self.token, "complete_lab", &json!({ "lab_id": lab }))
            .await?;
        anyhow::ensure!(status == 200, "complete_lab answered {status}: {body}");
        body["position"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no position"))
    }
}

/// Closed loop: `clients` clients each send `complete_lab` back to back; commands per second over
/// `duration` after a warm-up.
pub async fn command_throughput(
    env: &Env,
    clients: usize,
    duration: Duration,
    labs: usize,
) -> anyhow::Result<f64> {
    let (rate, _) = command_throughput_sampled(env, clients, duration, labs, || ()).await?;
    Ok(rate)
}

/// [`command_throughput`], calling `sample` as the measured stretch begins and as it ends.
pub async fn command_throughput_sampled<T>(
    env: &Env,
    clients: usize,
    duration: Duration,
    labs: usize,
    sample: impl FnMut() -> T,
) -> anyhow::Result<(f64, [T; 2])> {
    let meter = Meter::default();
    let mut players = Vec::new();
    for _ in 0..clients {
        players.push(Player::new(env).await?);
    }
    let tasks = players.into_iter().map(|mut p| {
        let meter = &meter;
        async move {
            while meter.running() {
                p.complete_next(env, labs).await?;
                meter.count();
            }
            anyhow::Ok(())
        }
    });
    let run = futures::future::try_join_all(tasks);
    let clock = meter.measure_sampled(duration, sample);
    let (outcome, measured) = tokio::join!(run, clock);
    outcome?;
    Ok(measured)
}

const INSERT_SQL: &str = "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata) \
     VALUES ($1, $2, 1, $3, 1, $4, $5)";

/// An event row the raw INSERT baselines write, one per durable transaction, each on a stream of
/// its own: its type and data (the metadata is a command's).
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub event_type: &'static str,
    pub data: serde_json::Value,
}

impl RawEvent {
    /// The row `complete_lab` appends.
    pub fn lab_completed() -> Self {
        Self {
            event_type: "lab_completed",
            data: json!({ "lab_id": "lab-1", "module": 1, "xp": 10 }),
        }
    }

    pub async fn insert(&self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let id = Uuid::now_v7();
        sqlx::query(INSERT_SQL)
            .bind(id)
            .bind(format!("bench-{id}"))
            .bind(self.event_type)
            .bind(&self.data)
            .bind(json!({ "command_id": id, "command": self.event_type, "correlation_id": id, "causation_id": id, "identity": id, "role": "player" }))
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// The baseline: `event` rows inserted one per durable transaction by `clients` connections.
pub async fn insert_throughput(
    url: &str,
    clients: usize,
    duration: Duration,
    event: &RawEvent,
) -> anyhow::Result<f64> {
    let pool = questlog_store_pool(url, clients)?;
    let meter = Meter::default();
    let tasks = (0..clients).map(|_| {
        let (pool, meter) = (pool.clone(), &meter);
        async move {
            while meter.running() {
                event.insert(&pool).await?;
                meter.count();
            }
            anyhow::Ok(())
        }
    });
    let (outcome, rate) = tokio::join!(
        futures::future::try_join_all(tasks),
        meter.measure(duration)
    );
    outcome?;
    pool.close().await;
    Ok(rate)
}

/// Counts the operations of closed-loop clients: a warm-up of a third of the duration, then a
/// measured stretch, then every client stops. Shared by every throughput workload, so questlog,
/// its baselines and the peer are timed the same way.
#[derive(Default)]
pub struct Meter {
    measuring: AtomicBool,
    stop: AtomicBool,
    done: AtomicU64,
}

impl Meter {
    /// Whether the clients should go on.
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Whether the operations are being counted (the warm-up is over).
    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// Counts from now on, until [`Meter::stop`] (instead of [`Meter::measure`]'s clock).
    pub fn start(&self) {
        self.measuring.store(true, Ordering::SeqCst);
    }

    /// Stops the clients.
    pub fn stop(&self) {
        self.measuring.store(false, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// One operation done (counted only while measuring).
    pub fn count(&self) {
        if self.measuring.load(Ordering::Relaxed) {
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Warms up, measures for `duration`, stops the clients; the operations per second.
    pub async fn measure(&self, duration: Duration) -> f64 {
        self.measure_sampled(duration, || ()).await.0
    }

    /// [`Meter::measure`], calling `sample` as the measured stretch begins and as it ends (to
    /// read what else the stretch used, e.g. CPU time), before the clients stop.
    pub async fn measure_sampled<T>(
        &self,
        duration: Duration,
        mut sample: impl FnMut() -> T,
    ) -> (f64, [T; 2]) {
        tokio::time::sleep(duration / 3).await;
        let first = sample();
        self.measuring.store(true, Ordering::SeqCst);
        let start = Instant::now();
        tokio::time::sleep(duration).await;
        let n = self.done.load(Ordering::SeqCst);
        let elapsed = start.elapsed();
        let last = sample();
        self.stop();
        #[allow(clippy::cast_precision_loss)]
        let rate = n as f64 / elapsed.as_secs_f64();
        (rate, [first, last])
    }
}

/// A pool of `size` connections for a baseline.
pub fn questlog_store_pool(url: &str, size: usize) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(size).unwrap_or(64))
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy(url)?)
}

/// Open loop at `rate` per second: latency is measured from each request's scheduled start, so a
/// stall counts against every request it delays.
async fn open_loop<F, Fut>(
    rate: f64,
    duration: Duration,
    mut op: F,
) -> anyhow::Result<Histogram<u64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = (duration.as_secs_f64() * rate) as usize;
    let hist = Arc::new(Mutex::new(histogram()));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let fut = op(i);
        let hist = hist.clone();
        tasks.push(tokio::spawn(async move {
            fut.await?;
            let _ = hist
                .lock()
                .expect("histogram")
                .record(micros(due.elapsed()));
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let h = hist.lock().expect("histogram").clone();
    Ok(h)
}

async fn command_latency(
    env: &Env,
    rate: f64,
    duration: Duration,
    labs: usize,
) -> anyhow::Result<Histogram<u64>> {
    // Enough players that no player's labs run out and each command is a fresh lab.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = (duration.as_secs_f64() * rate) as usize + 1;
    let mut tokens = Vec::new();
    for _ in 0..total.div_ceil(labs) {
        tokens.push(Arc::new(env.player().await?.0));
    }
    let client = env.client.clone();
    let base = env.base.clone();
    open_loop(rate, duration, move |i| {
        let token = tokens[i / labs].clone();
        let (client, url) = (client.clone(), format!("{base}/v1/commands/complete_lab"));
        let lab = format!("lab-{}", i % labs + 1);
        async move {
            let response = client
                .post(url)
                .bearer_auth(token.as_str())
                .json(&json!({ "lab_id": lab }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "complete_lab answered {}",
                response.status()
            );
            Ok(())
        }
    })
    .await
}

async fn insert_latency(
    url: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let pool = questlog_store_pool(url, 64)?;
    let event = RawEvent::lab_completed();
    let h = open_loop(rate, duration, |_| {
        let (pool, event) = (pool.clone(), event.clone());
        async move { event.insert(&pool).await }
    })
    .await;
    pool.close().await;
    h
}

/// When the positions of commands become visible in a projection's read model: each position
/// is timed from its command's sending to the projection's first announcement of a commit at or
/// past it.
pub struct Visibility {
    pending: Arc<Mutex<BTreeMap<i64, Instant>>>,
    visible: Arc<Mutex<Histogram<u64>>>,
    highest: Arc<std::sync::atomic::AtomicI64>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Visibility {
    /// Starts listening to `projection`'s announcements.
    pub async fn watch(env: &Env, projection: &str) -> anyhow::Result<Self> {
        let names = questlog_bus::Names::new(&env.prefix);
        Self::watch_subject(env, names.changes_subject(projection), |message| {
            serde_json::from_slice::<questlog_bus::ChangeAnnouncement>(&message.payload)
                .ok()
                .map(|a| a.position)
        })
        .await
    }

    /// Starts listening to the relay's publishes: when each event reaches JetStream.
    pub async fn watch_published(env: &Env) -> anyhow::Result<Self> {
        let names = questlog_bus::Names::new(&env.prefix);
        Self::watch_subject(env, names.events_wildcard(), |message| {
            message
                .headers
                .as_ref()?
                .get(questlog_bus::POSITION_HEADER)?
                .as_str()
                .parse()
                .ok()
        })
        .await
    }

    /// Starts listening to `subject`, whose messages each tell (`position`) up to which position
    /// the stage they mark has come.
    async fn watch_subject(
        env: &Env,
        subject: String,
        position: fn(&async_nats::Message) -> Option<i64>,
    ) -> anyhow::Result<Self> {
        let client = async_nats::connect(&env.nats_url).await?;
        let mut announcements = client.subscribe(subject).await?;
        client.flush().await?;
        let pending: Arc<Mutex<BTreeMap<i64, Instant>>> = Arc::new(Mutex::new(BTreeMap::new()));
        let visible = Arc::new(Mutex::new(histogram()));
        let highest = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let watcher = {
            let (pending, visible, highest) = (pending.clone(), visible.clone(), highest.clone());
            tokio::spawn(async move {
                // Held so the subscription lives as long as the watcher.
                let _client = client;
                while let Some(message) = announcements.next().await {
                    let Some(at) = position(&message) else {
                        continue;
                    };
                    let now = Instant::now();
                    let mut pending = pending.lock().expect("pending");
                    highest.fetch_max(at, Ordering::SeqCst);
                    let done: Vec<i64> = pending.range(..=at).map(|(p, _)| *p).collect();
                    for p in done {
                        if let Some(sent) = pending.remove(&p) {
                            let _ = visible.lock().expect("hist").record(micros(now - sent));
                        }
                    }
                }
            })
        };
        Ok(Self {
            pending,
            visible,
            highest,
            watcher,
        })
    }

    /// A command sent at `sent` was answered with `position`.
    pub fn sent(&self, position: i64, sent: Instant) -> anyhow::Result<()> {
        let mut pending = self.pending.lock().expect("pending");
        // Announced before its answer was read: visible now.
        if position <= self.highest.load(Ordering::SeqCst) {
            self.visible
                .lock()
                .expect("hist")
                .record(micros(sent.elapsed()))?;
        } else {
            pending.insert(position, sent);
        }
        Ok(())
    }

    /// Waits (30 s at most) for every position to become visible; their latencies.
    pub async fn finish(self) -> anyhow::Result<Histogram<u64>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.pending.lock().expect("pending").is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.watcher.abort();
        let left = self.pending.lock().expect("pending").len();
        anyhow::ensure!(left == 0, "{left} commands never became visible");
        let h = self.visible.lock().expect("hist").clone();
        Ok(h)
    }
}

/// Sends `n` commands one after another; measures when each one's position is announced as
/// committed to the `players` read model, and when its answer arrived.
async fn visibility(
    env: &Env,
    n: usize,
    labs: usize,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
    let watch = Visibility::watch(env, "players").await?;
    let published = Visibility::watch_published(env).await?;
    let mut answered = histogram();
    let mut player = Player::new(env).await?;
    for _ in 0..n {
        let sent = Instant::now();
        let position = player.complete_next(env, labs).await?;
        answered.record(micros(sent.elapsed()))?;
        watch.sent(position, sent)?;
        published.sent(position, sent)?;
    }
    Ok((watch.finish().await?, published.finish().await?, answered))
}
