//! Live subscriptions: push lag to many subscribers, and how many idle subscribers one query-api
//! process holds (memory per subscriber, time for one change to reach them all), against a bare
//! axum SSE broadcast server measured the same way.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

use crate::setup::Env;
use crate::workloads::{histogram, micros, Player};

type Events = std::pin::Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// Opens an SSE subscription and returns its event stream.
async fn subscribe(client: &reqwest::Client, url: &str) -> anyhow::Result<Events> {
    let response = client
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "subscribe answered {}",
        response.status()
    );
    Ok(Box::pin(response.bytes_stream().eventsource()))
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?)
}

/// Push lag: `subscribers` follow one player's topic, spread in turn over the query APIs at
/// `queries` (base URLs), while that player completes `commands` labs at `rate` per second. A
/// sample is "command sent → change received", per subscriber and command: the send time bounds
/// the commit time from above, so the figure is conservative. Returns the lag histogram and the
/// commands' own latency histogram.
pub async fn push_lag(
    env: &Env,
    queries: &[String],
    subscribers: usize,
    rate: f64,
    commands: usize,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    // A module of its own, so that one player has a lab for every command.
    env.command(
        &env.admin,
        "define_module",
        &json!({ "module": 2, "title": "Push lag" }),
    )
    .await?;
    for i in 1..=commands {
        let lab = json!({ "lab_id": format!("push-{i}"), "module": 2, "title": "t", "xp": 10 });
        let (status, body) = env.command(&env.admin, "define_lab", &lab).await?;
        anyhow::ensure!(status == 200, "define_lab: {body}");
    }
    let player = Player::new(env).await?;
    let urls: Vec<String> = queries
        .iter()
        .map(|base| {
            format!(
                "{base}/v1/subscribe?topic=player:{}&access_token={}",
                player.id, player.token
            )
        })
        .collect();
    let outcome = lag_to_subscribers(&urls, subscribers, rate, commands, |i| {
        let lab = json!({ "lab_id": format!("push-{}", i + 1) });
        let (env, token) = (env, &player.token);
        async move {
            let (status, body) = env.command(token, "complete_lab", &lab).await?;
            anyhow::ensure!(status == 200, "complete_lab answered {status}: {body}");
            body["position"].as_i64().context("position")
        }
    })
    .await;
    for base in queries {
        if let Ok(response) = env.client.get(format!("{base}/metrics")).send().await {
            let text = response.text().await.unwrap_or_default();
            if queries.len() > 1 {
                eprintln!("  {base}/metrics:");
            }
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                eprintln!("  {line}");
            }
        }
    }
    outcome
}

/// The same run against the bare axum SSE broadcast server: `subscribers` follow it while
/// `changes` POSTs at `rate` per second each broadcast one event. Its lag is what delivering a
/// change to that many connections costs on this machine, with no database and no decision.
pub async fn baseline_push_lag(
    subscribers: usize,
    rate: f64,
    changes: usize,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let server = Server::start(&["--serve".to_owned(), "baseline".to_owned()]).await?;
    let base = server.base();
    let client = reqwest::Client::new();
    let send = format!("{base}/send");
    let outcome = lag_to_subscribers(
        &[format!("{base}/subscribe")],
        subscribers,
        rate,
        changes,
        |i| {
            let request = client
                .post(&send)
                .body(json!({ "xp": 10 }).to_string())
                .send();
            async move {
                let status = request.await?.status();
                anyhow::ensure!(status.is_success(), "send answered {status}");
                // The server numbers its broadcasts from 1.
                Ok(i64::try_from(i + 1)?)
            }
        },
    )
    .await;
    server.stop().await;
    outcome
}

