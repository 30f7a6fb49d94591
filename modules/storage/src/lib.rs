//! Versioned storage: collections of JSON objects owned by a player or by the game (cloud saves,
//! characters, a shared world's state). An admin defines a collection (who reads and writes it,
//! its limits, the fields listings filter and sort on, an optional JSON Schema); its objects are
//! written, deleted and restored by commands, every write an event on the object's own stream, so
//! every version stays readable. [`Storage`] registers on the kernel its events, commands, stream
//! kinds and their views, the `storage` projection (every version of every object, with the
//! indexes each collection asks for), the read routes under `/v1/storage` and the `storage:` live
//! topic. It needs no other module.

pub mod command;
pub mod event;
pub mod personal;
pub mod projection;
pub mod read;
pub mod schema;
pub mod state;
pub mod values;

#[cfg(test)]
mod tests;

use questlog_bus::{ProjectionName, TopicKind};
use questlog_domain::{App, Module, StreamId, StreamKind};
use questlog_projector::ProjectorExt as _;
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;

pub use command::{Command, COMMAND_NAMES};
pub use event::Event;
pub use state::{CollectionState, Definition, ObjectState, OwnerState};
pub use values::{Access, CollectionName, FieldName, ObjectKey, Owner, Read, Write};

/// A collection's definition (`storage_collection-<collection>`).
pub const COLLECTION: StreamKind = StreamKind::new("storage_collection");
/// One object: every version of it (`storage_object-<collection>:<owner>:<key>`).
pub const OBJECT: StreamKind = StreamKind::new("storage_object");
/// Which objects one owner has in one collection, for its quota
/// (`storage_owner-<collection>:<owner>`).
pub const OWNER: StreamKind = StreamKind::new("storage_owner");

/// The read model: every version of every object.
pub const STORAGE: ProjectionName = ProjectionName::new("storage");
/// The live topic: `storage:<collection>:<owner>`.
pub const TOPIC: TopicKind = TopicKind::new("storage");

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The stream of a collection's definition.
pub fn collection_stream(collection: &CollectionName) -> StreamId {
    COLLECTION.stream(collection.as_str())
}

/// The stream of one object.
pub fn object_stream(collection: &CollectionName, owner: Owner, key: &ObjectKey) -> StreamId {
    OBJECT.stream(format!("{collection}:{owner}:{key}"))
}

/// The stream counting one owner's objects in a collection.
pub fn owner_stream(collection: &CollectionName, owner: Owner) -> StreamId {
    OWNER.stream(format!("{collection}:{owner}"))
}

/// The storage module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage;

impl Module for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn build(&self, app: &mut App) {
        app.add_events::<Event>()
            .add_commands(COMMAND_NAMES, Command::parse_boxed)
            .add_command_docs(command::docs())
            .add_stream(COLLECTION, |key| CollectionName::parse(key).is_ok())
            .add_view::<CollectionState>(COLLECTION)
            .add_stream(OBJECT, |key| values::split_object(key).is_some())
            .add_view::<ObjectState>(OBJECT)
            .fold_from_latest(OBJECT)
            .add_stream(OWNER, |key| values::split_owner(key).is_some())
            .add_view::<OwnerState>(OWNER);
        app.add_projection(projection::Versions);
        read::register(app);
        app.add_migrations(self.name(), &MIGRATIONS);
    }
}
