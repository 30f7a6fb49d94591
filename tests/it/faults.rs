//! Faults at the seams, under load: Postgres crashing (immediate shutdown) and coming back, and the
//! relay leader's Postgres connection terminated while it publishes. After each: no acknowledged
//! command is lost, none is applied twice, the JetStream stream holds the log exactly once and in
//! order, the read models catch up and `verify` finds no drift.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures::future::join_all;
use futures::StreamExt;
use questlog::app::Hooks;
use questlog::config::ServeArgs;
use questlog_store::{EventStore, PgEventStore, RecordedEvent};
use questlog_tests::faults::PrivatePostgres;
use questlog_tests::{nats_url, store_args, Player, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

/// How long any awaited condition may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(25);
pub(crate) const LABS: usize = 6;
pub(crate) const XP: u32 = 40;
/// Times Postgres crashes in the crash test.
const CRASHES: usize = 2;

/// Polls `probe` until it finds something; fails naming `what` after the deadline.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `condition` until it holds; fails naming `what` after the deadline.
pub(crate) async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// The test configuration without the chat flood limit: the load sends many messages per player.
pub(crate) fn serve_args() -> ServeArgs {
    let many = NonZeroU32::new(1_000_000).expect("positive");
    let mut serve = TestApp::serve_args();
    serve.modules.chat = questlog_chat::ChatArgs {
        chat_per_minute: many,
        chat_burst: many,
    };
    serve
}

/// A command the server acknowledged: the key it was sent with and the answer.
pub(crate) struct Acked {
    key: String,
    command_id: Uuid,
    events: Vec<Value>,
}

/// What the clients went through.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) acknowledged: AtomicUsize,
    /// 503s and broken connections, each followed by a retry with the same key.
    pub(crate) troubles: AtomicUsize,
}

