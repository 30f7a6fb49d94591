//! Modules and labs (`rm_modules`, `rm_labs`): the catalog stream folded by the domain's own
//! `CatalogState::evolve`, written once per batch.

use async_trait::async_trait;
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::rows::Rows;
use questlog_projector::{Decoded, Projection};
use sqlx::PgConnection;

use crate::catalog::CatalogState;
use crate::event::Event;
use crate::names::{CATALOG, CATALOG_TOPIC};
use crate::stream::StreamId;

/// The key of the catalog row `event` defines (`module:<n>`, `lab:<id>`), as announced.
pub fn row_key(event: &Event) -> Option<String> {
    match event {
        Event::ModuleDefined { module, .. } => Some(format!("module:{module}")),
        Event::LabDefined { lab_id, .. } => Some(format!("lab:{lab_id}")),
        _ => None,
    }
}

fn int(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// Modules and labs (`rm_modules`, `rm_labs`).
pub struct Catalog;

#[async_trait]
impl Projection for Catalog {
    fn name(&self) -> ProjectionName {
        CATALOG
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_modules", "rm_labs"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        // A definition replaces its row whole, so the rows before a batch never matter and are not
        // loaded: the batch's rows are the fold of its own definitions, by the domain's
        // `CatalogState::evolve` (the catalog the command side decides with).
        let mut rows = CatalogState::default();
        let mut changes = Vec::new();
        for decoded in events {
            let Some(event) = decoded.event.get::<Event>() else {
                continue;
            };
            // The kind first: nearly every event of a busy log is not a definition.
            let Some(key) = row_key(event) else {
                continue;
            };
            if matches!(
                decoded.recorded.stream_id.parse::<StreamId>(),
                Ok(StreamId::Catalog)
            ) {
                rows.evolve(event);
                changes.push(Change {
                    topic: CATALOG_TOPIC.as_str().to_owned(),
                    key,
                    op: ChangeOp::Upsert,
                    position: decoded.position(),
                });
            }
        }
        save(tx, &rows).await?;
        Ok(changes)
    }
}

/// `rm_modules`: one row per module of the catalog.
const MODULE_ROWS: Rows = Rows {
    table: "rm_modules",
    columns: &["module", "title", "requires"],
    key: &["module"],
    update: &["title", "requires"],
};

/// `rm_labs`: one row per lab of the catalog.
const LAB_ROWS: Rows = Rows {
    table: "rm_labs",
    columns: &["lab_id", "module", "title", "xp"],
    key: &["lab_id"],
    update: &["module", "title", "xp"],
};

/// One statement per table for the rows the batch touched.
async fn save(tx: &mut PgConnection, rows: &CatalogState) -> anyhow::Result<()> {
    let modules: Vec<_> = rows.modules.iter().collect();
    MODULE_ROWS
        .upsert(tx, modules, |mut b, (module, def)| {
            b.push_bind(int(*module))
                .push_bind(def.title.clone())
                .push_bind(def.requires.iter().map(|m| int(*m)).collect::<Vec<_>>());
        })
        .await?;
    let labs: Vec<_> = rows.labs.iter().collect();
    LAB_ROWS
        .upsert(tx, labs, |mut b, (lab, def)| {
            b.push_bind(lab.as_str().to_owned())
                .push_bind(int(def.module))
                .push_bind(def.title.clone())
                .push_bind(int(def.xp));
        })
        .await
}
