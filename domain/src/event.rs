//! Events: immutable facts. A module declares its events as one serde enum ([`DomainEvent`]),
//! stored as its `type` and its `data` object with a schema version; the kernel carries them as
//! [`Event`], which any module can look into for the events it knows ([`Event::get`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A module's events: an enum serialised with `#[serde(tag = "type", content = "data")]`, one
/// variant per event type, every one a struct of plain values. Adding a variant is safe; changing
/// one means a new schema version and an upcast in [`DomainEvent::from_parts`].
pub trait DomainEvent:
    Any + Send + Sync + fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned
{
    /// The schema version every event of the module is written with today.
    const SCHEMA_VERSION: i32 = 1;

    /// Every event type the enum holds: the names the log stores.
    const TYPES: &'static [&'static str];

    /// Personal fields its events recorded in plain text before the kernel sealed personal data
    /// ([`crate::Personal`]): they read as erased once their subject is.
    const LEGACY_PERSONAL: &'static [crate::LegacyField] = &[];

    /// The stored `type` of this event.
    fn event_type(&self) -> &'static str;

    /// The `data` object stored for this event.
    fn data(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
            // Every variant is a struct of plain values: serialisation cannot fail.
            _ => Value::Null,
        }
    }

    /// Reads a stored event back from its parts.
    ///
    /// # Errors
    /// When the schema version is newer than this code, or the data does not fit.
    fn from_parts(
        event_type: &str,
        schema_version: i32,
        data: &Value,
    ) -> Result<Self, DecodeError> {
        if schema_version > Self::SCHEMA_VERSION {
            return Err(DecodeError(format!(
                "{event_type} has schema version {schema_version}, newer than this build ({})",
                Self::SCHEMA_VERSION
            )));
        }
        // The enum's two fields handed over tag first, from the stored data in place: serde
        // then picks the variant before it reads the data, with no copy of the data and no
        // buffering of it (which a map ordered `data` before `type` would cost).
        let tag = Value::String(event_type.to_owned());
        let fields = [("type", &tag), ("data", data)];
        <Self as serde::Deserialize>::deserialize(MapDeserializer::<_, serde_json::Error>::new(
            fields.into_iter(),
        ))
        .map_err(|e| DecodeError(format!("{event_type}: {e}")))
    }
}

/// The error of reading a stored event back.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode event: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One event of any module, decoded once and shared (cloning is a reference count).
#[derive(Clone)]
pub struct Event(Arc<dyn AnyEvent>);

trait AnyEvent: Send + Sync + fmt::Debug {
    fn event_type(&self) -> &str;
    fn schema_version(&self) -> i32;
    fn data(&self) -> Value;
    fn as_any(&self) -> &dyn Any;
    fn same(&self, other: &dyn AnyEvent) -> bool;
}

impl<E: DomainEvent> AnyEvent for E {
    fn event_type(&self) -> &str {
        DomainEvent::event_type(self)
    }
    fn schema_version(&self) -> i32 {
        E::SCHEMA_VERSION
    }
    fn data(&self) -> Value {
        DomainEvent::data(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same(&self, other: &dyn AnyEvent) -> bool {
        other.as_any().downcast_ref::<E>() == Some(self)
    }
}

/// An event of a type no module of this build registers: kept as stored, ignored by every fold.
#[derive(Debug, Clone, PartialEq)]
struct Unknown {
    event_type: String,
    schema_version: i32,
    data: Value,
}

impl AnyEvent for Unknown {
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn schema_version(&self) -> i32 {
        self.schema_version
    }
    fn data(&self) -> Value {
        self.data.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same(&self, other: &dyn AnyEvent) -> bool {
        other.as_any().downcast_ref::<Self>() == Some(self)
    }
}

impl Event {
    pub fn new<E: DomainEvent>(event: E) -> Self {
        Self(Arc::new(event))
    }

    /// An event of a type this build does not know, as stored.
    pub fn unknown(event_type: &str, schema_version: i32, data: Value) -> Self {
        Self(Arc::new(Unknown {
            event_type: event_type.to_owned(),
            schema_version,
            data,
        }))
    }

    /// The module's event, if this is one of `E`.
    pub fn get<E: DomainEvent>(&self) -> Option<&E> {
        self.0.as_any().downcast_ref()
    }

    pub fn event_type(&self) -> &str {
        self.0.event_type()
    }

    pub fn schema_version(&self) -> i32 {
        self.0.schema_version()
    }

    pub fn data(&self) -> Value {
        self.0.data()
    }
}

impl<E: DomainEvent> From<E> for Event {
    fn from(event: E) -> Self {
        Self::new(event)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.0.same(other.0.as_ref())
    }
}
