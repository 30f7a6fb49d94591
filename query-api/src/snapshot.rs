//! One consistent look at the read models: every read runs in a read-only REPEATABLE READ
//! transaction, so the rows it returns and the checkpoint it reports come from the same snapshot.
//! Projectors change rows and checkpoint in one transaction, hence the reported position is
//! exactly the log prefix the answer reflects.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use questlog_bus::ProjectionName;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// The header every read answers with: the log position its data reflects.
pub const POSITION_HEADER: &str = "questlog-position";

/// Starts a read-only snapshot.
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
}

/// The least checkpoint among `projections` in this snapshot (0 for one that has none yet).
pub async fn checkpoint(
    conn: &mut PgConnection,
    projections: &[ProjectionName],
) -> Result<i64, sqlx::Error> {
    let projections: Vec<&str> = projections.iter().map(|p| p.as_str()).collect();
    sqlx::query_scalar(
        "SELECT coalesce(min(coalesce(c.position, 0)), 0)::bigint
           FROM unnest($1::text[]) AS p(name)
           LEFT JOIN projection_checkpoints c ON c.projection = p.name",
    )
    .bind(&projections)
    .fetch_one(conn)
    .await
}

/// A JSON answer carrying `Questlog-Position`.
pub fn answer<T: Serialize>(position: i64, body: &T) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(POSITION_HEADER, HeaderValue::from(position));
    response
}
