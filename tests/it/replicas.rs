//! Reads from a Postgres streaming replica (`QUESTLOG_READ_DATABASE_URL`): a primary and a hot
//! standby of the test's own (Debian's server binaries, `pg_basebackup -R`, loopback ports), the
//! commands, the relay and the projectors on the primary, the query API reading the standby.
//! A read with `min_position` answers only once the standby has replayed the projection's commit
//! of that position; as-of reads and pushes never show less than their position says; and the
//! standby lost under load loses and doubles nothing, and reads resume when it is back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use questlog::app::Hooks;
use questlog::config::ServeArgs;
use questlog_tests::faults::PrivatePostgres;
use questlog_tests::{nats_url, position, store_args, Player, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::faults::{
    assert_each_acknowledged_command_is_in_the_log_once, assert_stream_equals_log_on,
    assert_verify_is_clean, assert_xp_is_the_acknowledged_completions, client, read_log,
    serve_args, the_loads, wait_caught_up, wait_for, wait_until, Tally,
};
use crate::subscribe::Sub;

/// How long reads may take to resume after the standby is back before the test fails (the
/// figure the test measures is printed; this only bounds the test).
const RESUME: Duration = Duration::from_secs(30);

/// The channel the watcher writes and reads, away from the load's.
const CHANNEL: &str = "lab:lab-1";

/// A primary, a standby streaming from it, and questlog on the primary reading from the standby.
struct Replicated {
    app: TestApp,
    standby: PrivatePostgres,
    /// The standby's copy of the test's database.
    read_url: String,
    // Declared last: dropped after the app and the standby.
    _primary: PrivatePostgres,
}

impl Replicated {
    async fn start() -> Self {
        let primary = PrivatePostgres::start().await;
        let standby = primary.standby().await;
        let db = TestDb::create_on(&primary.admin_url()).await;
        let read_url = standby.url_of(&db.name);
        // The database and its schema reach the standby by replication.
        wait_for("the standby holds the database's schema", || {
            let url = read_url.clone();
            async move {
                let pool = questlog_store::connect(&url, 1).ok()?;
                let found = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
                    .fetch_one(&pool)
                    .await
                    .ok();
                pool.close().await;
                found
            }
        })
        .await;
        let store = store_args(&db);
        let serve = ServeArgs {
            read_database_url: Some(read_url.clone()),
            ..serve_args()
        };
        let app = TestApp::spawn_serving(db, store, Hooks::default(), serve).await;
        Self {
            app,
            standby,
            read_url,
            _primary: primary,
        }
    }

    /// A connection pool on the standby's copy of the database.
    fn standby_pool(&self) -> sqlx::PgPool {
        questlog_store::connect(&self.read_url, 1).expect("valid URL")
    }
}

/// `path` read with `min_position` and `wait_ms`: the status, `Questlog-Position` and body.
async fn read_waiting(
    app: &TestApp,
    token: &str,
    path: &str,
    min_position: i64,
    wait_ms: u64,
) -> (StatusCode, Option<i64>, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.get(
        token,
        &format!("{path}{sep}min_position={min_position}&wait_ms={wait_ms}"),
    )
    .await
}

/// The contents of a channel page's messages, newest first.
fn contents(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_owned())
        .collect()
}

async fn say(app: &TestApp, player: &Player, content: &str) -> i64 {
    position(
        &app.ok(
            &player.token,
            "send_message",
            json!({ "channel": CHANNEL, "content": content }),
        )
        .await,
    )
}

/// The chat projection's checkpoint as `pool`'s database shows it.
async fn chat_checkpoint(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(position), 0)::bigint FROM projection_checkpoints \
          WHERE projection = 'chat'",
    )
    .fetch_one(pool)
    .await
    .expect("the checkpoint")
}

