//! The storage's commands as clients send them, parsed at the edge into its values, and their
//! decisions against the collection's definition, the object's versions and the owner's count.

use std::any::Any;
use std::collections::BTreeSet;

use questlog_domain::values::{storable_json, PlayerId};
use questlog_domain::{body, Actor, Context, Edge, Event as Erased, Rejection, Role, StreamId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::event::Event;
use crate::personal;
use crate::schema::Schema;
use crate::state::{written_value, CollectionState, Definition, ObjectState, OwnerState};
use crate::values::{CollectionName, FieldName, ObjectKey, Owner, Read, Write};
use crate::{collection_stream, object_stream, owner_stream};

/// The largest `max_bytes` a collection may set, and its default.
pub const MAX_BYTES: u32 = 1_048_576;
pub const DEFAULT_MAX_BYTES: u32 = 65_536;
/// The largest `max_objects` (per owner) a collection may set, and its default.
pub const MAX_OBJECTS: u32 = 10_000;
pub const DEFAULT_MAX_OBJECTS: u32 = 100;
/// The most fields a collection indexes.
pub const MAX_INDEXED: usize = 8;
/// The most keys one `delete_objects` names.
pub const MAX_BULK: usize = 100;

/// The names `POST /v1/commands/{name}` accepts for the storage.
pub const COMMAND_NAMES: &[&str] = &[
    "define_collection",
    "put_object",
    "delete_object",
    "delete_objects",
    "restore_object",
];

/// A storage command that passed parsing: every value in it is valid on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    DefineCollection {
        collection: CollectionName,
        read: Read,
        write: Write,
        max_bytes: u32,
        max_objects: u32,
        indexed: Vec<FieldName>,
        personal: bool,
        schema: Option<Value>,
    },
    PutObject {
        collection: CollectionName,
        owner: Owner,
        key: ObjectKey,
        value: Map<String, Value>,
        /// `Some(0)`: the object must not exist.
        expected_version: Option<u64>,
    },
    DeleteObject {
        collection: CollectionName,
        owner: Owner,
        key: ObjectKey,
        expected_version: Option<u64>,
    },
    DeleteObjects {
        collection: CollectionName,
        owner: Owner,
        /// Distinct, in the order first named.
        keys: Vec<ObjectKey>,
    },
    RestoreObject {
        collection: CollectionName,
        owner: Owner,
        key: ObjectKey,
        version: u64,
    },
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DefineBody {
    collection: String,
    read: Option<Read>,
    write: Option<Write>,
    max_bytes: Option<i64>,
    max_objects: Option<i64>,
    /// At most 8 top-level fields listings filter and sort on.
    indexed: Option<Vec<String>>,
    /// Values are personal data, erased with the player.
    personal: Option<bool>,
    /// A JSON Schema (2020-12) every written value must meet.
    #[schema(value_type = Option<Object>)]
    schema: Option<Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PutBody {
    collection: String,
    owner: Option<String>,
    /// 1–128 of `[A-Za-z0-9_.:-]`.
    key: String,
    /// A JSON object.
    #[schema(value_type = Object)]
    value: Value,
    /// 0: the object must not exist; n: its latest version must be n.
    expected_version: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    collection: String,
    owner: Option<String>,
    key: String,
    expected_version: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteManyBody {
    collection: String,
    owner: Option<String>,
    keys: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    collection: String,
    owner: Option<String>,
    key: String,
    version: i64,
}

/// The bodies of the storage commands, for the API's document.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    use questlog_web::openapi::CommandDoc;
    vec![
        CommandDoc::of::<DefineBody>("define_collection", "Define or redefine a collection")
            .admin(),
        CommandDoc::of::<PutBody>("put_object", "Write an object's next version"),
        CommandDoc::of::<DeleteBody>("delete_object", "Delete an object (its history stays)"),
        CommandDoc::of::<DeleteManyBody>("delete_objects", "Delete some of the owner's objects"),
        CommandDoc::of::<RestoreBody>(
            "restore_object",
            "Write an earlier version's value as the next version",
        ),
    ]
}

/// The owner a body names (`me`, `game` or an identity), the caller when it names none.
fn owner(raw: Option<&str>, caller: PlayerId) -> Result<Owner, Rejection> {
    match raw {
        None | Some("me") => Ok(Owner::Player(caller)),
        Some(raw) => Owner::parse(raw),
    }
}

fn in_range(
    raw: Option<i64>,
    default: u32,
    max: u32,
    code: &'static str,
    what: &str,
) -> Result<u32, Rejection> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    u32::try_from(raw)
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| Rejection::invalid(code, format!("{what} is 1 to {max}")))
}

