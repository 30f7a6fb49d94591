//! The catalog's reads: `GET /v1/labs`, the catalog of modules and their labs, from the catalog
//! read model (or its stream folded by the domain, as of a position).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use questlog_bus::ProjectionName;
use questlog_domain::App;
use questlog_query_api::as_of::{decode, events_until};
use questlog_query_api::params::{query, Consistency, ReadParams};
use questlog_query_api::snapshot::{answer, begin, checkpoint};
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;

use crate::catalog::CatalogState;
use crate::names::CATALOG;
use crate::stream::fold;
use crate::{Event, StreamId};

/// The projection the catalog is read from.
const CATALOG_READ: &[ProjectionName] = &[CATALOG];

/// Registers the catalog's route.
pub(crate) fn register(app: &mut App) {
    app.add_read_routes(Router::new().route("/v1/labs", get(labs)))
        .add_read_projections(CATALOG_READ);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Catalog {
    position: i64,
    modules: Vec<ModuleOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogModule)]
struct ModuleOut {
    module: i32,
    title: String,
    requires: Vec<i32>,
    labs: Vec<LabOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogLab)]
struct LabOut {
    lab_id: String,
    title: String,
    xp: i32,
}

/// `GET /v1/labs`: modules by number, each with its labs by id.
#[utoipa::path(get, path = "/v1/labs", tag = "academy", params(ReadParams),
    summary = "The catalog: modules and their labs", responses((status = 200, body = Catalog)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn labs(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let mut tx = begin(&state.pool).await?;
    let (position, modules, labs) = if let Some(as_of) = consistency.as_of {
        // The catalog stream folded by the domain up to that point.
        let position = as_of.resolve(&mut tx).await?;
        let recorded =
            events_until(&mut tx, &[StreamId::Catalog.to_string()], position, &[]).await?;
        let catalog = fold(CatalogState::evolve, &decode::<Event>(&recorded)?);
        let modules = catalog
            .modules
            .iter()
            .map(|(n, m)| {
                (
                    int(*n),
                    m.title.clone(),
                    m.requires.iter().map(|r| int(*r)).collect(),
                )
            })
            .collect();
        let mut labs: Vec<(String, i32, String, i32)> = catalog
            .labs
            .iter()
            .map(|(id, l)| {
                (
                    id.as_str().to_owned(),
                    int(l.module),
                    l.title.clone(),
                    int(l.xp),
                )
            })
            .collect();
        labs.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        (position, modules, labs)
    } else {
        drop(tx);
        consistency.wait(&state.positions, CATALOG_READ).await?;
        tx = begin(&state.pool).await?;
        let position = checkpoint(&mut tx, CATALOG_READ).await?;
        let modules: Vec<(i32, String, Vec<i32>)> =
            sqlx::query_as("SELECT module, title, requires FROM rm_modules ORDER BY module")
                .fetch_all(&mut *tx)
                .await?;
        let labs: Vec<(String, i32, String, i32)> =
            sqlx::query_as("SELECT lab_id, module, title, xp FROM rm_labs ORDER BY module, lab_id")
                .fetch_all(&mut *tx)
                .await?;
        (position, modules, labs)
    };
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

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
