//! A module is one crate (here one file, `guestbook/`) and one registration line: the kernel
//! runs its command, folds its events into its read model, serves its route, verifies it like
//! the binary's own, and a binary that does not list it knows none of it.

use std::sync::Arc;

use questlog::app::Hooks;
use questlog_tests::{event_types, position, store_args, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::json;

use crate::guestbook::Guestbook;

async fn with_guestbook() -> TestApp {
    let db = TestDb::create().await;
    let store = store_args(&db);
    let hooks = Hooks {
        modules: vec![Arc::new(Guestbook)],
        ..Hooks::default()
    };
    TestApp::spawn_custom(db, store, hooks).await
}

#[tokio::test]
async fn a_module_registered_with_one_line_runs_its_command_read_model_and_route() {
    let app = with_guestbook().await;
    let ada = app.identity().await;
    let bob = app.identity().await;

    let signed = app
        .ok(&ada.token, "sign_guestbook", json!({ "text": "hello" }))
        .await;
    assert_eq!(event_types(&signed), ["guestbook_signed"]);
    let last = position(
        &app.ok(&bob.token, "sign_guestbook", json!({ "text": "hi too" }))
            .await,
    );
    let (status, again) = app
        .command(&ada.token, "sign_guestbook", &json!({ "text": "twice" }))
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_signed"))
    );
    let (status, blank) = app
        .command(&bob.token, "sign_guestbook", &json!({ "text": "  " }))
        .await;
    assert_eq!(
        (status, blank["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_text"))
    );

    let (status, _, page) = app
        .get(&ada.token, &format!("/v1/guestbook?min_position={last}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let texts: Vec<&str> = page["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello", "hi too"]);
    assert_eq!(page["entries"][0]["player_id"], json!(ada.id));

    let (_, _, projections) = app.get(&app.admin_token(), "/v1/admin/projections").await;
    assert!(
        projections["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "guestbook" && p["position"].as_i64() >= Some(last)),
        "{projections}"
    );

    // The module's read model is checked against a replay of the log like every other.
    let mut modules = questlog::modules::app();
    modules.add_module(&Guestbook);
    let mut out = Vec::new();
    let drifted = questlog::admin::rebuild::verify_modules(&app.db.url, &modules, true, &mut out)
        .await
        .expect("verify runs");
    let checks: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert!(!drifted, "{checks}");
    assert!(
        checks
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["table"] == "rm_guestbook"
                && c["live_rows"] == 2
                && c["replayed_rows"] == 2),
        "{checks}"
    );
}

#[tokio::test]
async fn a_binary_that_does_not_list_a_module_knows_none_of_it() {
    let app = TestApp::spawn().await;
    let ada = app.identity().await;
    let (status, body) = app
        .command(&ada.token, "sign_guestbook", &json!({ "text": "hello" }))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_command"))
    );
    let (status, _, _) = app.get(&ada.token, "/v1/guestbook").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