fn expected(raw: Option<i64>) -> Result<Option<u64>, Rejection> {
    raw.map(|v| {
        u64::try_from(v).map_err(|_| {
            Rejection::invalid(
                "invalid_version",
                "a version is 0 or more (0: the object must not exist)",
            )
        })
    })
    .transpose()
}

/// A value as a command carries it: a JSON object the log can store.
fn object_value(value: Value) -> Result<Map<String, Value>, Rejection> {
    let Value::Object(map) = value else {
        return Err(Rejection::invalid(
            "invalid_value",
            "value must be a JSON object",
        ));
    };
    if !storable_json(&Value::Object(map.clone())) {
        return Err(Rejection::invalid(
            "invalid_value",
            "value cannot hold a NUL character (U+0000) in any key or string",
        ));
    }
    Ok(map)
}

impl Command {
    /// Parses a command from its name and its raw JSON body, as `edge` sees it.
    ///
    /// # Errors
    /// `unknown_command` for a name the storage does not know, `bad_request` for a body of the
    /// wrong shape, and a value's own code (`invalid_collection`, `invalid_key`, …) for an invalid
    /// value.
    pub fn parse(name: &str, raw: &[u8], edge: &Edge) -> Result<Self, Rejection> {
        Ok(match name {
            "define_collection" => {
                let b: DefineBody = body(raw)?;
                let indexed_raw = b.indexed.unwrap_or_default();
                if indexed_raw.len() > MAX_INDEXED {
                    return Err(Rejection::invalid(
                        "invalid_indexed",
                        format!("a collection indexes at most {MAX_INDEXED} fields"),
                    ));
                }
                let mut indexed = Vec::with_capacity(indexed_raw.len());
                for raw in &indexed_raw {
                    let field = FieldName::parse(raw)?;
                    if indexed.contains(&field) {
                        return Err(Rejection::invalid(
                            "invalid_indexed",
                            format!("{field} is indexed twice"),
                        ));
                    }
                    indexed.push(field);
                }
                let schema = b.schema.filter(|s| !s.is_null());
                if let Some(schema) = &schema {
                    if !storable_json(schema) {
                        return Err(Rejection::invalid(
                            "invalid_schema",
                            "a schema cannot hold a NUL character (U+0000)",
                        ));
                    }
                    Schema::parse(schema).map_err(|e| {
                        Rejection::invalid(
                            "invalid_schema",
                            format!("not a usable JSON Schema 2020-12: {e}"),
                        )
                    })?;
                }
                Self::DefineCollection {
                    collection: CollectionName::parse(&b.collection)?,
                    read: b.read.unwrap_or(Read::Owner),
                    write: b.write.unwrap_or(Write::Owner),
                    max_bytes: in_range(
                        b.max_bytes,
                        DEFAULT_MAX_BYTES,
                        MAX_BYTES,
                        "invalid_max_bytes",
                        "max_bytes",
                    )?,
                    max_objects: in_range(
                        b.max_objects,
                        DEFAULT_MAX_OBJECTS,
                        MAX_OBJECTS,
                        "invalid_max_objects",
                        "max_objects",
                    )?,
                    indexed,
                    personal: b.personal.unwrap_or(false),
                    schema,
                }
            }
            "put_object" => {
                let b: PutBody = body(raw)?;
                Self::PutObject {
                    collection: CollectionName::parse(&b.collection)?,
                    owner: owner(b.owner.as_deref(), edge.caller)?,
                    key: ObjectKey::parse(&b.key)?,
                    value: object_value(b.value)?,
                    expected_version: expected(b.expected_version)?,
                }
            }
            "delete_object" => {
                let b: DeleteBody = body(raw)?;
                Self::DeleteObject {
                    collection: CollectionName::parse(&b.collection)?,
                    owner: owner(b.owner.as_deref(), edge.caller)?,
                    key: ObjectKey::parse(&b.key)?,
                    expected_version: expected(b.expected_version)?,
                }
            }
            "delete_objects" => {
                let b: DeleteManyBody = body(raw)?;
                if b.keys.is_empty() || b.keys.len() > MAX_BULK {
                    return Err(Rejection::invalid(
                        "invalid_keys",
                        format!("keys names 1 to {MAX_BULK} keys"),
                    ));
                }
                let mut seen = BTreeSet::new();
                let mut keys = Vec::with_capacity(b.keys.len());
                for raw in &b.keys {
                    let key = ObjectKey::parse(raw)?;
                    if seen.insert(key.clone()) {
                        keys.push(key);
                    }
                }
                Self::DeleteObjects {
                    collection: CollectionName::parse(&b.collection)?,
                    owner: owner(b.owner.as_deref(), edge.caller)?,
                    keys,
                }
            }
            "restore_object" => {
                let b: RestoreBody = body(raw)?;
                let version = u64::try_from(b.version)
                    .ok()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| {
                        Rejection::invalid("invalid_version", "a version is 1 or more")
                    })?;
                Self::RestoreObject {
                    collection: CollectionName::parse(&b.collection)?,
                    owner: owner(b.owner.as_deref(), edge.caller)?,
                    key: ObjectKey::parse(&b.key)?,
                    version,
                }
            }
            other => {
                return Err(Rejection::not_found(
                    "unknown_command",
                    format!("there is no command {other:?}"),
                ))
            }
        })
    }

    /// The kernel's parser for the storage's names.
    pub(crate) fn parse_boxed(
        name: &str,
        raw: &[u8],
        edge: &Edge,
    ) -> Result<Box<dyn questlog_domain::Command>, Rejection> {
        Self::parse(name, raw, edge).map(|c| Box::new(c) as Box<dyn questlog_domain::Command>)
    }

    fn collection(&self) -> &CollectionName {
        match self {
            Self::DefineCollection { collection, .. }
            | Self::PutObject { collection, .. }
            | Self::DeleteObject { collection, .. }
            | Self::DeleteObjects { collection, .. }
            | Self::RestoreObject { collection, .. } => collection,
        }
    }
}