/// `subscribers` follow `urls` (spread over them in turn); once each has its snapshot, `send` is
/// called `changes` times at `rate` per second (with the change's index; it answers the position
/// the change is labelled with). A sample is "send started → change received", per subscriber and
/// change: the send's start bounds the change's making from above, so the figure is
/// conservative. Returns the lag histogram and the sends' own latency histogram.
async fn lag_to_subscribers<F, Fut>(
    urls: &[String],
    subscribers: usize,
    rate: f64,
    changes: usize,
    mut send: F,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i64>>,
{
    let client = client()?;
    anyhow::ensure!(!urls.is_empty(), "push lag needs a server");
    // The last change's position, once it is known: a subscriber that already holds it when it
    // becomes known stops then, not at an event that will never come.
    let (last_tx, last_rx) = watch::channel(i64::MAX);
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(subscribers);
    let connecting = Arc::new(Semaphore::new(128));
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let (client, url, mut last, ready_tx, connecting) = (
            client.clone(),
            urls[i % urls.len()].clone(),
            last_rx.clone(),
            ready_tx.clone(),
            connecting.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut events = {
                let _permit = connecting.acquire().await?;
                subscribe(&client, &url).await?
            };
            let mut received: Vec<(i64, Instant)> = Vec::new();
            let mut snapshots = 0;
            loop {
                if received.last().is_some_and(|(p, _)| *p >= *last.borrow()) {
                    break;
                }
                let event = tokio::select! {
                    event = events.next() => match event {
                        Some(event) => event.map_err(|e| anyhow::anyhow!("{e}"))?,
                        None => break,
                    },
                    changed = last.changed() => {
                        changed?;
                        continue;
                    }
                };
                let at = Instant::now();
                let position: i64 = event.id.parse().context("event id")?;
                if event.event == "snapshot" {
                    snapshots += 1;
                    if snapshots == 1 {
                        ready_tx.send(()).await?;
                        continue;
                    }
                    // A re-sync: the fresh snapshot is how the changes up to it arrive.
                }
                received.push((position, at));
            }
            anyhow::Ok(received)
        }));
    }
    drop(ready_tx);
    for _ in 0..subscribers {
        tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
            .await
            .context("subscribers did not all get their snapshot")?
            .context("a subscriber failed before its snapshot")?;
    }
    let mut answered = histogram();
    let mut sent = Vec::with_capacity(changes);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for i in 0..changes {
        #[allow(clippy::cast_precision_loss)]
        tokio::time::sleep_until((start + interval.mul_f64(i as f64)).into()).await;
        let at = Instant::now();
        let position = send(i).await?;
        answered.record(micros(at.elapsed()))?;
        sent.push((position, at));
    }
    let final_position = sent.last().map_or(0, |(p, _)| *p);
    last_tx.send_replace(final_position);
    let mut lag = histogram();
    for task in tasks {
        let received = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .context("a subscriber never saw the last change")???;
        // Each change is delivered by the first event at or after its position.
        let mut events = received.iter().peekable();
        for (position, at) in &sent {
            while events.next_if(|(p, _)| p < position).is_some() {}
            let (_, got) = events
                .peek()
                .with_context(|| format!("a subscriber missed position {position}"))?;
            lag.record(micros(got.saturating_duration_since(*at)))?;
        }
    }
    Ok((lag, answered))
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// What an idle fan-out run measured.
pub struct FanOut {
    pub subscribers: usize,
    /// Server RSS growth per connected subscriber, in bytes.
    pub bytes_per_subscriber: f64,
    /// From the change being made until the last subscriber received it.
    pub reach: Duration,
}

/// A server process the fan-out run measures: this binary, re-run in a serving mode.
pub struct Server {
    child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `questlog-bench` with `args` (a `--serve …` mode) and reads the address it prints.
    pub async fn start(args: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the server did not start")??
            .context("the server exited")?;
        let addr = line
            .strip_prefix("listening on ")
            .context("the server's first line")?
            .parse()?;
        Ok(Self { child, addr })
    }

    /// Starts questlog's `service` (`command-api`, `relay`, `projector`, `query-api`) alone, on
    /// the already migrated database at `database_url` and the NATS `prefix` at `nats_url`.
    pub async fn questlog(
        service: &str,
        database_url: &str,
        nats_url: &str,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        Self::start(&[
            "--serve".to_owned(),
            service.to_owned(),
            "--database-url".to_owned(),
            database_url.to_owned(),
            "--nats-url".to_owned(),
            nats_url.to_owned(),
            "--serve-prefix".to_owned(),
            prefix.to_owned(),
        ])
        .await
        .with_context(|| format!("starting a {service} process"))
    }

