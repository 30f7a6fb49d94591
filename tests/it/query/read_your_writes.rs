//! `min_position`: a read waits until the read models have applied a position, woken by the
//! projectors' announcements, and falls back on the checkpoint table when an announcement is lost.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::PgPool;

use questlog_tests::query::{self as harness, serve, TestApi};

#[tokio::test]
async fn a_read_waits_for_the_announced_position() {
    let api = TestApi::spawn().await;
    api.set_checkpoint("players", 5).await;
    let token = api.any_token();
    let url = format!(
        "{}/v1/leaderboard?min_position=8&wait_ms=20000",
        api.address
    );
    let client = api.client.clone();
    let started = Instant::now();
    let read = tokio::spawn(async move { harness::get(&client, &url, Some(&token)).await });

    api.until_waiting(1).await;
    // What a projector does: commit rows and checkpoint, then announce.
    api.set_checkpoint("players", 8).await;
    api.announce("players", 8).await;
    let answer = read.await.expect("the read completes");

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 8);
    // Woken by the announcement, not by the deadline's last look at the checkpoints.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_read_already_caught_up_answers_at_once() {
    let api = TestApi::spawn().await;
    api.set_checkpoint("presence", 30).await;

    // No announcement ever came: the checkpoint table is read before waiting.
    let answer = api
        .get(
            "/v1/presence?min_position=30&wait_ms=30000",
            Some(&api.any_token()),
        )
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 30);
}

#[tokio::test]
async fn a_read_that_never_catches_up_times_out() {
    let api = TestApi::spawn().await;
    api.set_checkpoint("players", 5).await;

    let answer = api
        .get(
            "/v1/leaderboard?min_position=100&wait_ms=200",
            Some(&api.any_token()),
        )
        .await;

    answer.assert_problem(StatusCode::GATEWAY_TIMEOUT, "not_caught_up");
}

#[tokio::test]
async fn a_lost_announcement_does_not_fail_the_read() {
    let api = TestApi::spawn().await;
    api.set_checkpoint("catalog", 5).await;
    let token = api.any_token();
    let url = format!("{}/v1/labs?min_position=6&wait_ms=1500", api.address);
    let client = api.client.clone();
    let read = tokio::spawn(async move { harness::get(&client, &url, Some(&token)).await });

    api.until_waiting(1).await;
    // The projector committed, but its announcement never arrived.
    api.set_checkpoint("catalog", 6).await;
    let answer = read.await.expect("the read completes");

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 6);
}

#[tokio::test]
async fn an_announcement_of_another_projection_does_not_end_the_wait() {
    let api = TestApi::spawn().await;
    api.set_checkpoint("players", 5).await;
    api.set_checkpoint("presence", 5).await;
    api.set_checkpoint("catalog", 5).await;
    let me = uuid::Uuid::new_v4();
    api.insert_player(me, "ada", 0, 1).await;
    let token = api.player_token(me);
    let url = format!("{}/v1/players/me?min_position=7&wait_ms=20000", api.address);
    let client = api.client.clone();
    let read = tokio::spawn(async move { harness::get(&client, &url, Some(&token)).await });

    api.until_waiting(1).await;
    // A profile reads three projections: it answers once the last of them has caught up.
    for projection in ["players", "presence"] {
        api.set_checkpoint(projection, 7).await;
        api.announce(projection, 7).await;
    }
    assert!(!read.is_finished());
    api.set_checkpoint("catalog", 9).await;
    api.announce("catalog", 9).await;
    let answer = read.await.expect("the read completes");

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 7);
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after() {
    // Nothing listens on port 1.
    let pool: PgPool =
        questlog_store::connect("postgres://postgres@127.0.0.1:1/none", 1).expect("valid URL");
    let keys = questlog_web::TokenKeys::new(b"secret", chrono::Duration::days(1));
    let token = keys.issue(uuid::Uuid::new_v4(), questlog_academy::Role::Player);
    let state = questlog_query_api::QueryState::new(
        pool.clone(),
        keys,
        questlog_query_api::Positions::new(pool),
        &questlog::modules::app(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let address = serve(state, shutdown.clone()).await;
    let client = reqwest::Client::new();

    for path in ["/v1/leaderboard", "/v1/labs?min_position=3"] {
        let answer = harness::get(&client, &format!("{address}{path}"), Some(&token)).await;
        answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert!(answer.headers.contains_key("retry-after"));
    }
    shutdown.cancel();
}