/// The collection's definition, or 404 `unknown_collection`.
fn definition<'c>(
    ctx: &'c Context<'_>,
    collection: &CollectionName,
) -> Result<&'c Definition, Rejection> {
    ctx.view::<CollectionState>(&collection_stream(collection))
        .definition
        .as_ref()
        .ok_or_else(|| {
            Rejection::not_found(
                "unknown_collection",
                format!("there is no collection {collection}"),
            )
        })
}

/// Whether `actor` may write `owner`'s objects of a collection defined so: an admin may write
/// any; a player only its own, and only where the collection lets players write.
fn may_write(actor: &Actor, definition: &Definition, owner: Owner) -> Result<(), Rejection> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    if definition.access.write == Write::Server {
        return Err(Rejection::forbidden(
            "forbidden",
            "only the server (an admin) writes this collection",
        ));
    }
    if !owner.is(actor.identity) {
        return Err(Rejection::forbidden(
            "forbidden",
            "a player writes only its own objects",
        ));
    }
    Ok(())
}

/// The 409 a write that expected another version gets: the current version and value, to merge.
fn version_conflict(object: &ObjectState, definition: &Definition, expected: u64) -> Rejection {
    let value = object.current().map_or(Value::Null, |v| {
        personal::open(definition.personal, Value::Object(v.clone()))
    });
    Rejection::conflict(
        "version_conflict",
        format!(
            "expected version {expected}, but the object is at version {}{}",
            object.version(),
            if object.exists() {
                ""
            } else {
                " (it does not exist)"
            }
        ),
    )
    .with(
        "current",
        json!({ "version": object.version(), "value": value }),
    )
}

/// Whether `expected` names the object's state now: its latest version, or 0 while it does not
/// exist (never written, or deleted).
fn expectation_holds(object: &ObjectState, expected: Option<u64>) -> bool {
    match expected {
        None => true,
        Some(0) => !object.exists(),
        Some(v) => v == object.version(),
    }
}

