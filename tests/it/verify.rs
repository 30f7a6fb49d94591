//! `questlog verify`: the live read models against a replay of the log.

use futures::future::join_all;
use questlog_tests::{position, TestApp};
use serde_json::{json, Value};

/// Some of everything: progress, presence, a lab session, chat.
async fn load(app: &TestApp, round: usize) -> i64 {
    let names: Vec<String> = (0..8).map(|i| format!("p{round}x{i}")).collect();
    let players = join_all(names.iter().map(|name| app.player(name))).await;
    let mut last = 0;
    for (i, p) in players.iter().enumerate() {
        for lab in 1..=(i % 3 + 1) {
            app.ok(
                &p.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{lab}") }),
            )
            .await;
        }
        app.ok(&p.token, "heartbeat", json!({ "current_lab": "lab-1" }))
            .await;
        app.ok(&p.token, "start_lab", json!({ "lab_id": "lab-2" }))
            .await;
        app.ok(
            &p.token,
            "save_lab_state",
            json!({ "lab_id": "lab-2", "vfs_snapshot": {"f": i}, "current_step": i }),
        )
        .await;
        let out = app
            .ok(
                &p.token,
                "send_message",
                json!({ "channel": "global", "content": format!("hi from {i}") }),
            )
            .await;
        last = position(&out);
    }
    last
}

async fn caught_up(app: &TestApp, head: i64) {
    app.caught_up(head).await;
}

async fn verify(app: &TestApp) -> (bool, Value) {
    app.verify().await
}

fn table<'a>(checks: &'a Value, name: &str) -> &'a Value {
    checks
        .as_array()
        .and_then(|c| c.iter().find(|t| t["table"] == name))
        .unwrap_or_else(|| panic!("{name} in {checks}"))
}

#[tokio::test]
async fn a_live_system_under_load_verifies_clean_and_a_planted_drift_is_found() {
    let app = TestApp::spawn().await;
    app.catalog(3, 100).await;
    let head = load(&app, 0).await;
    caught_up(&app, head).await;

    // Verify while more commands keep coming: each projection is compared at its own checkpoint.
    let (verified, more) = tokio::join!(verify(&app), load(&app, 1));
    let (drifted, checks) = verified;
    assert!(!drifted, "{checks:#}");
    for name in [
        "rm_players",
        "rm_modules",
        "rm_labs",
        "rm_presence",
        "rm_lab_sessions",
        "rm_messages",
    ] {
        let t = table(&checks, name);
        assert!(t["live_rows"].as_i64() > Some(0), "{name} is empty: {t}");
        assert_eq!(t["live_rows"], t["replayed_rows"]);
    }
    caught_up(&app, more).await;

    // A hand-made change to one row of each of two read models.
    let pool = app.db.pool(1);
    let player: uuid::Uuid =
        sqlx::query_scalar("SELECT player_id FROM rm_players ORDER BY username LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("a player");
    sqlx::query("UPDATE rm_players SET xp = xp + 1 WHERE player_id = $1")
        .bind(player)
        .execute(&pool)
        .await
        .expect("planted");
    sqlx::query("DELETE FROM rm_messages WHERE position = (SELECT min(position) FROM rm_messages)")
        .execute(&pool)
        .await
        .expect("planted");
    pool.close().await;

    let (drifted, checks) = verify(&app).await;
    assert!(drifted);
    let players = table(&checks, "rm_players");
    assert_eq!(
        (
            players["live_only"].as_i64(),
            players["replay_only"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let sides: Vec<&str> = players["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| {
            assert_eq!(e["row"]["player_id"], json!(player));
            e["side"].as_str().expect("side")
        })
        .collect();
    assert_eq!(sides, ["live_only", "replay_only"]);
    let messages = table(&checks, "rm_messages");
    assert_eq!(
        (
            messages["live_only"].as_i64(),
            messages["replay_only"].as_i64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(table(&checks, "rm_lab_sessions")["live_only"], 0);
}

/// Reads every read model in a loop until `stop`; returns how many reads were made, failing on
/// any error or a model smaller than it was at the start.
async fn read_while(app: &TestApp, token: &str, stop: &std::sync::atomic::AtomicBool) -> usize {
    let size = |body: &Value, key: &str| body[key].as_array().map_or(0, Vec::len);
    let mut reads = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for (path, key) in [
            ("/v1/leaderboard?limit=100", "entries"),
            ("/v1/presence", "online"),
            ("/v1/channels/global/messages?limit=200", "messages"),
            ("/v1/labs", "modules"),
        ] {
            let (status, _, body) = app.get(token, path).await;
            assert_eq!(status, reqwest::StatusCode::OK, "{path}: {body}");
            let least = if key == "modules" { 1 } else { 8 };
            assert!(
                size(&body, key) >= least,
                "a partial {path} during the replay: {body}"
            );
            reads += 1;
        }
    }
    reads
}

#[tokio::test]
async fn replay_all_during_a_load_run_switches_rebuilt_read_models_in_and_no_read_fails() {
    let app = TestApp::spawn().await;
    app.catalog(3, 100).await;
    let head = load(&app, 0).await;
    caught_up(&app, head).await;
    let pool = app.db.pool(1);
    sqlx::query("UPDATE rm_players SET xp = xp + 1000 WHERE username = 'p0x3'")
        .execute(&pool)
        .await
        .expect("planted");
    assert!(verify(&app).await.0, "the planted drift is seen");

    let reader = app.player("reader").await;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let replayed = async {
        let mut out = Vec::new();
        let done = questlog::admin::rebuild::replay(&app.db.url, "all", None, true, true, &mut out)
            .await
            .expect("replay runs");
        assert!(done);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        serde_json::from_slice::<Value>(&out).expect("JSON")
    };
    let (reads, more, rebuilt) = tokio::join!(
        read_while(&app, &reader.token, &stop),
        load(&app, 1),
        replayed
    );
    assert!(reads > 0);
    // Every projection the binary's modules register was rebuilt.
    let registered = questlog_projector::Projections::of(&questlog::modules::app()).len();
    assert_eq!(
        rebuilt.as_array().map(Vec::len),
        Some(registered),
        "{rebuilt}"
    );

    caught_up(&app, more).await;
    let (drifted, checks) = verify(&app).await;
    assert!(
        !drifted,
        "the rebuild repaired the planted drift: {checks:#}"
    );
    // The projectors went on after the switch, on the new tables.
    let players: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_players")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(players, 17);
    // The migrations' index names survive the switch.
    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'rm_players_leaderboard'",
    )
    .fetch_optional(&pool)
    .await
    .expect("index");
    assert!(index.is_some());
    pool.close().await;
}

#[tokio::test]
async fn replay_to_a_past_position_builds_the_read_models_as_they_stood_then() {
    let app = TestApp::spawn().await;
    app.catalog(3, 100).await;
    let first = load(&app, 0).await;
    let head = load(&app, 1).await;
    caught_up(&app, head).await;

    let mut out = Vec::new();
    let point = questlog::admin::rebuild::Point::Position(first);
    questlog::admin::rebuild::replay(&app.db.url, "players", Some(point), false, true, &mut out)
        .await
        .expect("replay runs");
    let pool = app.db.pool(1);
    let then: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM questlog_asof_{first}.rm_players"
    ))
    .fetch_one(&pool)
    .await
    .expect("count");
    let now: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_players")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!((then, now), (8, 16));
    pool.close().await;
}