/// Sends a command with an `Idempotency-Key` until it is acknowledged, as a careful client does:
/// after a 503 or a broken connection the same request again, with the same key (the first
/// attempt may have committed; the retry then gets its answer).
async fn send_until_acknowledged(
    app: &TestApp,
    player: &Player,
    name: &str,
    body: &Value,
    key: String,
    tally: &Tally,
) -> Acked {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let sent = app
            .client
            .post(app.url(&format!("/v1/commands/{name}")))
            .bearer_auth(&player.token)
            .header("idempotency-key", &key)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status();
                response.json::<Value>().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((StatusCode::OK, out)) => {
                tally.acknowledged.fetch_add(1, Ordering::SeqCst);
                return Acked {
                    key,
                    command_id: out["command_id"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .expect("command_id"),
                    events: out["events"].as_array().expect("events").clone(),
                };
            }
            Ok((StatusCode::SERVICE_UNAVAILABLE, problem)) => {
                assert_eq!(problem["code"], "unavailable", "{problem}");
                tally.troubles.fetch_add(1, Ordering::SeqCst);
            }
            // Another writer's append, or a twin with this key still in flight: retry.
            Ok((StatusCode::CONFLICT, problem)) if problem["code"] == "conflict" => {
                tally.troubles.fetch_add(1, Ordering::SeqCst);
            }
            Ok((status, out)) => panic!("{name} {body} (key {key}) answered {status}: {out}"),
            Err(_) => {
                tally.troubles.fetch_add(1, Ordering::SeqCst);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} {body} (key {key}) was not acknowledged in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One client's load until `stop`: its player completes the catalog's labs between chat messages,
/// then keeps chatting, `burst` commands at a time (each with a key of its own). Each burst goes to
/// the next of `apps`.
pub(crate) async fn client(
    apps: &[&TestApp],
    player: &Player,
    index: usize,
    burst: usize,
    tally: &Tally,
    stop: &AtomicBool,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    let mut lab = 0;
    for step in 0.. {
        if stop.load(Ordering::SeqCst) && lab == LABS {
            break;
        }
        let app = apps[(index + step) % apps.len()];
        let commands: Vec<(String, &str, Value)> = (step * burst..(step + 1) * burst)
            .map(|n| {
                let key = format!("client-{index}-{n}");
                if n % 2 == 1 && lab < LABS {
                    lab += 1;
                    let body = json!({ "lab_id": format!("lab-{lab}") });
                    (key, "complete_lab", body)
                } else {
                    let content = format!("client {index} message {n}");
                    (
                        key,
                        "send_message",
                        json!({ "channel": "global", "content": content }),
                    )
                }
            })
            .collect();
        let answers = join_all(commands.into_iter().map(|(key, name, body)| async move {
            send_until_acknowledged(app, player, name, &body, key, tally).await
        }));
        acked.extend(answers.await);
    }
    acked
}

/// The whole log, by position.
pub(crate) async fn read_log(db: &TestDb) -> Vec<RecordedEvent> {
    let pool = db.pool(1);
    let log = PgEventStore::new(pool.clone())
        .read_all(0, i64::MAX)
        .await
        .expect("read the log");
    pool.close().await;
    log
}

/// Every acknowledged command's events are in the log as its answer said, and the log holds no
/// other `complete_lab` or `send_message` command: nothing lost, nothing applied twice.
pub(crate) fn assert_each_acknowledged_command_is_in_the_log_once(
    log: &[RecordedEvent],
    acked: &[Vec<Acked>],
) {
    let mut by_command: HashMap<Uuid, Vec<&RecordedEvent>> = HashMap::new();
    for event in log {
        if matches!(
            event.metadata["command"].as_str(),
            Some("complete_lab" | "send_message")
        ) {
            let id = event.metadata["command_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("command_id in the metadata");
            by_command.entry(id).or_default().push(event);
        }
    }
    for a in acked.iter().flatten() {
        let stored = by_command
            .remove(&a.command_id)
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                (
                    e.position,
                    e.stream_id.as_str(),
                    e.stream_version,
                    e.event_type.as_str(),
                )
            })
            .collect::<Vec<_>>();
        let answered = a
            .events
            .iter()
            .map(|e| {
                (
                    e["position"].as_i64().expect("position"),
                    e["stream"].as_str().expect("stream"),
                    e["version"].as_i64().expect("version"),
                    e["type"].as_str().expect("type"),
                )
            })
            .collect::<Vec<_>>();
        assert!(!answered.is_empty(), "key {} answered no events", a.key);
        assert_eq!(
            stored, answered,
            "key {}: the log differs from the acknowledged answer",
            a.key
        );
    }
    assert!(
        by_command.is_empty(),
        "commands in the log that no client was acknowledged for (applied twice?): {:?}",
        by_command.keys().collect::<Vec<_>>()
    );
}

/// The events of `log` but those `watcher` appended: a watcher's own commands are not the load's.
pub(crate) fn the_loads(log: &[RecordedEvent], watcher: &Player) -> Vec<RecordedEvent> {
    log.iter()
        .filter(|e| e.metadata["identity"] != json!(watcher.id.to_string()))
        .cloned()
        .collect()
}

/// Waits until every projection has applied `head`.
pub(crate) async fn wait_caught_up(app: &TestApp, head: i64) {
    let admin = app.admin_token();
    wait_until("every projection has applied the log's head", || async {
        let (_, _, body) = app.get(&admin, "/v1/admin/projections").await;
        body["projections"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["position"].as_i64() >= Some(head)))
    })
    .await;
}

/// `questlog verify` finds every read model equal to a replay of the log.
pub(crate) async fn assert_verify_is_clean(db: &TestDb) {
    let mut out = Vec::new();
    let drifted = questlog::admin::rebuild::verify(&db.url, true, &mut out)
        .await
        .expect("verify runs");
    assert!(
        !drifted,
        "verify found drift: {}",
        String::from_utf8_lossy(&out)
    );
}

/// This test's event stream (created as the relay would, if it has not yet).
async fn events_stream(db: &TestDb) -> jetstream::stream::Stream {
    events_stream_on(&nats_url(), db).await
}

/// This test's event stream on the NATS servers of `urls` (comma-separated).
pub(crate) async fn events_stream_on(urls: &str, db: &TestDb) -> jetstream::stream::Stream {
    let client = questlog_bus::connect(urls).await.expect("NATS");
    questlog_bus::ensure_stream(
        &jetstream::new(client),
        &questlog_bus::Names::new(&db.nats_prefix),
    )
    .await
    .expect("the event stream")
}

pub(crate) async fn last_sequence(stream: &mut jetstream::stream::Stream) -> u64 {
    stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence
}

/// The stream is the log: message n is the log's n-th event, whole, with nothing before, between
/// or after.
async fn assert_stream_equals_log(db: &TestDb, log: &[RecordedEvent]) {
    assert_stream_equals_log_on(&nats_url(), db, log).await;
}