/// Checks a value a write would record against the collection: its size, then its schema.
fn admissible(definition: &Definition, value: &Map<String, Value>) -> Result<(), Rejection> {
    if personal::reserved(value) {
        return Err(Rejection::invalid(
            "reserved_value",
            "an object whose one member is \"$personal\" or \"$sealed\" is reserved",
        ));
    }
    let as_value = Value::Object(value.clone());
    let bytes = serde_json::to_vec(&as_value).map_or(usize::MAX, |b| b.len());
    if bytes > definition.max_bytes as usize {
        return Err(Rejection::too_large(
            "object_too_large",
            format!(
                "the value is {bytes} bytes of JSON; this collection takes at most {}",
                definition.max_bytes
            ),
        ));
    }
    if let Some(schema) = &definition.schema {
        let violations = schema.violations(&as_value);
        if !violations.is_empty() {
            return Err(Rejection::invalid(
                "schema_violation",
                format!(
                    "the value does not meet the collection's schema ({} errors)",
                    violations.len()
                ),
            )
            .with("errors", json!(violations)));
        }
    }
    Ok(())
}

/// A new object needs room in its owner's quota.
fn room(owner: &OwnerState, definition: &Definition) -> Result<(), Rejection> {
    if owner.count >= u64::from(definition.max_objects) {
        return Err(Rejection::conflict(
            "quota_exceeded",
            format!(
                "this owner has {} objects in the collection, its limit",
                definition.max_objects
            ),
        ));
    }
    Ok(())
}

