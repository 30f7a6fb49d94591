//! A bounded stream: JetStream drops its oldest messages (by size or age) and the log in
//! Postgres is the history. A projection that needs what the stream dropped reads it from the
//! log, then follows the stream, missing nothing and applying nothing twice; a relay that finds
//! the stream emptied by age resumes after the event it recorded.

use std::sync::Arc;

use futures::future::join_all;
use questlog::app::Hooks;
use questlog::config::{ServeArgs, StreamArgs};
use questlog_tests::{event_count, position, store_args, Player, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::json;

use crate::faults::{assert_verify_is_clean, read_log, serve_args, wait_caught_up, wait_for};
use crate::guestbook::Guestbook;

/// The application with the stream bounded by `stream`.
async fn spawn_bounded(db: TestDb, stream: StreamArgs, hooks: Hooks) -> TestApp {
    let store = store_args(&db);
    let serve = ServeArgs {
        stream,
        ..serve_args()
    };
    TestApp::spawn_serving(db, store, hooks, serve).await
}

/// `messages` chat messages from each of `players`, on the global channel; the last position.
async fn chat(app: &TestApp, players: &[Player], messages: usize, tag: &str) -> i64 {
    let positions = join_all(players.iter().map(|p| async move {
        let mut last = 0;
        for n in 0..messages {
            let out = app
                .ok(
                    &p.token,
                    "send_message",
                    json!({ "channel": "global", "content": format!("{tag} {n}") }),
                )
                .await;
            last = position(&out);
        }
        last
    }))
    .await;
    positions.into_iter().max().unwrap_or(0)
}

/// The stream's first and last sequence and how many messages it holds.
async fn stream_state(db: &TestDb) -> (u64, u64, u64) {
    let mut stream = crate::faults::events_stream_on(&questlog_tests::nats_url(), db).await;
    let state = stream.info().await.expect("stream info").state.clone();
    (state.first_sequence, state.last_sequence, state.messages)
}

/// Every `send_message` of the log is one row of the chat's read model.
async fn assert_every_message_is_read_once(app: &TestApp) {
    let pool = app.db.pool(1);
    let (sent, rows): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE event_type = 'message_sent'), \
                (SELECT count(*) FROM rm_messages)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    pool.close().await;
    assert_eq!(rows, sent, "every message sent is in the read model once");
}

/// Empties the chat's read model and its checkpoint, as a rebuild from nothing starts.
async fn reset_chat(db: &TestDb) {
    let pool = db.pool(1);
    sqlx::query("TRUNCATE rm_messages")
        .execute(&pool)
        .await
        .expect("emptying rm_messages");
    sqlx::query(
        "UPDATE projection_checkpoints SET position = 0, event_id = NULL, stream_sequence = 0, \
                stream_created = NULL WHERE projection = 'chat'",
    )
    .execute(&pool)
    .await
    .expect("resetting the chat's checkpoint");
    pool.close().await;
}

#[tokio::test]
async fn a_projection_reset_or_added_after_the_stream_dropped_its_oldest_events_reads_them_from_the_log(
) {
    let bound = StreamArgs {
        stream_max_bytes: Some(48 * 1024),
        ..StreamArgs::default()
    };
    let app = spawn_bounded(TestDb::create().await, bound.clone(), Hooks::default()).await;
    let names: Vec<String> = (0..4).map(|i| format!("bounded{i}")).collect();
    let players = join_all(names.iter().map(|n| app.player(n))).await;
    let head = chat(&app, &players, 60, "before").await;
    wait_caught_up(&app, head).await;
    let (first, last, _) = stream_state(&app.db).await;
    assert!(
        first > 1,
        "the stream dropped its oldest messages ({first}..{last})"
    );

    // The chat's read model starts over from nothing, and the guestbook is a new module: both
    // need events the stream no longer holds.
    let db = app.stop().await;
    reset_chat(&db).await;
    let hooks = Hooks {
        modules: vec![Arc::new(Guestbook)],
        ..Hooks::default()
    };
    let app = spawn_bounded(db, bound, hooks).await;
    let guest = app.identity().await;
    let signed = position(
        &app.ok(
            &guest.token,
            "sign_guestbook",
            json!({ "text": "after the bound" }),
        )
        .await,
    );
    let head = chat(&app, &players, 10, "after").await.max(signed);
    let (status, _, page) = app
        .get(
            &guest.token,
            &format!("/v1/guestbook?min_position={signed}&wait_ms=30000"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["entries"][0]["text"], "after the bound");
    wait_caught_up(&app, head).await;
    assert_every_message_is_read_once(&app).await;
    let (first, _, _) = stream_state(&app.db).await;
    assert!(first > 1, "the stream is still bounded");
    let mut modules = questlog::modules::app();
    modules.add_module(&Guestbook);
    let mut out = Vec::new();
    let drifted = questlog::admin::rebuild::verify_modules(&app.db.url, &modules, true, &mut out)
        .await
        .expect("verify runs");
    assert!(
        !drifted,
        "verify found drift: {}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_stream_emptied_by_its_age_bound_goes_on_after_the_last_event_published() {
    let bound = StreamArgs {
        stream_max_age_secs: Some(2),
        ..StreamArgs::default()
    };
    let app = spawn_bounded(TestDb::create().await, bound.clone(), Hooks::default()).await;
    let names: Vec<String> = (0..2).map(|i| format!("aged{i}")).collect();
    let players = join_all(names.iter().map(|n| app.player(n))).await;
    let head = chat(&app, &players, 20, "before").await;
    wait_caught_up(&app, head).await;
    let db = app.stop().await;
    let published = u64::try_from(event_count(&db).await).expect("a count");
    // Every message ages out while nothing runs; JetStream still counts its sequences.
    wait_for("the stream drops every message by age", || async {
        let (first, last, messages) = stream_state(&db).await;
        (messages == 0 && last == published && first == last + 1).then_some(())
    })
    .await;

    reset_chat(&db).await;
    let app = spawn_bounded(db, bound, Hooks::default()).await;
    let head = chat(&app, &players, 5, "after").await;
    wait_caught_up(&app, head).await;
    assert_every_message_is_read_once(&app).await;
    // The relay went on from the sequence the stream ended at, with the next event of the log.
    let log = read_log(&app.db).await;
    let (_, last, _) = stream_state(&app.db).await;
    assert_eq!(last, u64::try_from(log.len()).expect("a length"));
    assert_verify_is_clean(&app.db).await;
}
