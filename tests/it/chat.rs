//! Chat: channels, history with a cursor, edits and soft deletes, direct-message privacy, live
//! channel topics and the flood limit.

use questlog_tests::{event_count, position, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::subscribe::{check_sequence, refused, Sub};

fn message_id(out: &Value) -> String {
    out["events"][0]["data"]["message_id"]
        .as_str()
        .expect("message id")
        .to_owned()
}

fn contents(history: &Value) -> Vec<Value> {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].clone())
        .collect()
}

#[tokio::test]
async fn players_chat_edit_delete_and_scroll_back_through_history() {
    let app = TestApp::spawn().await;
    app.catalog(1, 10).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;

    let mut last = Value::Null;
    let mut ids = Vec::new();
    for i in 1..=5 {
        let who = if i % 2 == 0 { &bob } else { &ada };
        last = app
            .ok(
                &who.token,
                "send_message",
                json!({ "channel": "global", "content": format!("hello {i}") }),
            )
            .await;
        assert_eq!(last["events"][0]["type"], "message_sent");
        ids.push(message_id(&last));
    }
    let in_lab = app
        .ok(
            &ada.token,
            "send_message",
            json!({ "channel": "lab:lab-1", "content": "how do I list hidden files?" }),
        )
        .await;

    // Newest first, two at a time.
    let page = app
        .read_at(
            &bob.token,
            "/v1/channels/global/messages?limit=2",
            position(&last),
        )
        .await;
    assert_eq!(contents(&page), [json!("hello 5"), json!("hello 4")]);
    assert_eq!(page["channel"], "global");
    assert_eq!(page["messages"][0]["username"], "ada");
    assert_eq!(page["messages"][1]["sender"], json!(bob.id));
    let next = page["next"].as_str().expect("a cursor").to_owned();
    let page = app
        .read_at(
            &bob.token,
            &format!("/v1/channels/global/messages?limit=2&before={next}"),
            position(&last),
        )
        .await;
    assert_eq!(contents(&page), [json!("hello 3"), json!("hello 2")]);
    let next = page["next"].as_str().expect("a cursor").to_owned();
    let page = app
        .read_at(
            &bob.token,
            &format!("/v1/channels/global/messages?limit=2&before={next}"),
            position(&last),
        )
        .await;
    assert_eq!(contents(&page), [json!("hello 1")]);
    assert_eq!(page["next"], Value::Null);
    let lab = app
        .read_at(
            &bob.token,
            "/v1/channels/lab:lab-1/messages",
            position(&in_lab),
        )
        .await;
    assert_eq!(contents(&lab), [json!("how do I list hidden files?")]);

    // Edited by its sender; deleted softly, by its sender or an admin.
    let edited = app
        .ok(
            &ada.token,
            "edit_message",
            json!({ "message_id": ids[0], "content": "hello, world" }),
        )
        .await;
    app.ok(
        &ada.token,
        "delete_message",
        json!({ "message_id": ids[2] }),
    )
    .await;
    let deleted = app
        .ok(
            &app.admin_token(),
            "delete_message",
            json!({ "message_id": ids[1] }),
        )
        .await;
    assert!(position(&deleted) > position(&edited));
    let page = app
        .read_at(
            &bob.token,
            "/v1/channels/global/messages",
            position(&deleted),
        )
        .await;
    assert_eq!(
        contents(&page),
        [
            json!("hello 5"),
            json!("hello 4"),
            Value::Null,
            Value::Null,
            json!("hello, world")
        ]
    );
    let first = &page["messages"][4];
    assert!(first["edited_at"].is_string());
    assert_eq!(page["messages"][2]["deleted"], true);
    assert_eq!(page["messages"][3]["deleted"], true);

    let (status, problem) = app
        .command(
            &ada.token,
            "edit_message",
            &json!({ "message_id": ids[2], "content": "undo" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "message_deleted");
    let (status, problem) = app
        .command(
            &bob.token,
            "edit_message",
            &json!({ "message_id": ids[0], "content": "not mine" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
}

#[tokio::test]
async fn a_direct_conversation_is_seen_by_its_two_players_and_nobody_else() {
    let app = TestApp::spawn().await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let eve = app.player("eve").await;
    let admin = app.admin_token();

    let sent = app
        .ok(
            &ada.token,
            "send_message",
            json!({ "channel": format!("dm:{}", bob.id), "content": "just between us" }),
        )
        .await;
    let id = message_id(&sent);
    let reply = app
        .ok(
            &bob.token,
            "send_message",
            json!({ "channel": format!("dm:{}", ada.id), "content": "sure" }),
        )
        .await;
    // Both sides name the same conversation.
    let canonical = sent["events"][0]["data"]["channel"]
        .as_str()
        .expect("channel")
        .to_owned();
    assert_eq!(reply["events"][0]["data"]["channel"], canonical);
    for (me, other) in [(&ada, &bob), (&bob, &ada)] {
        let page = app
            .read_at(
                &me.token,
                &format!("/v1/channels/dm:{}/messages", other.id),
                position(&reply),
            )
            .await;
        assert_eq!(contents(&page), [json!("sure"), json!("just between us")]);
    }

    // Eve: neither read, subscribe to, edit nor delete it; admins may delete but not read.
    for token in [&eve.token, &admin] {
        let (status, _, problem) = app
            .get(token, &format!("/v1/channels/{canonical}/messages"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert_eq!(problem["code"], "forbidden");
        refused(
            &app,
            Some(token),
            &format!("topic=channel:{canonical}"),
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    // Eve's own conversation with Ada is another, empty one.
    let (status, _, mine) = app
        .get(&eve.token, &format!("/v1/channels/dm:{}/messages", ada.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["messages"], json!([]));
    for (name, body) in [
        (
            "edit_message",
            json!({ "message_id": id, "content": "gotcha" }),
        ),
        ("delete_message", json!({ "message_id": id })),
    ] {
        let (status, problem) = app.command(&eve.token, name, &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {problem}");
    }
    let gone = app
        .ok(&admin, "delete_message", json!({ "message_id": id }))
        .await;
    let page = app
        .read_at(
            &bob.token,
            &format!("/v1/channels/dm:{}/messages", ada.id),
            position(&gone),
        )
        .await;
    assert_eq!(contents(&page), [json!("sure"), Value::Null]);
}

#[tokio::test]
async fn a_channel_topic_sends_its_history_then_every_message_edit_and_delete() {
    let app = TestApp::spawn().await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let before = app
        .ok(
            &ada.token,
            "send_message",
            json!({ "channel": "global", "content": "before" }),
        )
        .await;
    app.read_at(
        &bob.token,
        "/v1/channels/global/messages",
        position(&before),
    )
    .await;
    let dm = format!("channel:dm:{}", ada.id);
    let mut global = Sub::open(&app, &bob.token, "topic=channel:global", None).await;
    let mut private = Sub::open(&app, &bob.token, &format!("topic={dm}"), None).await;

    let snapshot = global.next().await;
    assert_eq!(snapshot.kind, "snapshot");
    assert_eq!(snapshot.topic(), "channel:global");
    assert_eq!(contents(&snapshot.data["data"]), [json!("before")]);
    let first_private = private.next().await;
    assert_eq!(first_private.data["data"]["messages"], json!([]));

    let sent = app
        .ok(
            &ada.token,
            "send_message",
            json!({ "channel": "global", "content": "live!" }),
        )
        .await;
    let id = message_id(&sent);
    app.ok(
        &ada.token,
        "edit_message",
        json!({ "message_id": id, "content": "live, edited" }),
    )
    .await;
    app.ok(&ada.token, "delete_message", json!({ "message_id": id }))
        .await;
    let whisper = app
        .ok(
            &ada.token,
            "send_message",
            json!({ "channel": format!("dm:{}", bob.id), "content": "psst" }),
        )
        .await;

    let mut seen = vec![snapshot];
    seen.extend(global.until(|e| e.data["data"]["deleted"] == true).await);
    check_sequence(&seen);
    let changes: Vec<&Value> = seen[1..].iter().map(|e| &e.data["data"]).collect();
    assert!(changes.iter().all(|c| c["message_id"] == json!(id)));
    // Each change is the message as of its own event, even when one projector commit applies
    // all three.
    assert_eq!(
        changes
            .iter()
            .map(|c| c["content"].clone())
            .collect::<Vec<_>>(),
        [json!("live!"), json!("live, edited"), Value::Null]
    );

    let got = private.next().await;
    assert_eq!(got.kind, "change");
    assert_eq!(got.data["data"]["content"], "psst");
    assert_eq!(got.position(), position(&whisper));
}

#[tokio::test]
async fn a_player_flooding_the_chat_is_rate_limited_and_nobody_else_is() {
    let app = TestApp::spawn().await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let before = event_count(&app.db).await;
    let mut accepted = 0;
    let mut limited = None;
    for i in 0..40 {
        let response = app
            .client
            .post(app.url("/v1/commands/send_message"))
            .bearer_auth(&ada.token)
            .json(&json!({ "channel": "global", "content": format!("spam {i}") }))
            .send()
            .await
            .expect("a response");
        match response.status() {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                let problem: Value = response.json().await.expect("problem");
                limited = Some((retry, problem));
            }
            other => panic!("unexpected {other}"),
        }
    }
    let (retry, problem) = limited.expect("the flood was limited");
    assert_eq!(problem["code"], "rate_limited");
    assert!(retry >= 1);
    assert!((10..40).contains(&accepted), "{accepted} accepted");
    assert_eq!(event_count(&app.db).await - before, accepted);
    // Bob is not slowed by Ada's flood.
    app.ok(
        &bob.token,
        "send_message",
        json!({ "channel": "global", "content": "hi all" }),
    )
    .await;
}

#[tokio::test]
async fn bad_history_reads_get_a_problem_with_their_code() {
    let app = TestApp::spawn().await;
    let ada = app.player("ada").await;
    let cases = [
        (
            "/v1/channels/room:1/messages",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_channel",
        ),
        (
            &format!("/v1/channels/dm:{}/messages", ada.id) as &str,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_channel",
        ),
        (
            "/v1/channels/global/messages?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_limit",
        ),
        (
            "/v1/channels/global/messages?limit=201",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_limit",
        ),
        (
            "/v1/channels/global/messages?before=42",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/channels/global/messages?before=67e55044-10b1-426f-9247-bb680e5fe0c8",
            StatusCode::NOT_FOUND,
            "message_not_found",
        ),
        (
            "/v1/players/me/labs/lab-1",
            StatusCode::NOT_FOUND,
            "lab_state_not_found",
        ),
        (
            "/v1/players/me/labs/a%20b",
            StatusCode::NOT_FOUND,
            "lab_state_not_found",
        ),
    ];
    for (path, status, code) in cases {
        let (got, _, problem) = app.get(&ada.token, path).await;
        assert_eq!(got, status, "{path}: {problem}");
        assert_eq!(problem["code"], code, "{path}: {problem}");
    }
    refused(
        &app,
        Some(&ada.token),
        "topic=channel:room:1",
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;
}
