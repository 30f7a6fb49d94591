//! questlog on clusters: a three-node NATS cluster of the test's own on loopback, the stream
//! replicated on all three, and one node — the stream's leader — killed under load and never
//! brought back. Nothing acknowledged is lost or doubled, the stream is still the log message by
//! message, the read models equal a replay, and reads and pushes resume without the node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures::future::join_all;
use questlog::app::Hooks;
use questlog::config::{ServeArgs, StreamArgs};
use questlog_tests::faults::NatsCluster;
use questlog_tests::{position, store_args, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::faults::{
    assert_each_acknowledged_command_is_in_the_log_once, assert_stream_equals_log_on,
    assert_verify_is_clean, assert_xp_is_the_acknowledged_completions, client, read_log,
    serve_args, the_loads, wait_caught_up, wait_for, wait_until, Tally,
};
use crate::subscribe::Sub;

/// How long reads and pushes may take to resume after a node is lost before the test fails (the
/// figure the test measures is printed; this only bounds the test).
const RESUME: Duration = Duration::from_secs(60);

/// The application on the cluster of `urls`, with the stream on `replicas` nodes.
async fn spawn_on_cluster(db: TestDb, urls: &str, replicas: u8) -> TestApp {
    let mut store = store_args(&db);
    store.nats_url = urls.to_owned();
    let serve = ServeArgs {
        stream: StreamArgs {
            stream_replicas: replicas,
            ..StreamArgs::default()
        },
        ..serve_args()
    };
    TestApp::spawn_serving(db, store, Hooks::default(), serve).await
}

/// The stream's info once it exists with `replicas` copies, every one of them current.
async fn replicated_stream(js: &jetstream::Context, db: &TestDb, replicas: usize) -> String {
    let name = questlog_bus::Names::new(&db.nats_prefix).events_stream();
    wait_for("the stream is on every node, each copy current", || {
        let name = name.clone();
        async move {
            let mut stream = js.get_stream(&name).await.ok()?;
            let info = stream.info().await.ok()?;
            let cluster = info.cluster.clone()?;
            let leader = cluster.leader.clone()?;
            (info.config.num_replicas == replicas
                && cluster.replicas.len() + 1 == replicas
                && cluster.replicas.iter().all(|p| p.current && !p.offline))
            .then_some(leader)
        }
    })
    .await
}

#[tokio::test]
async fn losing_the_streams_leader_node_under_load_loses_and_doubles_nothing_and_reads_and_pushes_resume(
) {
    const BURST: usize = 4;
    let mut cluster = NatsCluster::start(3).await;
    let urls = cluster.urls();
    let app = spawn_on_cluster(TestDb::create().await, &urls, 3).await;
    app.catalog(crate::faults::LABS, crate::faults::XP).await;
    let names: Vec<String> = (0..12).map(|i| format!("node{i}")).collect();
    let players = join_all(names.iter().map(|name| app.player(name))).await;
    let watcher = app.player("watcher").await;
    let js = jetstream::new(questlog_bus::connect(&urls).await.expect("the cluster"));
    let leader = replicated_stream(&js, &app.db, 3).await;
    // The watcher follows a channel of its own, away from the load's.
    let mut pushes = Sub::open(&app, &watcher.token, "topic=channel:lab:lab-1", None).await;
    assert_eq!(pushes.next().await.kind, "snapshot");
    let say = |content: String| {
        app.ok(
            &watcher.token,
            "send_message",
            json!({ "channel": "lab:lab-1", "content": content }),
        )
    };

    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let apps = [&app];
    let clients = join_all(
        players
            .iter()
            .enumerate()
            .map(|(i, p)| client(&apps, p, i, BURST, &tally, &stop)),
    );
    let fault = async {
        wait_until("the load is under way", || async {
            tally.acknowledged.load(Ordering::SeqCst) >= 100
        })
        .await;
        // Pushes reach the subscriber before the fault (behind the load's backlog, which three
        // nodes replicating every message on two cores may take a while to fold).
        say("before the fault".to_owned()).await;
        let before = pushes.next_within(RESUME).await;
        assert!(
            before.data.to_string().contains("before the fault"),
            "{:?}",
            before.data
        );
        let killed = cluster.index_of(&leader);
        let lost_at = Instant::now();
        cluster.kill(killed).await;
        // A message sent once the node is gone; the read waits for it with `min_position`.
        let marker = format!("sent after {leader} was lost");
        let sent = say(marker.clone()).await;
        let at = position(&sent);
        loop {
            let (status, _, body) = app
                .get(
                    &watcher.token,
                    &format!("/v1/channels/lab:lab-1/messages?min_position={at}&wait_ms=5000"),
                )
                .await;
            if status == StatusCode::OK {
                assert!(body.to_string().contains(&marker), "{body}");
                break;
            }
            assert_eq!(body["code"], "not_caught_up", "{status}: {body}");
            assert!(lost_at.elapsed() < RESUME, "reads did not resume: {body}");
        }
        let read_stall = lost_at.elapsed();
        loop {
            let event = pushes.next_within(RESUME).await;
            if event.data.to_string().contains(&marker) {
                break;
            }
        }
        let push_stall = lost_at.elapsed();
        eprintln!(
            "node {leader} (the stream's leader) killed: reads resumed after {read_stall:?}, \
             pushes after {push_stall:?}"
        );
        let at_loss = tally.acknowledged.load(Ordering::SeqCst);
        wait_until("the load goes on", || async {
            tally.acknowledged.load(Ordering::SeqCst) >= at_loss + 100
        })
        .await;
        stop.store(true, Ordering::SeqCst);
        leader
    };
    let (acked, lost) = tokio::join!(clients, fault);

    // Another node leads the stream now, with the node that was lost still away.
    let mut stream = js
        .get_stream(questlog_bus::Names::new(&app.db.nats_prefix).events_stream())
        .await
        .expect("the stream");
    let info = stream.info().await.expect("stream info");
    let now = info.cluster.as_ref().and_then(|c| c.leader.clone());
    assert!(now.is_some_and(|l| l != lost), "a surviving node leads");

    let log = read_log(&app.db).await;
    let load = the_loads(&log, &watcher);
    assert_each_acknowledged_command_is_in_the_log_once(&load, &acked);
    let head = log.last().map_or(0, |e| e.position);
    wait_caught_up(&app, head).await;
    assert_xp_is_the_acknowledged_completions(&app, &players, &acked, head).await;
    assert_stream_equals_log_on(&urls, &app.db, &log).await;
    assert_verify_is_clean(&app.db).await;
}
