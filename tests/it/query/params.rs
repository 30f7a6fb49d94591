//! Query parameters: malformed values are 400 problem+json, out-of-range ones 422, unknown ones
//! are ignored.

use reqwest::StatusCode;

use questlog_tests::query::TestApi;

#[tokio::test]
async fn malformed_parameters_are_bad_requests() {
    let api = TestApi::spawn().await;
    let token = api.any_token();
    for path in [
        "/v1/leaderboard?limit=abc",
        "/v1/leaderboard?min_position=x",
        "/v1/leaderboard?wait_ms=-1",
        "/v1/leaderboard/players/me?radius=lots",
        "/v1/presence?min_position=1.5",
        "/v1/labs?min_position=",
        "/v1/players/me?wait_ms=soon",
    ] {
        api.get(path, Some(&token))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    api.get(
        "/v1/admin/streams/catalog?to_version=last",
        Some(&api.admin_token()),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn out_of_range_values_are_refused_with_their_own_code() {
    let api = TestApi::spawn().await;
    let token = api.any_token();
    for (path, code) in [
        ("/v1/leaderboard?limit=0", "invalid_limit"),
        ("/v1/leaderboard?limit=101", "invalid_limit"),
        ("/v1/leaderboard/players/me?radius=51", "invalid_radius"),
        ("/v1/leaderboard/players/me?radius=-1", "invalid_radius"),
        (
            "/v1/presence?min_position=1&wait_ms=30001",
            "invalid_wait_ms",
        ),
    ] {
        api.get(path, Some(&token))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    for (path, code) in [
        ("/v1/leaderboard?after=garbage", "invalid_cursor"),
        ("/v1/leaderboard?as_of=yesterday", "bad_request"),
        ("/v1/players/me?as_of=2026-13-20T10:00:00Z", "bad_request"),
    ] {
        api.get(path, Some(&token))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, code);
    }
    // A point the log has not reached has no answer yet.
    for path in [
        "/v1/leaderboard?as_of=99999",
        "/v1/presence?as_of=2999-01-01T00:00:00Z",
        "/v1/labs?as_of=-1",
    ] {
        api.get(path, Some(&token))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_as_of");
    }
    api.get("/v1/admin/projections?as_of=1", Some(&api.admin_token()))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "as_of_unsupported");
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let api = TestApi::spawn().await;
    let answer = api
        .get(
            "/v1/leaderboard?limit=3&colour=blue&min_position=0",
            Some(&api.any_token()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let api = TestApi::spawn().await;
    let token = api.any_token();
    api.get("/v1/nowhere", Some(&token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let response = api
        .client
        .post(format!("{}/v1/leaderboard", api.address))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
}
