//! Modules and labs (`rm_modules`, `rm_labs`): the catalog stream folded by the domain's own
//! `CatalogState::evolve`, written once per batch.

use anyhow::Context as _;
use async_trait::async_trait;
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::{Decoded, Projection};
use sqlx::{PgConnection, QueryBuilder};

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
            if !matches!(
                decoded.recorded.stream_id.parse::<StreamId>(),
                Ok(StreamId::Catalog)
            ) {
                continue;
            }
            if let Some(key) = row_key(event) {
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

/// One statement per table for the rows the batch touched.
async fn save(tx: &mut PgConnection, rows: &CatalogState) -> anyhow::Result<()> {
    let modules: Vec<_> = rows.modules.iter().collect();
    if !modules.is_empty() {
        let mut query = QueryBuilder::new("INSERT INTO rm_modules (module, title, requires) ");
        query.push_values(modules, |mut b, (module, def)| {
            b.push_bind(int(*module))
                .push_bind(def.title.clone())
                .push_bind(def.requires.iter().map(|m| int(*m)).collect::<Vec<_>>());
        });
        query.push(
            " ON CONFLICT (module) DO UPDATE SET title = EXCLUDED.title, requires = EXCLUDED.requires",
        );
        query
            .build()
            .execute(&mut *tx)
            .await
            .context("saving modules")?;
    }
    let labs: Vec<_> = rows.labs.iter().collect();
    if !labs.is_empty() {
        let mut query = QueryBuilder::new("INSERT INTO rm_labs (lab_id, module, title, xp) ");
        query.push_values(labs, |mut b, (lab, def)| {
            b.push_bind(lab.as_str().to_owned())
                .push_bind(int(def.module))
                .push_bind(def.title.clone())
                .push_bind(int(def.xp));
        });
        query.push(
            " ON CONFLICT (lab_id) DO UPDATE SET module = EXCLUDED.module, title = EXCLUDED.title, xp = EXCLUDED.xp",
        );
        query
            .build()
            .execute(&mut *tx)
            .await
            .context("saving labs")?;
    }
    Ok(())
}