    /// The server's base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("server pid")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Opens `n` idle subscriptions to `url` on `server`, waits for each one's first event, then
/// measures the server's memory growth per subscriber and how long one change (`trigger`) takes
/// to reach all of them.
pub async fn idle_fan_out<F, Fut>(
    server: &Server,
    url: &str,
    n: usize,
    trigger: F,
) -> anyhow::Result<FanOut>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let client = client()?;
    // One subscriber first, so that what every connection shares (buffers, the topic's state)
    // is counted in the baseline memory and not per subscriber.
    {
        let mut warm = subscribe(&client, url).await?;
        warm.next().await.context("warm-up subscriber")??;
    }
    let before = rss(server.pid()?)?;
    let (tx, mut rx) = mpsc::channel::<u8>(n * 2);
    let connecting = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, url, tx, connecting) = (
            client.clone(),
            url.to_owned(),
            tx.clone(),
            connecting.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut events = {
                let _permit = connecting.acquire().await?;
                subscribe(&client, &url).await?
            };
            let mut count = 0u8;
            while let Some(event) = events.next().await {
                event.map_err(|e| anyhow::anyhow!("{e}"))?;
                count += 1;
                tx.send(count).await?;
                if count == 2 {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    let mut connected = 0;
    while connected < n {
        match tokio::time::timeout(Duration::from_secs(180), rx.recv()).await {
            Ok(Some(1)) => connected += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                anyhow::bail!("only {connected} of {n} idle subscribers connected")
            }
        }
    }
    let after = rss(server.pid()?)?;
    let start = Instant::now();
    trigger().await?;
    let mut reached = 0;
    while reached < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(2)) => reached += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => anyhow::bail!("the change reached only {reached} of {n}"),
        }
    }
    let reach = start.elapsed();
    for t in tasks {
        t.abort();
    }
    #[allow(clippy::cast_precision_loss)]
    let bytes_per_subscriber = after.saturating_sub(before) as f64 / n as f64;
    Ok(FanOut {
        subscribers: n,
        bytes_per_subscriber,
        reach,
    })
}

/// Idle fan-out through a query-api process of its own (so its memory is its own), fed by the
/// projectors of `env`: every subscriber follows one player, and that player's next command is
/// the change.
pub async fn questlog_fan_out(env: &Env, n: usize, labs: usize) -> anyhow::Result<FanOut> {
    let server = Server::questlog(
        "query-api",
        &crate::setup::database_url(&env.maintenance_url, &env.db_name),
        &env.nats_url,
        &env.prefix,
    )
    .await?;
    let mut player = Player::new(env).await?;
    // The player is projected before anyone subscribes, so every snapshot is the same size.
    let position = player.complete_next(env, labs).await?;
    let profile = format!(
        "http://{}/v1/players/{}?min_position={position}&wait_ms=30000",
        server.addr, player.id
    );
    let status = env
        .client
        .get(&profile)
        .bearer_auth(&player.token)
        .send()
        .await?
        .status();
    anyhow::ensure!(status.is_success(), "profile read answered {status}");
    let url = format!(
        "http://{}/v1/subscribe?topic=player:{}&access_token={}",
        server.addr, player.id, player.token
    );
    let outcome = idle_fan_out(&server, &url, n, || async {
        player.complete_next(env, labs).await.map(drop)
    })
    .await;
    server.stop().await;
    outcome
}

/// The same run against the baseline server: a bare axum SSE endpoint.
pub async fn baseline_fan_out(n: usize) -> anyhow::Result<FanOut> {
    let server = Server::start(&["--serve".to_owned(), "baseline".to_owned()]).await?;
    let base = format!("http://{}", server.addr);
    let send = format!("{base}/send");
    let outcome = idle_fan_out(&server, &format!("{base}/subscribe"), n, || async {
        let status = reqwest::Client::new()
            .post(&send)
            .body(json!({ "xp": 20 }).to_string())
            .send()
            .await?
            .status();
        anyhow::ensure!(status.is_success(), "send answered {status}");
        Ok(())
    })
    .await;
    server.stop().await;
    outcome
}

/// The baseline server: a bare axum SSE endpoint that sends one snapshot event, then broadcasts
/// whatever is POSTed to `/send`. Prints its address, then serves until killed.
pub async fn serve_baseline() -> anyhow::Result<()> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use axum::routing::{get, post};
    let (tx, _) = broadcast::channel::<String>(16);
    let subscribe_tx = tx.clone();
    let app = axum::Router::new()
        .route(
            "/subscribe",
            get(move || {
                let rx = subscribe_tx.subscribe();
                async move {
                    let hello = futures::stream::once(async {
                        Ok::<_, Infallible>(Event::default().event("snapshot").id("0").data("{}"))
                    });
                    Sse::new(hello.chain(broadcast_events(rx))).keep_alive(KeepAlive::default())
                }
            }),
        )
        .route(
            "/send",
            post(move |body: String| {
                let _ = tx.send(body);
                async {}
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn broadcast_events(
    rx: broadcast::Receiver<String>,
) -> impl Stream<Item = Result<axum::response::sse::Event, Infallible>> {
    futures::stream::unfold((rx, 1u64), |(mut rx, id)| async move {
        loop {
            match rx.recv().await {
                Ok(data) => {
                    let event = axum::response::sse::Event::default()
                        .event("change")
                        .id(id.to_string())
                        .data(data);
                    return Some((Ok(event), (rx, id + 1)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
