//! The write side over HTTP: commands, their events, errors, idempotency and concurrency.

use futures::future::join_all;
use questlog_academy::stream::fold;
use questlog_academy::DomainEvent as _;
use questlog_academy::{Event, PlayerState, StreamId};
use questlog_store::{EventStore, PgEventStore};
use questlog_tests::{event_count, event_types, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// The player's state folded from its stream in the log.
async fn player_state(app: &TestApp, id: Uuid) -> questlog_academy::player::PlayerState {
    let store = PgEventStore::new(app.db.pool(1));
    let stream = StreamId::Player(questlog_academy::values::PlayerId(id));
    let events: Vec<Event> = store
        .read_streams(&[stream.to_string()])
        .await
        .expect("read")
        .into_iter()
        .map(|e| Event::from_parts(&e.event_type, e.schema_version, &e.data).expect("decode"))
        .collect();
    fold(PlayerState::evolve, &events)
}

#[tokio::test]
async fn a_player_registers_and_completes_labs_with_xp_from_the_catalog() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    app.ok(
        &admin,
        "define_module",
        json!({ "module": 1, "title": "Basics" }),
    )
    .await;
    app.ok(
        &admin,
        "define_lab",
        json!({ "lab_id": "ls", "module": 1, "title": "ls", "xp": 150 }),
    )
    .await;
    app.ok(
        &admin,
        "define_lab",
        json!({ "lab_id": "cd", "module": 1, "title": "cd", "xp": 100 }),
    )
    .await;

    let ada = app.identity().await;
    let registered = app
        .ok(&ada.token, "register_player", json!({ "username": "ada" }))
        .await;
    assert_eq!(
        event_types(&registered),
        ["username_claimed", "player_registered"]
    );

    let first = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "ls" }))
        .await;
    assert_eq!(
        event_types(&first),
        ["lab_completed", "streak_updated", "achievement_unlocked"],
        "{first}"
    );
    assert_eq!(first["events"][0]["data"]["xp"], 150);
    assert_eq!(first["events"][0]["stream"], format!("player-{}", ada.id));
    let second = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "cd" }))
        .await;
    assert_eq!(
        event_types(&second),
        [
            "lab_completed",
            "leveled_up",
            "module_completed",
            "achievement_unlocked"
        ],
        "{second}"
    );
    assert_eq!(second["events"][1]["data"]["level"], 2);

    // Positions are global and increasing; a command's position is its last event's.
    let p1 = first["position"].as_i64().expect("position");
    let p2 = second["position"].as_i64().expect("position");
    assert!(p2 > p1);
    assert_eq!(
        second["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| e["position"].clone()),
        Some(json!(p2))
    );

    let state = player_state(&app, ada.id).await;
    assert_eq!(state.xp, 250);
    assert_eq!(state.level, 2);
}

#[tokio::test]
async fn sixty_four_concurrent_completions_for_one_player_all_succeed_without_a_lost_update() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    app.ok(
        &admin,
        "define_module",
        json!({ "module": 1, "title": "Basics" }),
    )
    .await;
    let mut sum = 0u64;
    for i in 1..=64u32 {
        let xp = 10 + i * 7;
        sum += u64::from(xp);
        app.ok(
            &admin,
            "define_lab",
            json!({ "lab_id": format!("lab-{i}"), "module": 1, "title": "t", "xp": xp }),
        )
        .await;
    }
    let p = app.player("busy").await;
    let (app, p) = (&app, &p);
    let results = join_all((1..=64).map(|i| async move {
        app.command(
            &p.token,
            "complete_lab",
            &json!({ "lab_id": format!("lab-{i}") }),
        )
        .await
    }))
    .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let state = player_state(app, p.id).await;
    assert_eq!(state.xp, sum);
    assert_eq!(state.completed_labs.len(), 64);
    assert_eq!(state.completed_modules.len(), 1);
}

