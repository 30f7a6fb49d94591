//! Admin reads: projection lag and stream history.

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use questlog_tests::query::TestApi;

async fn append(api: &TestApi, stream: &str, version: i64, event_type: &str, data: Value) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
         VALUES ($1, $2, $3, $4, 1, $5, '{\"command_id\": \"c\"}') RETURNING position",
    )
    .bind(Uuid::new_v4())
    .bind(stream)
    .bind(version)
    .bind(event_type)
    .bind(data)
    .fetch_one(&api.pool)
    .await
    .expect("event appended")
}

#[tokio::test]
async fn admin_reads_are_forbidden_to_players() {
    let api = TestApi::spawn().await;
    let token = api.any_token();
    for path in ["/v1/admin/projections", "/v1/admin/streams/catalog"] {
        api.get(path, Some(&token))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
}

#[tokio::test]
async fn projections_show_their_lag_behind_the_log() {
    let api = TestApi::spawn().await;
    for v in 1..=3 {
        append(
            &api,
            "catalog",
            v,
            "module_defined",
            json!({"module": v, "title": "M", "requires": []}),
        )
        .await;
    }
    api.set_checkpoint("players", 3).await;
    api.set_checkpoint("catalog", 1).await;

    let answer = api
        .get("/v1/admin/projections", Some(&api.admin_token()))
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 0, "presence has applied nothing yet");
    assert_eq!(answer.body["head"], 3);
    let projections = answer.body["projections"].as_array().expect("projections");
    let by_name = |name: &str| {
        projections
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    assert_eq!(projections.len(), 8);
    assert_eq!(by_name("players")["position"], 3);
    assert_eq!(by_name("players")["lag"], 0);
    assert!(by_name("players")["updated_at"].is_string());
    assert_eq!(by_name("catalog")["lag"], 2);
    assert_eq!(by_name("presence")["position"], 0);
    assert_eq!(by_name("presence")["lag"], 3);
    assert_eq!(by_name("presence")["updated_at"], Value::Null);
    assert_eq!(by_name("leaderboards")["lag"], 3);
}

#[tokio::test]
async fn a_stream_is_shown_with_its_state_at_a_version() {
    let api = TestApi::spawn().await;
    let ada = Uuid::new_v4();
    let stream = format!("player-{ada}");
    append(
        &api,
        "catalog",
        1,
        "module_defined",
        json!({"module": 1, "title": "M", "requires": []}),
    )
    .await;
    let registered = append(
        &api,
        &stream,
        1,
        "player_registered",
        json!({"player_id": ada, "username": "Ada"}),
    )
    .await;
    append(
        &api,
        &stream,
        2,
        "lab_completed",
        json!({"lab_id": "intro", "module": 1, "xp": 250}),
    )
    .await;
    let token = api.admin_token();

    let latest = api
        .get(&format!("/v1/admin/streams/{stream}"), Some(&token))
        .await;
    assert_eq!(latest.status, StatusCode::OK, "{}", latest.body);
    assert_eq!(latest.position(), 3, "the log's head");
    assert_eq!(latest.body["stream"], stream);
    assert_eq!(latest.body["version"], 2);
    let events = latest.body["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["position"], registered);
    assert_eq!(events[0]["version"], 1);
    assert_eq!(events[0]["type"], "player_registered");
    assert_eq!(
        events[0]["data"],
        json!({"player_id": ada, "username": "Ada"})
    );
    assert_eq!(events[0]["metadata"], json!({"command_id": "c"}));
    assert!(events[0]["recorded_at"].is_string());
    assert_eq!(latest.body["state"]["kind"], "player");
    assert_eq!(latest.body["state"]["username"], "Ada");
    assert_eq!(latest.body["state"]["xp"], 250);
    assert_eq!(latest.body["state"]["level"], 2);

    let first = api
        .get(
            &format!("/v1/admin/streams/{stream}?to_version=1"),
            Some(&token),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["version"], 1);
    assert_eq!(first.body["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(first.body["state"]["xp"], 0);
    assert_eq!(first.body["state"]["level"], 1);

    let catalog = api.get("/v1/admin/streams/catalog", Some(&token)).await;
    assert_eq!(
        catalog.body["state"],
        json!({"kind": "catalog", "modules": [{"module": 1, "title": "M", "requires": []}], "labs": []})
    );
}

#[tokio::test]
async fn a_stream_id_must_name_a_stream_with_events() {
    let api = TestApi::spawn().await;
    let token = api.admin_token();
    api.get("/v1/admin/streams/nonsense", Some(&token))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_stream");
    api.get("/v1/admin/streams/player-42", Some(&token))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_stream");
    api.get(
        &format!("/v1/admin/streams/player-{}", Uuid::new_v4()),
        Some(&token),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}
