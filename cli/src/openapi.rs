//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of everything this binary serves, assembled at
//! start from the kernel's parts (the write side's, with a path per registered command, the read
//! side's, the process's own routes here) and every running module's (`questlog_web::openapi`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use questlog_domain::App;
use questlog_web::openapi::{document as assemble, ApiDocs};
use utoipa::openapi::OpenApi;
use utoipa::OpenApi as _;

#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics, openapi))]
struct Process;

/// The document for the modules registered on `app`.
pub fn document(app: &App) -> OpenApi {
    let docs = ApiDocs::of(app);
    assemble(
        [
            Process::openapi(),
            questlog_command_api::openapi::api_docs(docs.commands()),
            questlog_query_api::openapi::api_docs(),
        ]
        .into_iter()
        .chain(docs.fragments().iter().cloned()),
    )
}

/// The document as served: rendered once.
#[derive(Clone)]
pub struct Served(pub bytes::Bytes);

impl Served {
    /// The rendered document of `app`'s modules.
    ///
    /// # Panics
    /// Never: a document is plain data that always renders as JSON.
    pub fn of(app: &App) -> Self {
        Self(
            document(app)
                .to_json()
                .expect("an OpenAPI document renders as JSON")
                .into(),
        )
    }
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", security(()),
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi(State(served): State<Served>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        served.0,
    )
        .into_response()
}

// The process's own routes are served in `app.rs`; these describe them.

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    summary = "The process is up",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
#[allow(dead_code)]
fn healthz() {}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "meta", security(()),
    summary = "The process can serve: Postgres and NATS reachable, the stream this database's log",
    responses((status = 200, description = "`{\"status\": \"ready\"}`", body = Object)))]
#[allow(dead_code)]
fn readyz() {}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "meta", security(()),
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "The metrics", content_type = "text/plain",
        body = String)))]
#[allow(dead_code)]
fn metrics() {}
