//! The storage's events, serde-stable: each is stored as its `type` and its `data` object.
//!
//! An object's events (`object_written`, `object_deleted`, `object_restored`) are on the object's
//! own stream and carry the version they make (the stream's version) and, for a write or a
//! restore, the whole value: every version is in the log, and a fold of one event needs nothing
//! but that event. An owner's `owner_keys_added` / `owner_keys_removed` (on its owner stream)
//! count its objects for the collection's quota.

use questlog_domain::values::PlayerId;
use questlog_domain::{DomainEvent, Personal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{CollectionName, FieldName, ObjectKey, Owner, Read, Write};

/// Every event the storage records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// An admin defined (or redefined) a collection; later writes must meet this definition.
    CollectionDefined {
        collection: CollectionName,
        read: Read,
        write: Write,
        max_bytes: u32,
        max_objects: u32,
        indexed: Vec<FieldName>,
        personal: bool,
        schema: Option<Value>,
    },
    /// A new version of an object, with its whole value.
    ObjectWritten {
        collection: CollectionName,
        owner: Owner,
        key: ObjectKey,
        version: u64,
        /// Sealed with the owner's key when the collection is personal.
        value: Personal<Map<String, Value>>,
        by: PlayerId,
    },
    /// The object was deleted (its history stays; the key may be written again).
    ObjectDeleted {
        collection: CollectionName,
        owner: Owner,
        key: ObjectKey,
        version: u64,
        by: PlayerId,
    },
    /// The value of an earlier version (`from_version`) written again as a new version.
    ObjectRestored {
        collection: CollectionName,
        owner: Owner,
        key: ObjectKey,
        version: u64,
        from_version: u64,
        value: Personal<Map<String, Value>>,
        by: PlayerId,
    },
    /// Objects that came to exist for an owner (created, or written again after a deletion).
    OwnerKeysAdded {
        collection: CollectionName,
        owner: Owner,
        keys: Vec<ObjectKey>,
    },
    /// Objects of an owner that were deleted.
    OwnerKeysRemoved {
        collection: CollectionName,
        owner: Owner,
        keys: Vec<ObjectKey>,
    },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &[
        "collection_defined",
        "object_written",
        "object_deleted",
        "object_restored",
        "owner_keys_added",
        "owner_keys_removed",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::CollectionDefined { .. } => "collection_defined",
            Self::ObjectWritten { .. } => "object_written",
            Self::ObjectDeleted { .. } => "object_deleted",
            Self::ObjectRestored { .. } => "object_restored",
            Self::OwnerKeysAdded { .. } => "owner_keys_added",
            Self::OwnerKeysRemoved { .. } => "owner_keys_removed",
        }
    }
}
