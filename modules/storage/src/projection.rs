//! The storage's read model (`rm_storage_versions`): every version of every object, each row
//! folded from one event of the object's stream by [`VersionRow::apply`], valid from its
//! position until the next version's. Changes are announced on `storage:<collection>:<owner>`,
//! keyed by the object's key.
//!
//! Indexed fields are real indexes: when a collection is defined, the projection creates, for
//! each field it indexes, two partial expression indexes over the collection's current versions
//! (`coalesce(value -> 'field', 'null')`): one after the owner, for an owner's listing, one
//! before it, for the public listing across owners. A field no longer indexed keeps its indexes
//! (dropping them is an operator's choice); the listings accept only the fields indexed now.

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::copy::CopyRows;
use questlog_projector::rows::{RowSink, Rows};
use questlog_projector::{Bulk, Decoded, FoldMap, Projection};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::event::Event;
use crate::values::{CollectionName, FieldName};
use crate::{STORAGE, TOPIC};

/// What a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Write,
    Delete,
    Restore,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Restore => "restore",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "write" => Some(Self::Write),
            "delete" => Some(Self::Delete),
            "restore" => Some(Self::Restore),
            _ => None,
        }
    }
}

/// An object, as its row names it.
pub type ObjectId = (String, String, String);

/// One version of an object (a row of `rm_storage_versions`).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub collection: String,
    pub owner: String,
    pub key: String,
    pub version: i64,
    pub op: Op,
    /// `None` for a deletion.
    pub value: Option<serde_json::Value>,
    pub by: Uuid,
    pub written_at: DateTime<Utc>,
    pub position: i64,
    /// The position of the next version; `None` while this one is current.
    pub valid_to: Option<i64>,
}

impl VersionRow {
    /// The object an event of an object's stream is about.
    pub fn object_of(event: &Event) -> Option<ObjectId> {
        match event {
            Event::ObjectWritten {
                collection,
                owner,
                key,
                ..
            }
            | Event::ObjectDeleted {
                collection,
                owner,
                key,
                ..
            }
            | Event::ObjectRestored {
                collection,
                owner,
                key,
                ..
            } => Some((collection.to_string(), owner.to_string(), key.to_string())),
            _ => None,
        }
    }

    /// Folds one event of an object's stream, recorded at `at` and `position`: the object's
    /// current version (`current`, if any) ends at `position`, and the new version is returned.
    /// `None` (and nothing changed) for an event that is not an object's.
    pub fn apply(
        current: Option<&mut Self>,
        event: &Event,
        at: DateTime<Utc>,
        position: i64,
    ) -> Option<Self> {
        let (collection, owner, key) = Self::object_of(event)?;
        let (version, op, value, by) = match event {
            Event::ObjectWritten {
                version, value, by, ..
            } => (*version, Op::Write, Some(value), *by),
            Event::ObjectRestored {
                version, value, by, ..
            } => (*version, Op::Restore, Some(value), *by),
            Event::ObjectDeleted { version, by, .. } => (*version, Op::Delete, None, *by),
            _ => return None,
        };
        if let Some(current) = current {
            current.valid_to = Some(position);
        }
        Some(Self {
            collection,
            owner,
            key,
            version: i64::try_from(version).unwrap_or(i64::MAX),
            op,
            value: value
                .and_then(|v| v.value())
                .map(|v| serde_json::Value::Object(v.clone())),
            by: by.0,
            written_at: at,
            position,
            valid_to: None,
        })
    }

    /// The change live subscribers of the object's owner's topic get.
    fn change(&self) -> Change {
        Change {
            topic: TOPIC.topic(format!("{}:{}", self.collection, self.owner)),
            key: self.key.clone(),
            op: if self.value.is_some() {
                ChangeOp::Upsert
            } else {
                ChangeOp::Delete
            },
            position: self.position,
        }
    }
}

/// The expression an indexed field is filtered and sorted by: the field's JSON value, JSON
/// `null` when the object has none (so that every row has a value, and keyset pagination
/// compares whole rows).
/// `column` is the value's column as the statement names it (`value`, or `v.value`).
pub fn field_expression(column: &str, field: &FieldName) -> String {
    format!("coalesce({column} -> '{field}', 'null'::jsonb)")
}

/// The partial indexes of a collection's indexed field: `(name, statement)`, after the owner
/// (an owner's listing) and before it (the public listing).
pub fn field_indexes(collection: &CollectionName, field: &FieldName) -> [(String, String); 2] {
    let digest = Sha256::digest(format!("{collection}\n{field}").as_bytes());
    let stem = format!("rm_storage_ix_{}", &hex::encode(digest)[..16]);
    let expression = field_expression("value", field);
    // Names and fields are [a-z0-9_] and [A-Za-z0-9_]: safe inside the statement's literals.
    let only =
        format!("WHERE collection = '{collection}' AND valid_to IS NULL AND value IS NOT NULL");
    [
        (
            format!("{stem}_o"),
            format!(
                "CREATE INDEX IF NOT EXISTS {stem}_o ON rm_storage_versions (owner, ({expression}), key) {only}"
            ),
        ),
        (
            format!("{stem}_p"),
            format!(
                "CREATE INDEX IF NOT EXISTS {stem}_p ON rm_storage_versions (({expression}), owner, key) {only}"
            ),
        ),
    ]
}

