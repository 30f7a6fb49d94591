//! Lab sessions: start, save (as often as a client likes), resume elsewhere, complete, delete.

use questlog_academy::Role;
use questlog_tests::{event_types, position, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::subscribe::{check_sequence, refused, Sub};

fn save(step: i64, file: &str) -> Value {
    json!({
        "lab_id": "lab-1",
        "vfs_snapshot": {"/home/player/notes.txt": file, "/home/player/dir": {"a": 1}},
        "current_step": step,
    })
}

#[tokio::test]
async fn a_lab_is_started_saved_resumed_on_another_device_completed_and_deleted() {
    let app = TestApp::spawn().await;
    app.catalog(2, 100).await;
    let ada = app.player("ada").await;

    let out = app
        .ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    assert_eq!(event_types(&out), ["lab_started"]);
    // Starting again resumes: nothing recorded.
    let again = app
        .ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    assert_eq!(event_types(&again), Vec::<&str>::new());

    let out = app.ok(&ada.token, "save_lab_state", save(2, "first")).await;
    assert_eq!(event_types(&out), ["lab_progressed"]);
    assert_eq!(
        out["events"][0]["data"],
        json!({"lab_id": "lab-1", "step": 2})
    );
    // Going back a step saves the working copy only.
    let out = app
        .ok(&ada.token, "save_lab_state", save(1, "second"))
        .await;
    assert_eq!(event_types(&out), Vec::<&str>::new());

    // Another device: a fresh token for the same identity reads the latest save.
    let other_device = app.keys.issue(ada.id, Role::Player);
    let state = app
        .read_at(&other_device, "/v1/players/me/labs/lab-1", position(&out))
        .await;
    assert_eq!(state["player_id"], json!(ada.id));
    assert_eq!(state["lab_id"], "lab-1");
    assert_eq!(state["status"], "in_progress");
    assert_eq!(state["current_step"], 1);
    assert_eq!(state["furthest_step"], 2);
    assert_eq!(state["vfs_snapshot"]["/home/player/notes.txt"], "second");
    assert!(state["started_at"].is_string() && state["saved_at"].is_string());

    let done = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let state = app
        .read_at(
            &ada.token,
            &format!("/v1/players/{}/labs/lab-1", ada.id),
            position(&done),
        )
        .await;
    assert_eq!(state["status"], "completed");
    assert!(state["completed_at"].is_string());
    assert_eq!(state["vfs_snapshot"]["/home/player/notes.txt"], "second");

    let gone = app
        .ok(&ada.token, "delete_lab_state", json!({ "lab_id": "lab-1" }))
        .await;
    assert_eq!(event_types(&gone), ["lab_state_deleted"]);
    let (status, _, problem) = app
        .get(
            &ada.token,
            &format!("/v1/players/me/labs/lab-1?min_position={}", position(&gone)),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["code"], "lab_state_not_found");
    let (status, problem) = app
        .command(&ada.token, "save_lab_state", &save(3, "x"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "lab_not_started");

    // Started afresh: an empty working copy, step 0.
    let out = app
        .ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let state = app
        .read_at(&ada.token, "/v1/players/me/labs/lab-1", position(&out))
        .await;
    assert_eq!(state["vfs_snapshot"], json!({}));
    assert_eq!(state["furthest_step"], 0);
    assert_eq!(
        state["status"], "completed",
        "completion outlives a deletion"
    );
}

#[tokio::test]
async fn saving_often_grows_the_log_by_new_steps_only_and_the_latest_save_is_kept() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let ada = app.player("ada").await;
    app.ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let stream = format!("lab-{}-lab-1", ada.id);
    let count = || async {
        let pool = app.db.pool(1);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id = $1")
            .bind(&stream)
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        n
    };
    assert_eq!(count().await, 1);

    // 300 saves, a big file system each time, moving through steps 0..=5 and back.
    let vfs: String = "x".repeat(20_000);
    let mut last = Value::Null;
    for i in 0..300_i64 {
        let step = [0, 1, 2, 3, 2, 4, 5, 5, 5, 3][usize::try_from(i % 10).expect("small")];
        let body = json!({
            "lab_id": "lab-1",
            "vfs_snapshot": {"big.txt": vfs, "save": i},
            "current_step": step,
        });
        last = app.ok(&ada.token, "save_lab_state", body).await;
    }
    // Started, then steps 1 to 5 once each.
    assert_eq!(count().await, 6);

    let state = app
        .read_at(&ada.token, "/v1/players/me/labs/lab-1", position(&last))
        .await;
    assert_eq!(state["vfs_snapshot"]["save"], 299);
    assert_eq!(state["current_step"], 3);
    assert_eq!(state["furthest_step"], 5);

    // The session's state folded from its stream, as the log alone says.
    let admin = app.admin_token();
    let (status, _, folded) = app
        .get(&admin, &format!("/v1/admin/streams/{stream}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{folded}");
    assert_eq!(
        folded["state"],
        json!({"kind": "lab", "active": true, "furthest_step": 5})
    );
}

#[tokio::test]
async fn a_lab_state_is_for_its_player_and_admins_only() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let admin = app.admin_token();
    app.ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let out = app.ok(&ada.token, "save_lab_state", save(1, "mine")).await;

    let path = format!("/v1/players/{}/labs/lab-1", ada.id);
    let (status, _, problem) = app.get(&bob.token, &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "forbidden");
    let state = app.read_at(&admin, &path, position(&out)).await;
    assert_eq!(state["vfs_snapshot"]["/home/player/notes.txt"], "mine");

    let (status, problem) = app
        .command(
            &bob.token,
            "delete_lab_state",
            &json!({ "lab_id": "lab-1", "player_id": ada.id }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "forbidden");

    let out = app
        .ok(
            &admin,
            "delete_lab_state",
            json!({ "lab_id": "lab-1", "player_id": ada.id }),
        )
        .await;
    let (status, _, _) = app
        .get(
            &ada.token,
            &format!("{path}?min_position={}", position(&out)),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_lab_session_is_live_for_its_player_and_admins_and_nobody_else() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let topic = format!("topic=lab:{}:lab-1", ada.id);
    refused(
        &app,
        Some(&bob.token),
        &topic,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let mut admin = Sub::open(&app, &app.admin_token(), &topic, None).await;
    let mut mine = Sub::open(&app, &ada.token, "topic=lab:me:lab-1", None).await;
    let first = mine.next().await;
    assert_eq!(first.kind, "snapshot");
    assert_eq!(first.data["data"], Value::Null, "not started yet");
    assert_eq!(admin.next().await.data["data"], Value::Null);

    app.ok(&ada.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.ok(&ada.token, "save_lab_state", save(3, "live")).await;
    let mut seen = vec![first];
    seen.extend(mine.until(|e| e.data["data"]["furthest_step"] == 3).await);
    let last = check_sequence(&seen);
    assert_eq!(last["status"], "in_progress");
    assert_eq!(last["vfs_snapshot"]["/home/player/notes.txt"], "live");
    admin.until(|e| e.data["data"]["furthest_step"] == 3).await;

    app.ok(&ada.token, "delete_lab_state", json!({ "lab_id": "lab-1" }))
        .await;
    let gone = mine.until(|e| e.data["op"] == "delete").await;
    assert_eq!(
        gone.last().map(|e| e.data["data"].clone()),
        Some(Value::Null)
    );
}