/// [`assert_stream_equals_log`] on the NATS servers of `urls`.
pub(crate) async fn assert_stream_equals_log_on(urls: &str, db: &TestDb, log: &[RecordedEvent]) {
    let mut stream = events_stream_on(urls, db).await;
    let n = u64::try_from(log.len()).expect("length");
    wait_until("the relay has published the whole log", || {
        let mut stream = stream.clone();
        async move { last_sequence(&mut stream).await >= n }
    })
    .await;
    let state = stream.info().await.expect("stream info").state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (n, 1, n),
        "the stream holds exactly the log's events"
    );
    // The reader the projectors use: on a cluster replicated like the stream, since JetStream
    // before 2.12 may place a new single-replica consumer on a node it has lost, again and again.
    let replicas = stream.cached_info().config.num_replicas;
    let names =
        questlog_bus::Names::new(&db.nats_prefix).with_stream(questlog_bus::StreamSettings {
            replicas,
            ..questlog_bus::StreamSettings::default()
        });
    let mut messages = wait_for("a reader of the stream", || {
        let stream = stream.clone();
        let config = questlog_bus::reader_config(&names, 1);
        async move {
            stream
                .create_consumer(config)
                .await
                .ok()?
                .messages()
                .await
                .ok()
        }
    })
    .await;
    for (sequence, event) in (1..).zip(log) {
        let message = tokio::time::timeout(DEADLINE, messages.next())
            .await
            .expect("the next message in time")
            .expect("a message")
            .expect("a readable message");
        let info = message.info().expect("metadata");
        assert_eq!(info.stream_sequence, sequence);
        let published: RecordedEvent = serde_json::from_slice(&message.payload).expect("an event");
        assert_eq!(
            &published, event,
            "stream sequence {sequence} is not the log's event {sequence}"
        );
    }
}

/// Every player's profile has the XP of the lab completions it was acknowledged for, once each.
pub(crate) async fn assert_xp_is_the_acknowledged_completions(
    app: &TestApp,
    players: &[Player],
    acked: &[Vec<Acked>],
    head: i64,
) {
    for (player, acked) in players.iter().zip(acked) {
        let completions: Vec<i64> = acked
            .iter()
            .flat_map(|a| &a.events)
            .filter(|e| e["type"] == "lab_completed")
            .map(|e| e["data"]["xp"].as_i64().expect("xp"))
            .collect();
        assert_eq!(completions.len(), LABS, "every lab completed once");
        let me = app.read_at(&player.token, "/v1/players/me", head).await;
        assert_eq!(me["xp"], json!(completions.iter().sum::<i64>()), "{me}");
    }
}

#[tokio::test]
async fn commands_acknowledged_across_a_postgres_crash_are_all_kept_once_and_the_read_models_verify(
) {
    const BURST: usize = 2;
    let mut postgres = PrivatePostgres::start().await;
    let db = TestDb::create_on(&postgres.admin_url()).await;
    let store = store_args(&db);
    let app = TestApp::spawn_serving(db, store, Hooks::default(), serve_args()).await;
    app.catalog(LABS, XP).await;
    let names: Vec<String> = (0..24).map(|i| format!("crash{i}")).collect();
    let players = join_all(names.iter().map(|name| app.player(name))).await;

    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let apps = [&app];
    let clients = join_all(
        players
            .iter()
            .enumerate()
            .map(|(i, p)| client(&apps, p, i, BURST, &tally, &stop)),
    );
    // Watches the server's activity; reconnects by itself after each restart.
    let activity = app.db.pool(1);
    let fault = async {
        for _ in 0..CRASHES {
            let since = tally.acknowledged.load(Ordering::SeqCst);
            wait_until("the load is under way", || async {
                tally.acknowledged.load(Ordering::SeqCst) >= since + 50
            })
            .await;
            // Crashing while an append is in flight is what may leave a commit whose answer never
            // went out (its retry must get that answer, not apply the command again).
            wait_until("an append is in flight", || async {
                append_in_flight(&activity).await
            })
            .await;
            let troubles = tally.troubles.load(Ordering::SeqCst);
            postgres.stop_immediate().await;
            wait_until("clients meet the outage", || async {
                tally.troubles.load(Ordering::SeqCst) > troubles
            })
            .await;
            postgres.resume().await;
        }
        let at_restart = tally.acknowledged.load(Ordering::SeqCst);
        wait_until("the load goes on after the restart", || async {
            tally.acknowledged.load(Ordering::SeqCst) >= at_restart + 100
        })
        .await;
        stop.store(true, Ordering::SeqCst);
    };
    let (acked, ()) = tokio::join!(clients, fault);
    activity.close().await;

    let log = read_log(&app.db).await;
    assert_each_acknowledged_command_is_in_the_log_once(&log, &acked);
    let head = log.last().map_or(0, |e| e.position);
    wait_caught_up(&app, head).await;
    assert_xp_is_the_acknowledged_completions(&app, &players, &acked, head).await;
    // Positions may skip numbers after a crash (the sequence is logged ahead), the stream's
    // sequence never does: it holds the log's events in order, each once.
    assert_stream_equals_log(&app.db, &log).await;
    assert_verify_is_clean(&app.db).await;
}

