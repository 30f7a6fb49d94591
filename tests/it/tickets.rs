//! Subscribe tickets: a browser's EventSource authenticates with a single-use, short-lived ticket
//! instead of a long-lived token in the URL.

use questlog_tests::{position, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::subscribe::{refused, Sub};

async fn ticket(app: &TestApp, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url("/v1/subscribe/ticket")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_ticket_opens_its_topics_once_without_a_token_in_the_url() {
    let app = TestApp::spawn().await;
    app.catalog(2, 50).await;
    let ada = app.player("ada").await;
    let (status, body) = ticket(
        &app,
        Some(&ada.token),
        &json!({ "topics": ["player:me", "leaderboard"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(
        body["topics"],
        json!([format!("player:{}", ada.id), "leaderboard"])
    );
    let ticket = body["ticket"].as_str().expect("ticket").to_owned();
    assert!(!ticket.contains(&ada.token), "the ticket is not the token");

    let mut sub = Sub::open_ticket(&app, &ticket).await;
    let snapshots = [sub.next().await, sub.next().await];
    let mut topics: Vec<&str> = snapshots.iter().map(|e| e.topic()).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["leaderboard", &format!("player:{}", ada.id)]);
    assert!(snapshots.iter().all(|e| e.kind == "snapshot"));
    // The ticket's caller is the player: `player:me` follows its XP.
    let out = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let change = sub
        .until(|e| {
            e.kind == "change"
                && e.topic() == format!("player:{}", ada.id)
                && e.position() >= position(&out)
        })
        .await;
    assert_eq!(change.last().expect("a change").data["data"]["xp"], 50);

    // Single use: the same ticket again is refused, as is one never issued.
    refused(
        &app,
        None,
        &format!("ticket={ticket}"),
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
    )
    .await;
    refused(
        &app,
        None,
        &format!("ticket={}", "0".repeat(64)),
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
    )
    .await;
}

#[tokio::test]
async fn a_ticket_expires_and_names_only_topics_its_caller_may_follow() {
    let app = TestApp::spawn().await;
    app.catalog(1, 50).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;

    // Refused at issue: no token, an unknown topic, another player's lab session, a bad body.
    let (status, body) = ticket(&app, None, &json!({ "topics": ["leaderboard"] })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, body) = ticket(&app, Some(&ada.token), &json!({ "topics": ["weather"] })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_topic"))
    );
    let (status, body) = ticket(
        &app,
        Some(&ada.token),
        &json!({ "topics": [format!("lab:{}:lab-1", bob.id)] }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = ticket(&app, Some(&ada.token), &json!({ "topics": [], "extra": 1 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = ticket(
        &app,
        Some(&ada.token),
        &json!({ "topics": ["leaderboard"], "leaderboard_limit": 0 }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_limit"))
    );

    // A ticket names its topics: none may stand beside it in the URL.
    let (_, body) = ticket(&app, Some(&ada.token), &json!({ "topics": ["presence"] })).await;
    let fresh = body["ticket"].as_str().expect("ticket").to_owned();
    refused(
        &app,
        None,
        &format!("ticket={fresh}&topic=leaderboard"),
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;

    // A ticket not used within its lifetime is refused (the clock moved by hand, in this test's
    // own database: 61 s later).
    let (_, body) = ticket(&app, Some(&ada.token), &json!({ "topics": ["presence"] })).await;
    let stale = body["ticket"].as_str().expect("ticket").to_owned();
    let pool = app.db.pool(1);
    sqlx::query("UPDATE subscribe_tickets SET expires_at = expires_at - interval '61 seconds'")
        .execute(&pool)
        .await
        .expect("age the tickets");
    refused(
        &app,
        None,
        &format!("ticket={stale}"),
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
    )
    .await;
}
