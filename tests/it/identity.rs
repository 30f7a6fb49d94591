//! Identities and tokens: issued, refreshed, checked, valid across restarts, never forgeable.

use questlog_academy::Role;
use questlog_tests::{TestApp, TestDb};
use questlog_web::TokenKeys;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn register(app: &TestApp, token: &str, username: &str) -> (StatusCode, Value) {
    app.command(token, "register_player", &json!({ "username": username }))
        .await
}

#[tokio::test]
async fn a_refreshed_token_keeps_the_identity_and_role() {
    let app = TestApp::spawn().await;
    let p = app.identity().await;
    let response = app
        .client
        .post(app.url("/v1/identity/refresh"))
        .bearer_auth(&p.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["identity"], p.id.to_string());
    let refreshed = body["token"].as_str().expect("token");
    let (status, out) = register(&app, refreshed, "refreshed").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["events"][1]["data"]["player_id"], p.id.to_string());

    let admin = app.admin_token();
    let response = app
        .client
        .post(app.url("/v1/identity/refresh"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    let admin_again = body["token"].as_str().expect("token");
    let (status, out) = app
        .command(
            admin_again,
            "define_module",
            &json!({ "module": 1, "title": "Basics" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a refreshed admin token stays admin: {out}"
    );
}

#[tokio::test]
async fn expired_forged_and_missing_tokens_are_unauthorized() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4();
    let expired = app
        .keys
        .issue_for(id, Role::Player, chrono::Duration::seconds(-5));
    let forged =
        TokenKeys::new(b"someone else's secret", chrono::Duration::days(1)).issue(id, Role::Admin);
    for token in [expired.as_str(), forged.as_str(), "", "abc.def.ghi"] {
        let (status, body) = register(&app, token, "mallory").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}: {body}");
        assert_eq!(body["code"], "unauthorized");
    }
    let response = app
        .client
        .post(app.url("/v1/commands/register_player"))
        .header("Authorization", "Basic abc")
        .json(&json!({ "username": "m" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .post(app.url("/v1/identity/refresh"))
        .bearer_auth(&expired)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_stay_valid_across_a_restart() {
    let app = TestApp::spawn().await;
    let p = app.identity().await;
    let db = app.stop().await;
    let app = TestApp::spawn_on(db).await;
    let (status, body) = register(&app, &p.token, "survivor").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn without_a_configured_secret_every_process_on_the_database_shares_one_generated_secret() {
    let db = TestDb::create().await;
    let mut args = questlog_tests::store_args(&db);
    args.token_secret = None;
    let pool = db.pool(1);
    let first = questlog::app::token_keys(&args, &pool).await.expect("keys");
    let second = questlog::app::token_keys(&args, &pool).await.expect("keys");
    let token = first.issue(Uuid::new_v4(), Role::Admin);
    let actor = second
        .verify(&token)
        .expect("the second process accepts the first's token");
    assert_eq!(actor.role, Role::Admin);
    let configured = TokenKeys::new(
        questlog_tests::TEST_SECRET.as_bytes(),
        chrono::Duration::days(1),
    );
    assert!(
        configured.verify(&token).is_err(),
        "the generated secret is not the configured one"
    );
}

#[tokio::test]
async fn a_token_secret_shorter_than_32_bytes_is_refused_at_start_before_anything_is_created() {
    use sqlx::migrate::MigrateDatabase;
    // A database that does not exist: a refused start must not create it.
    let name = format!("questlog_test_{}", Uuid::new_v4().simple());
    let admin = questlog_tests::admin_database_url();
    let url = format!("{}/{name}", admin.rsplit_once('/').map_or("", |(b, _)| b));
    let store = questlog::config::StoreArgs {
        database_url: url.clone(),
        nats_url: questlog_tests::nats_url(),
        nats_prefix: "unused".to_owned(),
        token_secret: Some("only-twenty-bytes!!!".to_owned()),
        token_ttl_days: 30,
    };
    let refused = questlog::Application::build(
        &store,
        &TestApp::serve_args(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .err()
    .expect("a 20-byte secret is refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains("QUESTLOG_TOKEN_SECRET") && message.contains("at least 32 bytes"),
        "{message}"
    );
    assert!(!message.contains("only-twenty-bytes"), "{message}");
    assert!(
        !sqlx::Postgres::database_exists(&url)
            .await
            .expect("Postgres answers"),
        "the refused start created its database"
    );
}