impl questlog_domain::Command for Command {
    fn name(&self) -> &'static str {
        match self {
            Self::DefineCollection { .. } => "define_collection",
            Self::PutObject { .. } => "put_object",
            Self::DeleteObject { .. } => "delete_object",
            Self::DeleteObjects { .. } => "delete_objects",
            Self::RestoreObject { .. } => "restore_object",
        }
    }

    fn admin_only(&self) -> bool {
        matches!(self, Self::DefineCollection { .. })
    }

    fn earlier_events(&self, _actor: &Actor) -> Vec<(StreamId, u64)> {
        match self {
            Self::RestoreObject {
                collection,
                owner,
                key,
                version,
            } => vec![(object_stream(collection, *owner, key), *version)],
            _ => Vec::new(),
        }
    }

    fn streams(&self, _actor: &Actor) -> Vec<StreamId> {
        let collection = self.collection();
        let mut streams = vec![collection_stream(collection)];
        match self {
            Self::DefineCollection { .. } => {}
            Self::PutObject { owner, key, .. }
            | Self::DeleteObject { owner, key, .. }
            | Self::RestoreObject { owner, key, .. } => {
                streams.push(owner_stream(collection, *owner));
                streams.push(object_stream(collection, *owner, key));
            }
            Self::DeleteObjects { owner, keys, .. } => {
                streams.push(owner_stream(collection, *owner));
                streams.extend(keys.iter().map(|k| object_stream(collection, *owner, k)));
            }
        }
        streams
    }

    #[allow(clippy::too_many_lines)]
    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Erased)>, Rejection> {
        let by = ctx.actor.identity;
        match self {
            Self::DefineCollection {
                collection,
                read,
                write,
                max_bytes,
                max_objects,
                indexed,
                personal,
                schema,
            } => Ok(vec![(
                collection_stream(collection),
                Erased::new(Event::CollectionDefined {
                    collection: collection.clone(),
                    read: *read,
                    write: *write,
                    max_bytes: *max_bytes,
                    max_objects: *max_objects,
                    indexed: indexed.clone(),
                    personal: *personal,
                    schema: schema.clone(),
                }),
            )]),
            Self::PutObject {
                collection,
                owner,
                key,
                value,
                expected_version,
            } => {
                let definition = definition(ctx, collection)?;
                may_write(&ctx.actor, definition, *owner)?;
                admissible(definition, value)?;
                let stream = object_stream(collection, *owner, key);
                let object = ctx.view::<ObjectState>(&stream);
                if !expectation_holds(object, *expected_version) {
                    return Err(version_conflict(
                        object,
                        definition,
                        expected_version.unwrap_or(0),
                    ));
                }
                let mut events = Vec::with_capacity(2);
                if !object.exists() {
                    let owner_state = ctx.view::<OwnerState>(&owner_stream(collection, *owner));
                    room(owner_state, definition)?;
                    events.push(added(collection, *owner, key));
                }
                events.push((
                    stream,
                    Erased::new(Event::ObjectWritten {
                        collection: collection.clone(),
                        owner: *owner,
                        key: key.clone(),
                        version: object.version() + 1,
                        value: personal::seal(definition.personal, *owner, value.clone()),
                        by,
                    }),
                ));
                Ok(events)
            }
            Self::DeleteObject {
                collection,
                owner,
                key,
                expected_version,
            } => {
                let definition = definition(ctx, collection)?;
                may_write(&ctx.actor, definition, *owner)?;
                let stream = object_stream(collection, *owner, key);
                let object = ctx.view::<ObjectState>(&stream);
                if !object.exists() {
                    return Err(Rejection::not_found(
                        "object_not_found",
                        format!("{owner} has no object {key} in {collection}"),
                    ));
                }
                if !expectation_holds(object, *expected_version) {
                    return Err(version_conflict(
                        object,
                        definition,
                        expected_version.unwrap_or(0),
                    ));
                }
                Ok(vec![
                    (
                        owner_stream(collection, *owner),
                        Erased::new(Event::OwnerKeysRemoved {
                            collection: collection.clone(),
                            owner: *owner,
                            keys: vec![key.clone()],
                        }),
                    ),
                    (
                        stream,
                        Erased::new(Event::ObjectDeleted {
                            collection: collection.clone(),
                            owner: *owner,
                            key: key.clone(),
                            version: object.version() + 1,
                            by,
                        }),
                    ),
                ])
            }
            Self::DeleteObjects {
                collection,
                owner,
                keys,
            } => {
                let definition = definition(ctx, collection)?;
                may_write(&ctx.actor, definition, *owner)?;
                let mut events = Vec::new();
                let mut removed = Vec::new();
                for key in keys {
                    let stream = object_stream(collection, *owner, key);
                    let object = ctx.view::<ObjectState>(&stream);
                    if !object.exists() {
                        continue;
                    }
                    events.push((
                        stream,
                        Erased::new(Event::ObjectDeleted {
                            collection: collection.clone(),
                            owner: *owner,
                            key: key.clone(),
                            version: object.version() + 1,
                            by,
                        }),
                    ));
                    removed.push(key.clone());
                }
                if !removed.is_empty() {
                    events.push((
                        owner_stream(collection, *owner),
                        Erased::new(Event::OwnerKeysRemoved {
                            collection: collection.clone(),
                            owner: *owner,
                            keys: removed,
                        }),
                    ));
                }
                Ok(events)
            }
            Self::RestoreObject {
                collection,
                owner,
                key,
                version,
            } => {
                let definition = definition(ctx, collection)?;
                may_write(&ctx.actor, definition, *owner)?;
                let stream = object_stream(collection, *owner, key);
                let object = ctx.view::<ObjectState>(&stream);
                let Some(value) = ctx.event(&stream, *version).and_then(written_value) else {
                    return Err(Rejection::not_found(
                        "version_not_found",
                        if *version > object.version() {
                            format!(
                                "{key} has no version {version} (its latest is {})",
                                object.version()
                            )
                        } else {
                            format!("version {version} of {key} is a deletion; it has no value to restore")
                        },
                    ));
                };
                let opened = personal::open(definition.personal, Value::Object(value.clone()));
                let Value::Object(restored) = opened else {
                    return Err(Rejection::not_found(
                        "version_not_found",
                        format!("version {version} of {key} has no value to restore"),
                    ));
                };
                admissible(definition, &restored)?;
                let mut events = Vec::with_capacity(2);
                if !object.exists() {
                    let owner_state = ctx.view::<OwnerState>(&owner_stream(collection, *owner));
                    room(owner_state, definition)?;
                    events.push(added(collection, *owner, key));
                }
                events.push((
                    stream,
                    Erased::new(Event::ObjectRestored {
                        collection: collection.clone(),
                        owner: *owner,
                        key: key.clone(),
                        version: object.version() + 1,
                        from_version: *version,
                        value: personal::seal(definition.personal, *owner, restored),
                        by,
                    }),
                ));
                Ok(events)
            }
        }
    }

    fn result(&self, events: &[Erased]) -> Option<Value> {
        match self {
            Self::DeleteObjects { .. } => {
                let deleted = events
                    .iter()
                    .filter(|e| matches!(e.get::<Event>(), Some(Event::ObjectDeleted { .. })))
                    .count();
                Some(json!({ "deleted": deleted }))
            }
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The owner-stream event of an object coming to exist.
fn added(collection: &CollectionName, owner: Owner, key: &ObjectKey) -> (StreamId, Erased) {
    (
        owner_stream(collection, owner),
        Erased::new(Event::OwnerKeysAdded {
            collection: collection.clone(),
            owner,
            keys: vec![key.clone()],
        }),
    )
}