#[tokio::test]
async fn a_read_from_the_standby_answers_min_position_and_as_of_only_once_the_standby_has_replayed_them(
) {
    let replicated = Replicated::start().await;
    let app = &replicated.app;
    app.catalog(1, 10).await;
    let me = app.player("reader").await;
    let path = format!("/v1/channels/{CHANNEL}/messages");
    let mut pushes = Sub::open(app, &me.token, &format!("topic=channel:{CHANNEL}"), None).await;
    assert_eq!(pushes.next().await.kind, "snapshot");

    let one = say(app, &me, "one").await;
    let (status, at, page) = read_waiting(app, &me.token, &path, one, 10_000).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(at >= Some(one), "{at:?} < {one}");
    assert_eq!(contents(&page), ["one"]);

    // The standby stops replaying: what the primary commits from now on, it does not show.
    let standby = replicated.standby_pool();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&standby)
        .await
        .expect("pause the standby's replay");
    wait_until("the standby's replay is paused", || async {
        sqlx::query_scalar::<_, String>("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&standby)
            .await
            .is_ok_and(|state| state == "paused")
    })
    .await;
    let two = say(app, &me, "two").await;
    let primary = app.db.pool(1);
    wait_until(
        "the primary's chat read model holds the message",
        || async { chat_checkpoint(&primary).await >= two },
    )
    .await;
    assert!(
        chat_checkpoint(&standby).await < two,
        "the standby is paused"
    );

    // The primary's read model has it, the standby's does not: a read that must reflect it
    // waits, and says so when it runs out of time, rather than answer without it.
    let (status, _, problem) = read_waiting(app, &me.token, &path, two, 300).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    assert_eq!(problem["code"], "not_caught_up", "{problem}");
    // As of that position alike (the standby's log does not hold it yet; it is in the log, so
    // it is not refused as beyond it either).
    let (status, _, problem) = app
        .get(&me.token, &format!("{path}?as_of={two}&wait_ms=300"))
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    // The admin's view of the message's stream, read from the log itself, alike.
    let admin = app.admin_token();
    let stream = format!("/v1/admin/streams/player-{}", me.id);
    let (status, _, problem) = read_waiting(app, &admin, &stream, two, 300).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    // Without min_position a read answers from the standby as it stands, labelled with it.
    let (status, at, page) = app.get(&me.token, &path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(at.is_some_and(|at| (one..two).contains(&at)), "{at:?}");
    assert_eq!(contents(&page), ["one"]);

    // A read waiting for the position answers once the standby replays again.
    let waiting = read_waiting(app, &me.token, &path, two, 20_000);
    let resume = async {
        sqlx::query("SELECT pg_wal_replay_resume()")
            .execute(&standby)
            .await
            .expect("resume the standby's replay");
    };
    let ((status, at, page), ()) = tokio::join!(waiting, resume);
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(at >= Some(two), "{at:?} < {two}");
    assert_eq!(contents(&page), ["two", "one"]);
    let (status, at, page) = app
        .get(&me.token, &format!("{path}?as_of={two}&wait_ms=10000"))
        .await;
    assert_eq!((status, at), (StatusCode::OK, Some(two)), "{page}");
    assert_eq!(contents(&page), ["two", "one"]);
    let (status, _, _) = read_waiting(app, &admin, &stream, two, 10_000).await;
    assert_eq!(status, StatusCode::OK);

    // Pushes carry each change once the standby holds it, labelled with its position.
    let mut said = Vec::new();
    while said.len() < 2 {
        let event = pushes.next_within(RESUME).await;
        assert_eq!(event.kind, "change", "{event:?}");
        said.push((event.data["data"]["content"].clone(), event.position()));
    }
    assert_eq!(said, [(json!("one"), one), (json!("two"), two)]);
    primary.close().await;
    standby.close().await;
}

#[tokio::test]
async fn losing_the_standby_under_load_loses_and_doubles_nothing_and_its_reads_resume_when_it_is_back(
) {
    const BURST: usize = 2;
    let mut replicated = Replicated::start().await;
    let app = &replicated.app;
    app.catalog(crate::faults::LABS, crate::faults::XP).await;
    let names: Vec<String> = (0..16).map(|i| format!("replica{i}")).collect();
    let players = join_all(names.iter().map(|name| app.player(name))).await;
    let watcher = app.player("watcher").await;
    let path = format!("/v1/channels/{CHANNEL}/messages?limit=200");

    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let apps = [app];
    let clients = join_all(
        players
            .iter()
            .enumerate()
            .map(|(i, p)| client(&apps, p, i, BURST, &tally, &stop)),
    );
    // The watcher says something, then reads it back from the standby with `min_position`, over
    // and over: each answer holds exactly what it said up to the answer's position (its own
    // channel: nothing else is said there), the latest included. A 503 while the standby is away
    // is retried.
    let reads = AtomicUsize::new(0);
    let unavailable = AtomicUsize::new(0);
    let watch = async {
        let mut said = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let content = format!("watch {}", said.len());
            let at = say(app, &watcher, &content).await;
            said.push(content);
            let deadline = Instant::now() + RESUME;
            loop {
                let (status, label, page) =
                    read_waiting(app, &watcher.token, &path, at, 5_000).await;
                if status == StatusCode::OK {
                    let label = label.expect("Questlog-Position");
                    assert!(label >= at, "answered at {label} for min_position {at}");
                    let expected: Vec<String> = said.iter().rev().take(200).cloned().collect();
                    assert_eq!(contents(&page), expected, "at {label}");
                    assert!(page["messages"]
                        .as_array()
                        .expect("messages")
                        .iter()
                        .all(|m| m["position"].as_i64() <= Some(label)));
                    reads.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                assert!(
                    status == StatusCode::SERVICE_UNAVAILABLE
                        || status == StatusCode::GATEWAY_TIMEOUT,
                    "{status}: {page}"
                );
                unavailable.fetch_add(1, Ordering::SeqCst);
                assert!(Instant::now() < deadline, "reads did not resume: {page}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        said.len()
    };
    let standby = &mut replicated.standby;
    let fault = async {
        wait_until("the load is under way", || async {
            tally.acknowledged.load(Ordering::SeqCst) >= 100 && reads.load(Ordering::SeqCst) >= 5
        })
        .await;
        standby.stop_immediate().await;
        let at_loss = tally.acknowledged.load(Ordering::SeqCst);
        // Commands go to the primary: the standby's loss does not hold them up.
        wait_until("commands are acknowledged without the standby", || async {
            tally.acknowledged.load(Ordering::SeqCst) >= at_loss + 100
        })
        .await;
        wait_until("reads meet the outage", || async {
            unavailable.load(Ordering::SeqCst) > 0
        })
        .await;
        let before = reads.load(Ordering::SeqCst);
        let back = Instant::now();
        standby.resume().await;
        wait_until("reads from the standby resume", || async {
            reads.load(Ordering::SeqCst) > before
        })
        .await;
        eprintln!(
            "the standby was killed and started again: reads resumed {:?} after its start",
            back.elapsed()
        );
        let at_return = tally.acknowledged.load(Ordering::SeqCst);
        wait_until("the load goes on", || async {
            tally.acknowledged.load(Ordering::SeqCst) >= at_return + 100
        })
        .await;
        stop.store(true, Ordering::SeqCst);
    };
    let (acked, said, ()) = tokio::join!(clients, watch, fault);
    assert!(reads.load(Ordering::SeqCst) >= 5);

    // Pushes from the standby resume: a subscriber (reconnecting, as an EventSource does) gets
    // what the watcher says after it all.
    let marker = "after the standby came back";
    let mut sub = None;
    let mut last = None;
    let deadline = Instant::now() + RESUME;
    let mut said_marker = false;
    'pushes: loop {
        assert!(Instant::now() < deadline, "pushes did not resume");
        let Some(open) = sub.as_mut() else {
            sub = Sub::try_open(
                app,
                &watcher.token,
                &format!("topic=channel:{CHANNEL}"),
                last,
            )
            .await;
            if sub.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        if !said_marker {
            say(app, &watcher, marker).await;
            said_marker = true;
        }
        match open.try_next_within(Duration::from_secs(5)).await {
            Some(event) => {
                last = Some(event.id);
                if event.data.to_string().contains(marker) {
                    break 'pushes;
                }
            }
            None => sub = None,
        }
    }
    assert!(said > 5);

    let log = read_log(&app.db).await;
    let load = the_loads(&log, &watcher);
    assert_each_acknowledged_command_is_in_the_log_once(&load, &acked);
    let head = log.last().map_or(0, |e| e.position);
    // Through the standby: its checkpoints, and every player's XP read with min_position.
    wait_caught_up(app, head).await;
    assert_xp_is_the_acknowledged_completions(app, &players, &acked, head).await;
    assert_stream_equals_log_on(&nats_url(), &app.db, &log).await;
    assert_verify_is_clean(&app.db).await;
}

/// `questlog_standby_lag_events` as `GET /metrics` shows it (`None` while it is left out).
async fn standby_lag(app: &TestApp) -> Option<i64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix("questlog_standby_lag_events ")?
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn metrics_show_how_far_the_standby_is_behind_while_its_replay_is_paused_and_zero_once_it_caught_up(
) {
    let replicated = Replicated::start().await;
    let app = &replicated.app;
    app.catalog(1, 10).await;
    let me = app.player("reader").await;
    say(app, &me, "one").await;
    wait_until("the metrics show the standby caught up", || async {
        standby_lag(app).await == Some(0)
    })
    .await;

    let standby = replicated.standby_pool();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&standby)
        .await
        .expect("pause the standby's replay");
    wait_until("the standby's replay is paused", || async {
        sqlx::query_scalar::<_, String>("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&standby)
            .await
            .is_ok_and(|state| state == "paused")
    })
    .await;
    say(app, &me, "two").await;
    let three = say(app, &me, "three").await;
    let replayed: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
        .fetch_one(&standby)
        .await
        .expect("the standby's head");
    assert!(replayed < three, "the paused standby holds {replayed}");
    // The primary's head is at least `three`: the standby is at least that far behind.
    let lag = standby_lag(app)
        .await
        .expect("the standby's lag on /metrics");
    assert!(
        lag >= three - replayed,
        "lag {lag}, standby at {replayed}, log at {three}"
    );

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&standby)
        .await
        .expect("resume the standby's replay");
    wait_until("the metrics show the standby caught up again", || async {
        standby_lag(app).await == Some(0)
    })
    .await;
}
