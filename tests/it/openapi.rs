//! `GET /v1/openapi.json`: the OpenAPI document describes every route the application serves and
//! every command its modules register, each with its body, its answer and its problems. The lists
//! compared come from the running application (its router, probed method by method, and its
//! command registry), so a route or a command added without its description fails here.

use std::collections::BTreeSet;

use questlog_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The methods a route may be served with.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(method, path)` of every route `app` serves: each path its router holds, asked with each
/// method (parameters filled in); the router answers a method it does not route with 405.
async fn served(app: &TestApp) -> BTreeSet<(String, String)> {
    let mut served = BTreeSet::new();
    for path in &app.paths {
        let concrete = fill_parameters(path);
        for method in METHODS {
            let response = app
                .client
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method"),
                    app.url(&concrete),
                )
                .send()
                .await
                .expect("request sent");
            if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                served.insert((method.to_owned(), path.clone()));
            }
        }
    }
    served
}

/// The path with each `{parameter}` replaced by a value.
fn fill_parameters(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `(method, path)` of every operation the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    documented
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_served_and_every_command_registered() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");

    let served = served(&app).await;
    assert!(
        served.contains(&("get".to_owned(), "/healthz".to_owned()))
            && served.contains(&("get".to_owned(), "/v1/subscribe".to_owned())),
        "the router's routes were not found: {served:?}"
    );
    let commands: BTreeSet<String> = questlog::modules::app()
        .domain()
        .command_names()
        .iter()
        .map(|name| format!("/v1/commands/{name}"))
        .collect();
    assert!(commands.len() > 20, "{commands:?}");

    // A command route is described once per registered command, with that command's body.
    let command_route = ("post".to_owned(), "/v1/commands/{name}".to_owned());
    assert!(served.contains(&command_route));
    let mut expected: BTreeSet<(String, String)> =
        served.into_iter().filter(|r| *r != command_route).collect();
    expected.extend(commands.iter().map(|c| ("post".to_owned(), c.clone())));

    let documented = documented(&doc);
    let undocumented: Vec<_> = expected.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not described: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&expected).collect();
    assert!(
        unserved.is_empty(),
        "described but not served: {unserved:?}"
    );

    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let resolves = |reference: &Value| {
        reference
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .is_some_and(|name| schemas.contains_key(name))
    };
    let mut operation_ids = BTreeSet::new();
    for (method, path) in &documented {
        let operation = &doc["paths"][path][method];
        // A generated client names each operation by its id.
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            operation_ids.insert(id.clone()),
            "{method} {path}: operationId {id:?} is not unique"
        );
        // Every error is problem+json with its code.
        assert!(
            resolves(
                &operation["responses"]["default"]["content"]["application/problem+json"]["schema"]
                    ["$ref"]
            ),
            "{method} {path} does not describe its problems"
        );
        let answers: Vec<&String> = operation["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .filter(|status| status.starts_with('2'))
            .collect();
        assert!(!answers.is_empty(), "{method} {path} describes no answer");
    }
    for command in &commands {
        let operation = &doc["paths"][command]["post"];
        assert!(
            resolves(&operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]),
            "{command} does not describe its body"
        );
        assert!(
            resolves(
                &operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            ),
            "{command} does not describe its answer"
        );
    }
}

#[tokio::test]
async fn a_commands_body_is_described_field_by_field_as_its_module_parses_it() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON");
    let body = &doc["components"]["schemas"]["RegisterPlayer"];
    assert_eq!(body["type"], "object");
    assert_eq!(body["required"], serde_json::json!(["username"]));
    assert_eq!(body["properties"]["username"]["type"], "string");
    // Unknown fields are refused, and the document says so.
    assert_eq!(body["additionalProperties"], false);
    let heartbeat = &doc["components"]["schemas"]["Heartbeat"];
    assert_eq!(heartbeat["required"], serde_json::json!(["current_lab"]));
}