/// Every version of every object (`rm_storage_versions`).
pub struct Versions;

#[async_trait]
impl Projection for Versions {
    fn name(&self) -> ProjectionName {
        STORAGE
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_storage_versions"]
    }

    fn bulk(&self) -> Option<Box<dyn Bulk>> {
        Some(Box::new(Rebuild {
            current: FoldMap::default(),
            closed: VERSION_ROWS.copy(),
            indexes: BTreeMap::new(),
            erased: Vec::new(),
        }))
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let mut objects: BTreeMap<ObjectId, Option<VersionRow>> = BTreeMap::new();
        for decoded in events {
            match decoded.event.get::<Event>() {
                Some(Event::CollectionDefined {
                    collection,
                    indexed,
                    ..
                }) => {
                    for field in indexed {
                        for (_, statement) in field_indexes(collection, field) {
                            sqlx::query(&statement)
                                .execute(&mut *tx)
                                .await
                                .with_context(|| format!("indexing {collection}.{field}"))?;
                        }
                    }
                }
                Some(event) => {
                    if let Some(object) = VersionRow::object_of(event) {
                        objects.insert(object, None);
                    }
                }
                None => {}
            }
        }
        let erased = questlog_projector::erasures(events);
        if objects.is_empty() && erased.is_empty() {
            return Ok(Vec::new());
        }
        load(tx, &mut objects).await?;
        // The versions the batch closes that were stored before it, and the new versions.
        let mut closed: Vec<VersionRow> = Vec::new();
        let mut new: BTreeMap<ObjectId, Vec<VersionRow>> = BTreeMap::new();
        let mut changes = Vec::new();
        for decoded in events {
            let Some(event) = decoded.event.get::<Event>() else {
                continue;
            };
            let Some(object) = VersionRow::object_of(event) else {
                continue;
            };
            let at = decoded.recorded.recorded_at;
            let position = decoded.position();
            let mine = new.entry(object.clone()).or_default();
            let row = if let Some(last) = mine.last_mut() {
                VersionRow::apply(Some(last), event, at, position)
            } else {
                let stored = objects.get_mut(&object).and_then(Option::as_mut);
                let row = VersionRow::apply(stored, event, at, position);
                if let Some(Some(stored)) = objects.get(&object) {
                    closed.push(stored.clone());
                }
                row
            };
            if let Some(row) = row {
                changes.push(row.change());
                mine.push(row);
            }
        }
        save(tx, &closed, new.values().flatten()).await?;
        for (player, position) in erased {
            changes.extend(erase(tx, player, position).await?);
        }
        Ok(changes)
    }
}

/// Drops the values of every version of `player`'s objects in the collections that are personal
/// as of its erasure at `position` (as the log defines them up to there), as a replay has them:
/// there, the sealed values open as erased.
async fn erase(
    tx: &mut PgConnection,
    player: uuid::Uuid,
    position: i64,
) -> anyhow::Result<Vec<Change>> {
    let scrubbed: Vec<(String, String)> = sqlx::query_as(
        "WITH defined AS ( \
             SELECT DISTINCT ON (stream_id) data->>'collection' AS collection, \
                    (data->>'personal')::boolean AS personal \
               FROM events WHERE event_type = 'collection_defined' AND position <= $2 \
              ORDER BY stream_id, position DESC) \
         UPDATE rm_storage_versions v SET value = NULL FROM defined d \
          WHERE d.personal AND v.collection = d.collection AND v.owner = $1 \
            AND v.value IS NOT NULL \
         RETURNING v.collection, v.key",
    )
    .bind(player.to_string())
    .bind(position)
    .fetch_all(&mut *tx)
    .await
    .context("erasing a player's personal objects")?;
    let mut objects = scrubbed;
    objects.sort_unstable();
    objects.dedup();
    // The current version of each reads as a deletion now.
    Ok(objects
        .into_iter()
        .map(|(collection, key)| Change {
            topic: TOPIC.topic(format!("{collection}:{player}")),
            key,
            op: ChangeOp::Delete,
            position,
        })
        .collect())
}

