//! The read side end to end: relay → JetStream → projectors → query API, with read-your-writes,
//! and the faults the services must survive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::join_all;
use questlog::app::Hooks;
use questlog_academy::player::projection::{fold_players, load_players};
use questlog_projector::Decoded;
use questlog_store::{EventStore, PgEventStore};
use questlog_tests::faults::{NatsServer, PgProxy};
use questlog_tests::{position, store_args, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// Checks that the live `rm_players` equals a full replay of the log through the same fold.
async fn assert_players_match_a_rebuild(db: &TestDb) {
    let pool = db.pool(2);
    let store = PgEventStore::new(pool.clone());
    let events = store.read_all(0, i64::MAX).await.expect("read the log");
    let domain = questlog::modules::app().domain();
    let mut conn = pool.acquire().await.expect("connection");
    let events = Decoded::open_all(&mut conn, &domain, events)
        .await
        .expect("open and decode");
    let rebuilt = fold_players(&events);
    let ids: Vec<Uuid> = rebuilt.keys().copied().collect();
    let live = load_players(&mut conn, &ids).await.expect("load");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_players")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        usize::try_from(count).ok(),
        Some(rebuilt.len()),
        "player rows"
    );
    assert_eq!(
        live, rebuilt,
        "the read model differs from a rebuild of the log"
    );
}

#[tokio::test]
async fn a_client_reads_its_own_write_through_min_position() {
    let app = TestApp::spawn().await;
    app.catalog(2, 150).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    app.ok(&bob.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let out = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    let p = position(&out);

    let me = app.read_at(&ada.token, "/v1/players/me", p).await;
    assert_eq!(me["username"], "ada");
    assert_eq!(me["xp"], 300);
    assert_eq!(me["level"], 3);
    assert_eq!(me["streak"], 1);
    assert_eq!(me["completed_labs"], json!(["lab-1", "lab-2"]));
    assert_eq!(me["completed_modules"], json!([1]));
    assert!(me["achievements"]
        .as_array()
        .expect("achievements")
        .contains(&json!("first_module")));

    let board = app.read_at(&ada.token, "/v1/leaderboard?limit=10", p).await;
    let entries = board["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["username"], "ada");
    assert_eq!(entries[0]["rank"], 1);
    assert_eq!(entries[1]["username"], "bob");
    assert_eq!(entries[1]["xp"], 150);

    let around = app
        .read_at(
            &bob.token,
            &format!("/v1/leaderboard/players/{}?radius=5", bob.id),
            p,
        )
        .await;
    assert_eq!(
        around["entries"].as_array().map(Vec::len),
        Some(2),
        "{around}"
    );
}

#[tokio::test]
async fn a_projector_that_dies_right_after_its_commit_counts_nothing_twice() {
    let db = TestDb::create().await;
    let failures = Arc::new(AtomicUsize::new(0));
    let counter = failures.clone();
    let hooks = Hooks {
        projector_failpoint: Some(Arc::new(move |point: &str| {
            // The first two committed batches of `players` die before their ack.
            point == "players:after_commit" && counter.fetch_add(1, Ordering::SeqCst) < 2
        })),
        ..Hooks::default()
    };
    let store = store_args(&db);
    let app = TestApp::spawn_custom(db, store, hooks).await;
    app.catalog(5, 40).await;
    let mut players = Vec::new();
    for i in 0..4 {
        players.push(app.player(&format!("p{i}")).await);
    }
    let mut last = 0;
    for lab in 1..=5 {
        for p in &players {
            let out = app
                .ok(
                    &p.token,
                    "complete_lab",
                    json!({ "lab_id": format!("lab-{lab}") }),
                )
                .await;
            last = last.max(position(&out));
        }
    }
    let me = app.read_at(&players[0].token, "/v1/players/me", last).await;
    assert_eq!(me["xp"], 200);
    assert!(failures.load(Ordering::SeqCst) >= 2, "the failpoint fired");
    assert_players_match_a_rebuild(&app.db).await;
}

#[tokio::test]
async fn a_projection_failing_after_every_commit_does_not_stop_the_others_sharing_its_feed() {
    let db = TestDb::create().await;
    let failures = Arc::new(AtomicUsize::new(0));
    let counter = failures.clone();
    let hooks = Hooks {
        // Every batch `players` commits ends its leadership before the announcement: it leaves
        // the shared feed, starts over from its checkpoint and joins again, each time.
        projector_failpoint: Some(Arc::new(move |point: &str| {
            if point == "players:after_commit" {
                counter.fetch_add(1, Ordering::SeqCst);
                true
            } else {
                false
            }
        })),
        ..Hooks::default()
    };
    let store = store_args(&db);
    let app = TestApp::spawn_custom(db, store, hooks).await;
    app.catalog(3, 25).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let mut last = 0;
    for (i, p) in [&ada, &bob, &ada].into_iter().enumerate() {
        let out = app
            .ok(
                &p.token,
                "send_message",
                json!({ "channel": "global", "content": format!("hello {i}") }),
            )
            .await;
        last = last.max(position(&out));
        let out = app
            .ok(
                &p.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{}", i + 1) }),
            )
            .await;
        last = last.max(position(&out));
    }
    let history = app
        .read_at(&bob.token, "/v1/channels/global/messages?limit=10", last)
        .await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(3),
        "{history}"
    );
    let me = app.read_at(&ada.token, "/v1/players/me", last).await;
    assert_eq!(me["xp"], 50, "{me}");
    assert!(failures.load(Ordering::SeqCst) >= 1, "the failpoint fired");
    assert_players_match_a_rebuild(&app.db).await;
}

#[tokio::test]
async fn events_reach_the_read_models_exactly_once_across_a_nats_outage() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut store = store_args(&db);
    store.nats_url = nats.url();
    let app = TestApp::spawn_custom(db, store, Hooks::default()).await;
    app.catalog(6, 10).await;
    let p = app.player("steady").await;
    let out = app
        .ok(&p.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.read_at(&p.token, "/v1/players/me", position(&out))
        .await;

    nats.stop().await;
    let mut last = 0;
    for lab in 2..=4 {
        let out = app
            .ok(
                &p.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{lab}") }),
            )
            .await;
        last = position(&out);
    }
    nats.resume().await;
    for lab in 5..=6 {
        let out = app
            .ok(
                &p.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{lab}") }),
            )
            .await;
        last = position(&out);
    }
    let me = app.read_at(&p.token, "/v1/players/me", last).await;
    assert_eq!(me["xp"], 60);
    assert_eq!(me["completed_labs"].as_array().map(Vec::len), Some(6));
    assert_players_match_a_rebuild(&app.db).await;
}

#[tokio::test]
async fn two_of_every_service_at_once_have_no_duplicate_effect() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(a.db.share()).await;
    a.catalog(8, 25).await;
    let mut players = Vec::new();
    for i in 0..6 {
        players.push(a.player(&format!("twin{i}")).await);
    }
    let (a_ref, b_ref) = (&a, &b);
    let sends = players.iter().enumerate().flat_map(|(i, p)| {
        (1..=8).map(move |lab| async move {
            let app = if (i + lab) % 2 == 0 { a_ref } else { b_ref };
            app.ok(
                &p.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{lab}") }),
            )
            .await
        })
    });
    let last = join_all(sends)
        .await
        .iter()
        .map(position)
        .max()
        .unwrap_or(0);
    for p in &players {
        let me = a.read_at(&p.token, "/v1/players/me", last).await;
        assert_eq!(me["xp"], 200);
        let me = b.read_at(&p.token, "/v1/players/me", last).await;
        assert_eq!(me["xp"], 200);
    }
    assert_players_match_a_rebuild(&a.db).await;

    // The stream holds every event exactly once.
    let client = async_nats::connect(questlog_tests::nats_url())
        .await
        .expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(questlog_bus::Names::new(&a.db.nats_prefix).events_stream())
        .await
        .expect("stream");
    let messages = stream.info().await.expect("info").state.messages;
    assert_eq!(
        i64::try_from(messages).ok(),
        Some(questlog_tests::event_count(&a.db).await)
    );
}

