//! Presence: heartbeats append only on transitions; the reaper takes silent players offline, in
//! one process, across restarts. Time is simulated: the app's clock is moved by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use questlog_command_api::Clock;
use questlog_tests::{event_count, event_types, position, store_args, Player, TestApp, TestDb};
use serde_json::{json, Value};

use crate::subscribe::Sub;

/// A clock a test moves by hand.
#[derive(Clone)]
struct Manual(Arc<AtomicI64>);

impl Manual {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(Utc::now().timestamp_micros())))
    }
    fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).expect("small");
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
    fn clock(&self) -> Clock {
        let at = self.0.clone();
        Clock::new(move || {
            DateTime::from_timestamp_micros(at.load(Ordering::SeqCst)).expect("in range")
        })
    }
}

async fn spawn_with_clock(db: TestDb, clock: &Manual) -> TestApp {
    let store = store_args(&db);
    let hooks = questlog::app::Hooks {
        clock: Some(clock.clock()),
        job_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    TestApp::spawn_custom(db, store, hooks).await
}

/// Polls `GET /v1/presence` until `done` holds, failing after 30 s.
async fn presence_until(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = app.get(token, "/v1/presence").await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn online_count(presence: &Value) -> usize {
    presence["online"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn heartbeats_bring_a_player_online_move_it_between_labs_and_show_everywhere() {
    let clock = Manual::new();
    let app = spawn_with_clock(TestDb::create().await, &clock).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let mut live = Sub::open(&app, &bob.token, "topic=presence", None).await;
    assert_eq!(live.next().await.data["data"]["online"], json!([]));

    let out = app
        .ok(&ada.token, "heartbeat", json!({ "current_lab": "lab-1" }))
        .await;
    assert_eq!(event_types(&out), ["came_online"]);
    let same = app
        .ok(&ada.token, "heartbeat", json!({ "current_lab": "lab-1" }))
        .await;
    assert_eq!(event_types(&same), Vec::<&str>::new());

    let presence = app
        .read_at(&bob.token, "/v1/presence", position(&out))
        .await;
    assert_eq!(presence["online"][0]["username"], "ada");
    assert_eq!(presence["online"][0]["current_lab"], "lab-1");
    let came = live.next().await;
    assert_eq!(came.data["op"], "upsert");
    assert_eq!(came.data["key"], ada.id.to_string());
    assert_eq!(came.data["data"]["current_lab"], "lab-1");

    let moved = app
        .ok(&ada.token, "heartbeat", json!({ "current_lab": "lab-2" }))
        .await;
    assert_eq!(event_types(&moved), ["current_lab_changed"]);
    let profile = app
        .read_at(
            &bob.token,
            &format!("/v1/players/{}", ada.id),
            position(&moved),
        )
        .await;
    assert_eq!(profile["online"], true);
    assert_eq!(profile["current_lab"], "lab-2");
    assert_eq!(live.next().await.data["data"]["current_lab"], "lab-2");

    // Silence past the timeout: the reaper takes Ada offline, and everyone sees it.
    clock.advance(Duration::from_secs(121));
    let gone = live.next().await;
    assert_eq!(gone.data["op"], "delete");
    assert_eq!(gone.data["key"], ada.id.to_string());
    let profile = app
        .read_at(
            &bob.token,
            &format!("/v1/players/{}", ada.id),
            gone.position(),
        )
        .await;
    assert_eq!(profile["online"], false);
    assert_eq!(profile["current_lab"], Value::Null);
    assert_eq!(
        online_count(
            &app.read_at(&bob.token, "/v1/presence", gone.position())
                .await
        ),
        0
    );
}

/// Every player of `players` sends one heartbeat, 64 at a time.
async fn beat_all(app: &TestApp, players: &[Player]) {
    stream::iter(players)
        .for_each_concurrent(64, |p| async move {
            app.ok(&p.token, "heartbeat", json!({ "current_lab": null }))
                .await;
        })
        .await;
}

#[tokio::test]
async fn a_thousand_players_heartbeating_for_minutes_append_almost_nothing_and_the_silent_go_offline(
) {
    let clock = Manual::new();
    let app = spawn_with_clock(TestDb::create().await, &clock).await;
    let players: Vec<Player> = stream::iter(0..1000)
        .map(|i| {
            let app = &app;
            async move { app.player(&format!("p{i}")).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let watcher = &players[0];
    let before = event_count(&app.db).await;

    // Three simulated minutes, everyone heartbeating every 6 s.
    for _ in 0..30 {
        beat_all(&app, &players).await;
        clock.advance(Duration::from_secs(6));
    }
    let appended = event_count(&app.db).await - before;
    assert_eq!(
        appended, 1000,
        "30,000 heartbeats: one came_online each, nothing else"
    );
    presence_until(&app, &watcher.token, |p| online_count(p) == 1000).await;

    // Half fall silent; the other half go on for 2.5 more simulated minutes.
    let (silent, active) = players.split_at(500);
    for _ in 0..25 {
        beat_all(&app, active).await;
        clock.advance(Duration::from_secs(6));
    }
    let presence = presence_until(&app, &watcher.token, |p| online_count(p) == 500).await;
    let online: std::collections::HashSet<String> = presence["online"]
        .as_array()
        .expect("online")
        .iter()
        .map(|o| o["player_id"].as_str().expect("id").to_owned())
        .collect();
    assert!(active.iter().all(|p| online.contains(&p.id.to_string())));
    assert!(silent.iter().all(|p| !online.contains(&p.id.to_string())));
    assert_eq!(
        event_count(&app.db).await - before,
        1500,
        "500 went_offline on top of the 1000 came_online"
    );
}

#[tokio::test]
async fn players_whose_heartbeats_stopped_while_everything_was_down_go_offline_after_the_restart() {
    let clock = Manual::new();
    let app = spawn_with_clock(TestDb::create().await, &clock).await;
    let ada = app.player("ada").await;
    let out = app
        .ok(&ada.token, "heartbeat", json!({ "current_lab": null }))
        .await;
    app.read_at(&ada.token, "/v1/presence", position(&out))
        .await;
    let db = app.stop().await;

    clock.advance(Duration::from_secs(600));
    let app = spawn_with_clock(db, &clock).await;
    presence_until(&app, &ada.token, |p| online_count(p) == 0).await;
    let pool = app.db.pool(1);
    let offline: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'went_offline'")
            .fetch_one(&pool)
            .await
            .expect("count");
    pool.close().await;
    assert_eq!(offline, 1);
}