/// Whether a backend is running `questlog_append` (an append, or its commit, in flight).
async fn append_in_flight(activity: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE state = 'active' AND query LIKE '%questlog_append(%' AND pid <> pg_backend_pid())",
    )
    .fetch_one(activity)
    .await
    .unwrap_or(false)
}

/// Waits until a backend not in `terminated` holds the relay's leadership lock; returns its pid.
async fn new_relay_leader(pool: &sqlx::PgPool, terminated: &[i32]) -> i32 {
    wait_for("a relay replica leads", || async {
        relay_leader(pool)
            .await
            .filter(|pid| !terminated.contains(pid))
    })
    .await
}

/// Waits until the stream has a message it did not have when called.
async fn stream_grows(stream: &jetstream::stream::Stream, what: &str) {
    let seen = last_sequence(&mut stream.clone()).await;
    wait_until(what, || {
        let mut stream = stream.clone();
        async move { last_sequence(&mut stream).await > seen }
    })
    .await;
}

/// The backend that holds the relay's leadership lock in this database, if any.
async fn relay_leader(pool: &sqlx::PgPool) -> Option<i32> {
    let key = u64::from_ne_bytes(questlog_store::leader::lock_key("relay").to_ne_bytes());
    // A bigint advisory lock shows in pg_locks as its high and low halves.
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks \
         WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND classid::bigint = $1 AND objid::bigint = $2",
    )
    .bind(i64::try_from(key >> 32).expect("32 bits"))
    .bind(i64::try_from(key & 0xffff_ffff).expect("32 bits"))
    .fetch_optional(pool)
    .await
    .expect("reading pg_locks")
}

#[tokio::test]
async fn terminating_the_relay_leaders_connection_while_it_publishes_leaves_the_stream_equal_to_the_log(
) {
    const TERMINATIONS: usize = 4;
    const BURST: usize = 8;
    let db = TestDb::create().await;
    let replica = db.share();
    let store = store_args(&db);
    let a = TestApp::spawn_serving(db, store.clone(), Hooks::default(), serve_args()).await;
    let b = TestApp::spawn_serving(replica, store, Hooks::default(), serve_args()).await;
    a.catalog(LABS, XP).await;
    let names: Vec<String> = (0..12).map(|i| format!("relay{i}")).collect();
    let players = join_all(names.iter().map(|name| a.player(name))).await;
    let pool = a.db.pool(2);
    let stream = events_stream(&a.db).await;

    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let apps = [&a, &b];
    let clients = join_all(
        players
            .iter()
            .enumerate()
            .map(|(i, p)| client(&apps, p, i, BURST, &tally, &stop)),
    );
    let fault = async {
        let mut terminated = Vec::new();
        let mut leader = new_relay_leader(&pool, &terminated).await;
        for _ in 0..TERMINATIONS {
            stream_grows(&stream, "the relay leader publishes").await;
            let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(leader)
                .fetch_one(&pool)
                .await
                .expect("terminating the relay leader's backend");
            assert!(done, "backend {leader} was terminated");
            terminated.push(leader);
            leader = new_relay_leader(&pool, &terminated).await;
        }
        stream_grows(&stream, "the last relay leader publishes").await;
        stop.store(true, Ordering::SeqCst);
    };
    let (acked, ()) = tokio::join!(clients, fault);
    assert_eq!(
        tally.troubles.load(Ordering::SeqCst),
        0,
        "commands never notice the relay"
    );

    let log = read_log(&a.db).await;
    assert_each_acknowledged_command_is_in_the_log_once(&log, &acked);
    let positions: Vec<i64> = log.iter().map(|e| e.position).collect();
    let expected: Vec<i64> = (1..=i64::try_from(log.len()).expect("length")).collect();
    assert_eq!(
        positions, expected,
        "the log's positions run from 1 without a gap"
    );
    // Two publishers at once would show here as a duplicate, a gap or a reordering.
    assert_stream_equals_log(&a.db, &log).await;
    let head = log.last().map_or(0, |e| e.position);
    wait_caught_up(&b, head).await;
    assert_xp_is_the_acknowledged_completions(&b, &players, &acked, head).await;
    assert_verify_is_clean(&a.db).await;
    pool.close().await;
}