/// Loads the current version of each of `objects`.
async fn load(
    tx: &mut PgConnection,
    objects: &mut BTreeMap<ObjectId, Option<VersionRow>>,
) -> anyhow::Result<()> {
    let (collections, (owners, keys)): (Vec<&str>, (Vec<&str>, Vec<&str>)) = objects
        .keys()
        .map(|(c, o, k)| (c.as_str(), (o.as_str(), k.as_str())))
        .unzip();
    let found = sqlx::query(
        "SELECT v.collection, v.owner, v.key, v.version, v.op, v.value, v.by_id, v.written_at, \
                v.position, v.valid_to \
           FROM unnest($1::text[], $2::text[], $3::text[]) AS o(collection, owner, key) \
           JOIN rm_storage_versions v ON v.collection = o.collection AND v.owner = o.owner \
            AND v.key = o.key AND v.valid_to IS NULL",
    )
    .bind(&collections)
    .bind(&owners)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await
    .context("loading current versions")?;
    let mut loaded = Vec::with_capacity(found.len());
    for row in found {
        let op: String = row.try_get("op")?;
        loaded.push(VersionRow {
            collection: row.try_get("collection")?,
            owner: row.try_get("owner")?,
            key: row.try_get("key")?,
            version: row.try_get("version")?,
            op: Op::parse(&op).with_context(|| format!("a stored op {op:?}"))?,
            value: row.try_get("value")?,
            by: row.try_get("by_id")?,
            written_at: row.try_get("written_at")?,
            position: row.try_get("position")?,
            valid_to: row.try_get("valid_to")?,
        });
    }
    drop(collections);
    for row in loaded {
        let id = (row.collection.clone(), row.owner.clone(), row.key.clone());
        objects.insert(id, Some(row));
    }
    Ok(())
}

async fn save(
    tx: &mut PgConnection,
    closed: &[VersionRow],
    new: impl Iterator<Item = &VersionRow>,
) -> anyhow::Result<()> {
    if !closed.is_empty() {
        let collections: Vec<&str> = closed.iter().map(|r| r.collection.as_str()).collect();
        let owners: Vec<&str> = closed.iter().map(|r| r.owner.as_str()).collect();
        let keys: Vec<&str> = closed.iter().map(|r| r.key.as_str()).collect();
        let versions: Vec<i64> = closed.iter().map(|r| r.version).collect();
        let until: Vec<Option<i64>> = closed.iter().map(|r| r.valid_to).collect();
        sqlx::query(
            "UPDATE rm_storage_versions v SET valid_to = c.valid_to \
               FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
                    AS c(collection, owner, key, version, valid_to) \
              WHERE v.collection = c.collection AND v.owner = c.owner AND v.key = c.key \
                AND v.version = c.version",
        )
        .bind(&collections)
        .bind(&owners)
        .bind(&keys)
        .bind(&versions)
        .bind(&until)
        .execute(&mut *tx)
        .await
        .context("closing versions")?;
    }
    let new: Vec<&VersionRow> = new.collect();
    // Bound parameters per statement stay under Postgres' 65,535.
    for chunk in new.chunks(5_000) {
        VERSION_ROWS
            .insert(tx, chunk, |mut b, row| row.put(&mut b))
            .await?;
    }
    Ok(())
}

/// `rm_storage_versions`: every version of every object.
const VERSION_ROWS: Rows = Rows {
    table: "rm_storage_versions",
    columns: &[
        "collection",
        "owner",
        "key",
        "version",
        "op",
        "value",
        "by_id",
        "written_at",
        "position",
        "valid_to",
    ],
    key: &[],
    update: &[],
};

impl VersionRow {
    /// The version in [`VERSION_ROWS`]' columns.
    fn put(&self, out: &mut impl RowSink) {
        out.put(self.collection.clone())
            .put(self.owner.clone())
            .put(self.key.clone())
            .put(self.version)
            .put(self.op.as_str().to_owned())
            .put(self.value.clone())
            .put(self.by)
            .put(self.written_at)
            .put(self.position)
            .put(self.valid_to);
    }
}

/// A rebuild of every version, folded in memory by [`VersionRow::apply`]: each object's current
/// version is held, a version is encoded for `COPY` when the next one closes it and sent at each
/// flush; the indexed fields' indexes are built once the rows are in.
struct Rebuild {
    current: FoldMap<ObjectId, VersionRow>,
    closed: CopyRows,
    indexes: BTreeMap<String, String>,
    /// The players erased, with where: their values are dropped once every row is written.
    erased: Vec<(Uuid, i64)>,
}

#[async_trait]
impl Bulk for Rebuild {
    fn fold(&mut self, events: &[&Decoded]) -> anyhow::Result<()> {
        self.erased.extend(questlog_projector::erasures(events));
        let closed = &mut self.closed;
        for decoded in events {
            match decoded.event.get::<Event>() {
                Some(Event::CollectionDefined {
                    collection,
                    indexed,
                    ..
                }) => {
                    for field in indexed {
                        self.indexes.extend(field_indexes(collection, field));
                    }
                }
                Some(event) => {
                    let Some(object) = VersionRow::object_of(event) else {
                        continue;
                    };
                    let current = self.current.get_mut(&object);
                    let at = decoded.recorded.recorded_at;
                    if let Some(row) = VersionRow::apply(current, event, at, decoded.position()) {
                        if let Some(previous) = self.current.insert(object, row) {
                            closed.row(|line| previous.put(line));
                        }
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.closed.send(conn).await
    }

    async fn finish(mut self: Box<Self>, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.closed
            .send_all(conn, self.current.values(), |line, row| row.put(line))
            .await?;
        for (player, position) in &self.erased {
            erase(conn, *player, *position).await?;
        }
        for statement in self.indexes.values() {
            sqlx::query(statement)
                .execute(&mut *conn)
                .await
                .with_context(|| statement.clone())?;
        }
        Ok(())
    }
}
