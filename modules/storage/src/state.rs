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

/// An object's stream folded from its latest event alone (the kind is folded from its latest
/// event, [`questlog_domain::App::fold_from_latest`]): its version, and the event that wrote
/// the current value (shared with the log's decoded event, not copied), if the object exists.
/// However many versions an object has, a writer that has not cached it reads one event; a
/// restore names the version it needs ([`questlog_domain::Command::earlier_events`]).
#[derive(Debug, Clone, Default)]
pub struct ObjectState {
    version: u64,
    current: Option<Erased>,
}

impl ObjectState {
    /// The latest version (0 before the first write).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the object exists now (written, and not deleted since).
    pub fn exists(&self) -> bool {
        self.current.is_some()
    }

    /// The current value, if the object exists.
    pub fn current(&self) -> Option<&Map<String, Value>> {
        written_value(self.current.as_ref()?)
    }
}

/// The value an event of an object's stream wrote: `None` for a deletion.
pub fn written_value(event: &Erased) -> Option<&Map<String, Value>> {
    match event.get::<Event>()? {
        Event::ObjectWritten { value, .. } | Event::ObjectRestored { value, .. } => value.value(),
        _ => None,
    }
}

impl View for ObjectState {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, erased: &Erased) {
        match erased.get::<Event>() {
            Some(Event::ObjectWritten { version, .. } | Event::ObjectRestored { version, .. }) => {
                self.version = *version;
                self.current = Some(erased.clone());
            }
            Some(Event::ObjectDeleted { version, .. }) => {
                self.version = *version;
                self.current = None;
            }
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
