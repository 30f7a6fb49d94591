//! `GET /v1/labs`: the catalog of modules and their labs, from the catalog read model.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use questlog_web::{Authenticated, Problem};
use serde::Serialize;

use crate::error::ApiError;
use crate::params::{query, Consistency, ReadParams};
use crate::projection::CATALOG;
use crate::snapshot::{answer, begin, checkpoint};
use crate::QueryState;

#[derive(Debug, Serialize)]
struct Catalog {
    position: i64,
    modules: Vec<ModuleOut>,
}

#[derive(Debug, Serialize)]
struct ModuleOut {
    module: i32,
    title: String,
    requires: Vec<i32>,
    labs: Vec<LabOut>,
}

#[derive(Debug, Serialize)]
struct LabOut {
    lab_id: String,
    title: String,
    xp: i32,
}

/// `GET /v1/labs`: modules by number, each with its labs by id.
#[tracing::instrument(skip_all)]
pub(crate) async fn labs(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    consistency.wait(&state.positions, &[CATALOG]).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, &[CATALOG]).await?;
    let modules: Vec<(i32, String, Vec<i32>)> =
        sqlx::query_as("SELECT module, title, requires FROM rm_modules ORDER BY module")
            .fetch_all(&mut *tx)
            .await?;
    let labs: Vec<(String, i32, String, i32)> =
        sqlx::query_as("SELECT lab_id, module, title, xp FROM rm_labs ORDER BY module, lab_id")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;

    let mut labs_of: BTreeMap<i32, Vec<LabOut>> = BTreeMap::new();
    for (lab_id, module, title, xp) in labs {
        labs_of
            .entry(module)
            .or_default()
            .push(LabOut { lab_id, title, xp });
    }
    let modules = modules
        .into_iter()
        .map(|(module, title, requires)| ModuleOut {
            module,
            title,
            requires,
            labs: labs_of.remove(&module).unwrap_or_default(),
        })
        .collect();
    if !labs_of.is_empty() {
        // The domain refuses labs of undefined modules; a leftover means a projector bug.
        tracing::warn!(modules = ?labs_of.keys().collect::<Vec<_>>(), "labs of undefined modules are not listed");
    }
    Ok(answer(position, &Catalog { position, modules }))
}
