//! What the storage folds of its streams to decide: a collection's definition, an object's
//! versions, and how many objects an owner has in a collection.

use questlog_domain::{Event as Erased, StreamId, View};
use serde_json::{Map, Value};

use crate::event::Event;
use crate::schema::Schema;
use crate::values::{Access, FieldName};

/// A collection as defined last.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub access: Access,
    pub max_bytes: u32,
    pub max_objects: u32,
    pub indexed: Vec<FieldName>,
    pub personal: bool,
    pub schema: Option<Schema>,
}

/// A collection's stream folded: its definition, once defined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionState {
    pub definition: Option<Definition>,
}

impl CollectionState {
    pub fn evolve(&mut self, event: &Event) {
        if let Event::CollectionDefined {
            read,
            write,
            max_bytes,
            max_objects,
            indexed,
            personal,
            schema,
            ..
        } = event
        {
            self.definition = Some(Definition {
                access: Access {
                    read: *read,
                    write: *write,
                },
                max_bytes: *max_bytes,
                max_objects: *max_objects,
                indexed: indexed.clone(),
                personal: *personal,
                schema: schema.clone().map(Schema::recorded),
            });
        }
    }
}

impl View for CollectionState {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Erased) {
        if let Some(event) = event.get::<Event>() {
            Self::evolve(self, event);
        }
    }
}

/// An object's stream folded: each version, in order, as the event that made it (shared with
/// the log's decoded event, not copied), or `None` for a deletion.
#[derive(Debug, Clone, Default)]
pub struct ObjectState {
    versions: Vec<Option<Erased>>,
}

impl ObjectState {
    /// The latest version (0 before the first write).
    pub fn version(&self) -> u64 {
        self.versions.len() as u64
    }

    /// Whether the object exists now (written, and not deleted since).
    pub fn exists(&self) -> bool {
        self.versions.last().is_some_and(Option::is_some)
    }

    /// The value of `version`, when that version wrote one (it was not a deletion).
    pub fn value(&self, version: u64) -> Option<&Map<String, Value>> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        match self.versions.get(index)?.as_ref()?.get::<Event>()? {
            Event::ObjectWritten { value, .. } | Event::ObjectRestored { value, .. } => {
                value.value()
            }
            _ => None,
        }
    }

    /// The current value, if the object exists.
    pub fn current(&self) -> Option<&Map<String, Value>> {
        self.value(self.version())
    }
}

impl View for ObjectState {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, erased: &Erased) {
        match erased.get::<Event>() {
            Some(Event::ObjectWritten { .. } | Event::ObjectRestored { .. }) => {
                self.versions.push(Some(erased.clone()));
            }
            Some(Event::ObjectDeleted { .. }) => self.versions.push(None),
            _ => {}
        }
    }
}

/// How many objects an owner has in a collection now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerState {
    pub count: u64,
}

impl View for OwnerState {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Erased) {
        match event.get::<Event>() {
            Some(Event::OwnerKeysAdded { keys, .. }) => self.count += keys.len() as u64,
            Some(Event::OwnerKeysRemoved { keys, .. }) => {
                self.count = self.count.saturating_sub(keys.len() as u64);
            }
            _ => {}
        }
    }
}