#[tokio::test]
async fn when_postgres_goes_away_commands_get_503_and_everything_recovers() {
    let db = TestDb::create().await;
    let admin_url = questlog_tests::admin_database_url();
    let target = admin_url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .expect("host:port in the test database URL");
    let proxy = PgProxy::start(&target).await;
    let mut store = store_args(&db);
    store.database_url = proxy.url_for(&db.url);
    let app = TestApp::spawn_custom(db, store, Hooks::default()).await;
    app.catalog(3, 100).await;
    let p = app.player("patient").await;
    app.ok(&p.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;

    proxy.cut();
    let response = app
        .client
        .post(app.url("/v1/commands/complete_lab"))
        .bearer_auth(&p.token)
        .json(&json!({ "lab_id": "lab-2" }))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "unavailable");
    let (status, _, _) = app.get(&p.token, "/v1/players/me").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    // The pool reconnects by itself; the first command after the outage may still meet a dead
    // connection, so retry for a bounded time like a client would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let out = loop {
        let (status, body) = app
            .command(&p.token, "complete_lab", &json!({ "lab_id": "lab-2" }))
            .await;
        if status == StatusCode::OK || std::time::Instant::now() > deadline {
            assert_eq!(status, StatusCode::OK, "{body}");
            break body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let me = app
        .read_at(&p.token, "/v1/players/me", position(&out))
        .await;
    assert_eq!(me["xp"], 200);
}