#[tokio::test]
async fn concurrent_registrations_of_one_username_on_two_replicas_let_exactly_one_win() {
    let a = TestApp::spawn().await;
    // A second replica on the same database: uniqueness must come from the log, not one process.
    let b = TestApp::spawn_on(a.db.share()).await;
    let mut identities = Vec::new();
    for _ in 0..16 {
        identities.push(a.identity().await);
    }
    let (a_ref, b_ref) = (&a, &b);
    let attempts = identities.iter().enumerate().map(|(i, p)| async move {
        let app = if i % 2 == 0 { a_ref } else { b_ref };
        let name = if i % 3 == 0 { "Racer" } else { "racer" };
        app.command(&p.token, "register_player", &json!({ "username": name }))
            .await
    });
    let results = join_all(attempts).await;
    let won = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(won, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT);
        assert_eq!(body["code"], "username_taken");
    }
    assert_eq!(event_count(&a.db).await, 2);
}

#[tokio::test]
async fn a_replica_with_a_stale_cache_decides_again_and_counts_everything_once() {
    let a = TestApp::spawn().await;
    a.catalog(3, 100).await;
    let p = a.player("hopper").await;
    let b = TestApp::spawn_on(a.db.share()).await;
    a.ok(&p.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    b.ok(&p.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    // `a` still holds the player as it left it; its append conflicts and it decides again.
    a.ok(&p.token, "complete_lab", json!({ "lab_id": "lab-3" }))
        .await;
    let (status, body) = b
        .command(&p.token, "complete_lab", &json!({ "lab_id": "lab-3" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "lab_already_completed");
    assert_eq!(player_state(&a, p.id).await.xp, 300);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_answer_and_appends_nothing() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let p = app.player("careful").await;
    let send = |key: &'static str, body: Value| {
        app.client
            .post(app.url("/v1/commands/complete_lab"))
            .bearer_auth(&p.token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = send("k-1", json!({ "lab_id": "lab-1" }))
        .await
        .expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let before = event_count(&app.db).await;

    let again = send("k-1", json!({ "lab_id": "lab-1" }))
        .await
        .expect("sent");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first);
    assert_eq!(event_count(&app.db).await, before);

    let other = send("k-1", json!({ "lab_id": "lab-2" }))
        .await
        .expect("sent");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = other.json().await.expect("json");
    assert_eq!(other["code"], "idempotency_key_reused");
    assert_eq!(event_count(&app.db).await, before);
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_append_once() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let p = app.player("twice").await;
    let before = event_count(&app.db).await;
    let sends = (0..8).map(|_| {
        app.client
            .post(app.url("/v1/commands/complete_lab"))
            .bearer_auth(&p.token)
            .header("Idempotency-Key", "same")
            .json(&json!({ "lab_id": "lab-1" }))
            .send()
    });
    let mut command_ids = std::collections::HashSet::new();
    for response in join_all(sends).await {
        let response = response.expect("sent");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "{body}");
        command_ids.insert(body["command_id"].as_str().expect("id").to_owned());
    }
    assert_eq!(command_ids.len(), 1);
    // lab_completed, module_completed, streak_updated, first_lab, first_module
    assert_eq!(event_count(&app.db).await, before + 5);
}

enum Who {
    Nobody,
    Garbage,
    Fresh,
    Player,
    Admin,
}

#[tokio::test]
async fn bad_input_gets_a_problem_with_its_code_and_appends_nothing() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    // Module 2 requires module 1, so its lab is locked for a new player.
    let admin = app.admin_token();
    app.ok(
        &admin,
        "define_module",
        json!({ "module": 2, "title": "More", "requires": [1] }),
    )
    .await;
    app.ok(
        &admin,
        "define_lab",
        json!({ "lab_id": "locked", "module": 2, "title": "t", "xp": 5 }),
    )
    .await;
    let p = app.player("taken").await;
    let fresh = app.identity().await;
    let long_name = "x".repeat(31);
    let big = format!("{{\"username\":\"{}\"}}", "a".repeat(1100 * 1024));
    use StatusCode as S;
    let cases: Vec<(Who, &str, String, StatusCode, &str)> = vec![
        (
            Who::Nobody,
            "register_player",
            r#"{"username":"a"}"#.into(),
            S::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Who::Garbage,
            "register_player",
            r#"{"username":"a"}"#.into(),
            S::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Who::Fresh,
            "no_such_command",
            "{}".into(),
            S::NOT_FOUND,
            "unknown_command",
        ),
        (
            Who::Fresh,
            "register_player",
            "{".into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "register_player",
            "[]".into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "register_player",
            "".into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "register_player",
            "{}".into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "register_player",
            r#"{"username":5}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "register_player",
            r#"{"username":"a","extra":1}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "register_player",
            format!(r#"{{"username":"{long_name}"}}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_username",
        ),
        (
            Who::Fresh,
            "register_player",
            r#"{"username":"a b"}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_username",
        ),
        (
            Who::Fresh,
            "register_player",
            r#"{"username":""}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_username",
        ),
        (
            Who::Fresh,
            "register_player",
            r#"{"username":"TAKEN"}"#.into(),
            S::CONFLICT,
            "username_taken",
        ),
        (
            Who::Fresh,
            "register_player",
            big,
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Who::Player,
            "register_player",
            r#"{"username":"again"}"#.into(),
            S::CONFLICT,
            "already_registered",
        ),
        (
            Who::Fresh,
            "complete_lab",
            r#"{"lab_id":"lab-1"}"#.into(),
            S::NOT_FOUND,
            "not_registered",
        ),
        (
            Who::Fresh,
            "update_streak",
            "{}".into(),
            S::NOT_FOUND,
            "not_registered",
        ),
        (
            Who::Fresh,
            "set_timezone",
            r#"{"timezone":"UTC"}"#.into(),
            S::NOT_FOUND,
            "not_registered",
        ),
        (
            Who::Player,
            "set_timezone",
            r#"{"timezone":"Mars/Olympus"}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_timezone",
        ),
        (
            Who::Player,
            "complete_lab",
            r#"{"lab_id":"nope"}"#.into(),
            S::NOT_FOUND,
            "unknown_lab",
        ),
        (
            Who::Player,
            "complete_lab",
            r#"{"lab_id":"../etc"}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_lab_id",
        ),
        (
            Who::Player,
            "complete_lab",
            r#"{"lab_id":"locked"}"#.into(),
            S::FORBIDDEN,
            "module_locked",
        ),
        (
            Who::Player,
            "complete_lab",
            r#"{"lab":"lab-1"}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Player,
            "update_streak",
            r#"{"days":3}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Player,
            "define_module",
            r#"{"module":3,"title":"x"}"#.into(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            Who::Player,
            "define_lab",
            r#"{"lab_id":"x","module":1,"title":"x","xp":5}"#.into(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            Who::Player,
            "grant_achievement",
            format!(r#"{{"player_id":"{}","achievement":"x"}}"#, p.id),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            Who::Player,
            "revoke_xp",
            format!(r#"{{"player_id":"{}","xp":5,"reason":"r"}}"#, p.id),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            Who::Admin,
            "define_lab",
            r#"{"lab_id":"x","module":1,"title":"x","xp":0}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_xp",
        ),
        (
            Who::Admin,
            "define_lab",
            r#"{"lab_id":"x","module":1,"title":"x","xp":100001}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_xp",
        ),
        (
            Who::Admin,
            "define_lab",
            r#"{"lab_id":"x","module":1,"title":"x","xp":"5"}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Admin,
            "define_lab",
            r#"{"lab_id":"x","module":9,"title":"x","xp":5}"#.into(),
            S::NOT_FOUND,
            "unknown_module",
        ),
        (
            Who::Admin,
            "define_lab",
            r#"{"lab_id":"x","module":1,"title":"  ","xp":5}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_title",
        ),
        (
            Who::Admin,
            "define_module",
            r#"{"module":0,"title":"x"}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_module",
        ),
        (
            Who::Admin,
            "define_module",
            r#"{"module":3,"title":"x","requires":[7]}"#.into(),
            S::NOT_FOUND,
            "unknown_module",
        ),
        (
            Who::Admin,
            "define_module",
            r#"{"module":1,"title":"x","requires":[2]}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "module_cycle",
        ),
        (
            Who::Admin,
            "grant_achievement",
            format!(r#"{{"player_id":"{}","achievement":"x"}}"#, Uuid::new_v4()),
            S::NOT_FOUND,
            "player_not_found",
        ),
        (
            Who::Admin,
            "grant_achievement",
            format!(r#"{{"player_id":"{}","achievement":"Bad Name"}}"#, p.id),
            S::UNPROCESSABLE_ENTITY,
            "invalid_achievement",
        ),
        (
            Who::Admin,
            "grant_achievement",
            r#"{"player_id":"not-a-uuid","achievement":"x"}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Admin,
            "revoke_xp",
            format!(r#"{{"player_id":"{}","xp":-1,"reason":"r"}}"#, p.id),
            S::UNPROCESSABLE_ENTITY,
            "invalid_xp",
        ),
        (
            Who::Admin,
            "revoke_xp",
            format!(r#"{{"player_id":"{}","xp":1,"reason":""}}"#, p.id),
            S::UNPROCESSABLE_ENTITY,
            "invalid_reason",
        ),
        // Lab sessions.
        (
            Who::Player,
            "start_lab",
            r#"{"lab_id":"nope"}"#.into(),
            S::NOT_FOUND,
            "unknown_lab",
        ),
        (
            Who::Player,
            "start_lab",
            r#"{"lab_id":"locked"}"#.into(),
            S::FORBIDDEN,
            "module_locked",
        ),
        (
            Who::Fresh,
            "start_lab",
            r#"{"lab_id":"lab-1"}"#.into(),
            S::NOT_FOUND,
            "not_registered",
        ),
        (
            Who::Player,
            "save_lab_state",
            r#"{"lab_id":"lab-1","vfs_snapshot":{},"current_step":0}"#.into(),
            S::NOT_FOUND,
            "lab_not_started",
        ),
        (
            Who::Player,
            "save_lab_state",
            r#"{"lab_id":"lab-1","vfs_snapshot":[],"current_step":0}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_vfs",
        ),
        (
            Who::Player,
            "save_lab_state",
            r#"{"lab_id":"lab-1","vfs_snapshot":"ls -la","current_step":0}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_vfs",
        ),
        (
            Who::Player,
            "save_lab_state",
            format!(
                r#"{{"lab_id":"lab-1","vfs_snapshot":{{"f":"{}"}},"current_step":0}}"#,
                "x".repeat(33 * 1024)
            ),
            S::UNPROCESSABLE_ENTITY,
            "vfs_too_large",
        ),
        (
            Who::Player,
            "save_lab_state",
            r#"{"lab_id":"lab-1","vfs_snapshot":{},"current_step":-1}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_step",
        ),
        (
            Who::Player,
            "save_lab_state",
            r#"{"lab_id":"lab-1","vfs_snapshot":{}}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Player,
            "delete_lab_state",
            r#"{"lab_id":"lab-1"}"#.into(),
            S::NOT_FOUND,
            "lab_not_started",
        ),
        (
            Who::Player,
            "delete_lab_state",
            format!(r#"{{"lab_id":"lab-1","player_id":"{}"}}"#, fresh.id),
            S::FORBIDDEN,
            "forbidden",
        ),
        // Presence.
        (
            Who::Player,
            "heartbeat",
            "{}".into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Player,
            "heartbeat",
            r#"{"current_lab":3}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Player,
            "heartbeat",
            r#"{"current_lab":"a b"}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_lab_id",
        ),
        (
            Who::Fresh,
            "heartbeat",
            r#"{"current_lab":null}"#.into(),
            S::NOT_FOUND,
            "not_registered",
        ),
        (
            Who::Player,
            "go_offline",
            "{}".into(),
            S::NOT_FOUND,
            "unknown_command",
        ),
        // Chat.
        (
            Who::Player,
            "send_message",
            r#"{"channel":"global","content":""}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_content",
        ),
        (
            Who::Player,
            "send_message",
            format!(r#"{{"channel":"global","content":"{}"}}"#, "y".repeat(2001)),
            S::UNPROCESSABLE_ENTITY,
            "invalid_content",
        ),
        (
            Who::Player,
            "send_message",
            r#"{"channel":"room:1","content":"hi"}"#.into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_channel",
        ),
        (
            Who::Player,
            "send_message",
            format!(r#"{{"channel":"dm:{}","content":"me"}}"#, p.id),
            S::UNPROCESSABLE_ENTITY,
            "invalid_channel",
        ),
        (
            Who::Player,
            "send_message",
            format!(r#"{{"channel":"dm:{}","content":"hi"}}"#, fresh.id),
            S::NOT_FOUND,
            "player_not_found",
        ),
        (
            Who::Player,
            "send_message",
            r#"{"channel":"lab:nope","content":"hi"}"#.into(),
            S::NOT_FOUND,
            "unknown_lab",
        ),
        (
            Who::Player,
            "send_message",
            r#"{"channel":"global","content":"hi","to":"all"}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Fresh,
            "send_message",
            r#"{"channel":"global","content":"hi"}"#.into(),
            S::NOT_FOUND,
            "not_registered",
        ),
        (
            Who::Player,
            "edit_message",
            format!(r#"{{"message_id":"{}","content":"x"}}"#, fresh.id),
            S::NOT_FOUND,
            "message_not_found",
        ),
        (
            Who::Player,
            "edit_message",
            r#"{"message_id":"nope","content":"x"}"#.into(),
            S::BAD_REQUEST,
            "bad_request",
        ),
        (
            Who::Player,
            "delete_message",
            format!(r#"{{"message_id":"{}"}}"#, fresh.id),
            S::NOT_FOUND,
            "message_not_found",
        ),
    ];
    let before = event_count(&app.db).await;
    for (who, name, body, status, code) in cases {
        let mut request = app
            .client
            .post(app.url(&format!("/v1/commands/{name}")))
            .header("content-type", "application/json")
            .body(body.clone());
        request = match who {
            Who::Nobody => request,
            Who::Garbage => request.bearer_auth("not.a.token"),
            Who::Fresh => request.bearer_auth(&fresh.token),
            Who::Player => request.bearer_auth(&p.token),
            Who::Admin => request.bearer_auth(&admin),
        };
        let response = request
            .send()
            .await
            .expect("a response, never a dropped connection");
        let got = response.status();
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let problem: Value = response.json().await.expect("problem JSON");
        let short: String = body.chars().take(60).collect();
        assert_eq!(got, status, "{name} {short}: {problem}");
        assert_eq!(problem["code"], code, "{name} {short}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_eq!(
        event_count(&app.db).await,
        before,
        "a refused command appended something"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problems() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/nothing"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = app
        .client
        .get(app.url("/v1/commands/complete_lab"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn revoking_xp_is_a_compensating_event_and_the_level_follows() {
    let app = TestApp::spawn().await;
    let admin = app.catalog(2, 300).await;
    let p = app.player("cheater").await;
    app.ok(&p.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.ok(&p.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    assert_eq!(player_state(&app, p.id).await.level, 6);
    let out = app
        .ok(
            &admin,
            "revoke_xp",
            json!({ "player_id": p.id, "xp": 10_000, "reason": "scripted completions" }),
        )
        .await;
    assert_eq!(event_types(&out), ["xp_revoked"]);
    assert_eq!(
        out["events"][0]["data"]["xp"], 600,
        "revokes at most what the player has"
    );
    let state = player_state(&app, p.id).await;
    assert_eq!((state.xp, state.level), (0, 1));
    assert!(
        state.achievements.iter().any(|a| a.as_str() == "level_5"),
        "achievements stay"
    );
    let granted = app
        .ok(
            &admin,
            "grant_achievement",
            json!({ "player_id": p.id, "achievement": "beta_tester" }),
        )
        .await;
    assert_eq!(event_types(&granted), ["achievement_unlocked"]);
}
