//! CORS: a web front end served from another origin (a dev server on `localhost:5173`) calls
//! questlog, reads its answers and follows its event stream — when its origin is configured.

use questlog::app::Hooks;
use questlog_tests::{store_args, TestApp, TestDb};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

const FRONT_END: &str = "http://localhost:5173";

async fn app_allowing(origins: &[&str]) -> TestApp {
    let db = TestDb::create().await;
    let store = store_args(&db);
    let mut serve = TestApp::serve_args();
    serve.cors_origins = origins.iter().map(|o| (*o).to_owned()).collect();
    TestApp::spawn_serving(db, store, Hooks::default(), serve).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn preflight(app: &TestApp, origin: &str, path: &str) -> (StatusCode, HeaderMap) {
    let response = app
        .client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .expect("preflight sent");
    (response.status(), response.headers().clone())
}

#[tokio::test]
async fn a_configured_origin_may_send_commands_read_answers_and_follow_the_stream() {
    let app = app_allowing(&[FRONT_END]).await;

    // The browser's preflight of a command with a token and an idempotency key.
    let (status, headers) = preflight(&app, FRONT_END, "/v1/commands/register_player").await;
    assert!(status.is_success(), "preflight answered {status}");
    assert_eq!(header(&headers, "access-control-allow-origin"), FRONT_END);
    assert!(header(&headers, "access-control-allow-methods").contains("POST"));
    let allowed = header(&headers, "access-control-allow-headers").to_lowercase();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }

    // The answer to the command itself is readable, with the headers a client needs.
    let response = app
        .client
        .post(app.url("/v1/identity"))
        .header("origin", FRONT_END)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        FRONT_END
    );
    let token = response.json::<serde_json::Value>().await.expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = app
        .client
        .get(app.url("/v1/players/me"))
        .header("origin", FRONT_END)
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        FRONT_END
    );
    assert!(header(response.headers(), "access-control-expose-headers")
        .to_lowercase()
        .contains("questlog-position"));

    // EventSource sends no preflight: its GET must carry the header too.
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(FRONT_END));
    headers.insert("accept", HeaderValue::from_static("text/event-stream"));
    let response = app
        .client
        .get(app.url(&format!(
            "/v1/subscribe?topic=leaderboard&access_token={token}"
        )))
        .headers(headers)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        FRONT_END
    );
}

#[tokio::test]
async fn by_default_any_origin_is_allowed() {
    let app = TestApp::spawn().await;
    let (status, headers) =
        preflight(&app, "https://game.example", "/v1/commands/complete_lab").await;
    assert!(status.is_success(), "preflight answered {status}");
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
}

#[tokio::test]
async fn an_origin_not_listed_or_an_empty_list_gets_no_cross_origin_access() {
    let app = app_allowing(&[FRONT_END]).await;
    let (_, headers) = preflight(&app, "http://evil.example", "/v1/commands/complete_lab").await;
    assert!(headers.get("access-control-allow-origin").is_none());

    let closed = app_allowing(&[""]).await;
    let (_, headers) = preflight(&closed, FRONT_END, "/v1/commands/complete_lab").await;
    assert!(headers.get("access-control-allow-origin").is_none());
    let response = closed
        .client
        .post(closed.url("/v1/identity"))
        .header("origin", FRONT_END)
        .send()
        .await
        .expect("sent");
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
