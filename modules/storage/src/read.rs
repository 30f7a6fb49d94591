//! The storage's reads: one object, its versions, an owner's objects in a collection (filtered,
//! sorted, paginated, with a total), a public collection across owners, each live or `as_of` any
//! position; and the `storage:<collection>:<owner|me>` live topic, whose snapshot is the owner's
//! first page and whose changes are one object each, as of its event.
//!
//! Every read decides who may see what with the collection's definition as of the position it
//! answers at (its stream folded from the log up to there): a `read: owner` collection shows an
//! owner's objects to that owner and admins only (403 to anyone else), a `read: public` one to
//! every player.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_bus::{Change, ProjectionName, TopicKind};
use questlog_domain::values::{storable, storable_json};
use questlog_domain::{Actor, App, DomainEvent as _, Role};
use questlog_query_api::as_of::events_until;
use questlog_query_api::live::{
    invalid_topic, to_value, Options, Reading, Source, Topic, TopicKindReads, Update,
};
use questlog_query_api::params::{query, At, Consistency, ReadParams};
use questlog_query_api::snapshot::answer;
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::event::Event;
use crate::personal;
use crate::projection::field_expression;
use crate::state::{CollectionState, Definition};
use crate::values::{CollectionName, FieldName, ObjectKey, Owner, Read};
use crate::{collection_stream, STORAGE, TOPIC};
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

/// The projections every storage read uses.
const READS: &[ProjectionName] = &[STORAGE];

/// The page size unless told otherwise.
pub const DEFAULT_LIMIT: i64 = 20;
/// The largest page; more (or less than 1) is 422 `invalid_limit`.
pub const MAX_LIMIT: i64 = 100;

/// The module's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(object, versions, owner_listing, public_listing))]
struct ApiDoc;

/// Registers the storage's routes and topic.
pub(crate) fn register(app: &mut App) {
    app.add_read_routes(
        Router::new()
            .route("/v1/storage/{collection}", get(public_listing))
            .route("/v1/storage/{collection}/{owner}", get(owner_listing))
            .route("/v1/storage/{collection}/{owner}/{key}", get(object))
            .route(
                "/v1/storage/{collection}/{owner}/{key}/versions",
                get(versions),
            ),
    )
    .add_topic(StorageTopics)
    .add_read_projections(READS);
    app.add_api_docs(ApiDoc::openapi());
}

/// The condition on `rm_storage_versions` (aliased `v`) for the versions valid `at`.
fn push_valid(at: At, q: &mut QueryBuilder<'_, Postgres>) {
    match at {
        At::Now => {
            q.push(" AND v.valid_to IS NULL");
        }
        At::AsOf(p) => {
            q.push(" AND v.position <= ")
                .push_bind(p)
                .push(" AND (v.valid_to IS NULL OR v.valid_to > ")
                .push_bind(p)
                .push(")");
        }
    }
}

/// A collection's definition as of `position`, folded from its stream in the log.
///
/// # Errors
/// 404 `unknown_collection` when it was not defined by then.
pub(crate) async fn definition_at(
    conn: &mut PgConnection,
    collection: &CollectionName,
    position: i64,
) -> Result<Definition, ApiError> {
    let recorded = events_until(
        conn,
        &[collection_stream(collection).to_string()],
        position,
        &[],
    )
    .await?;
    let mut state = CollectionState::default();
    for e in recorded {
        let event = Event::from_parts(&e.event_type, e.schema_version, &e.data)
            .map_err(ApiError::Decode)?;
        state.evolve(&event);
    }
    state.definition.ok_or_else(|| {
        ApiError::not_found(
            "unknown_collection",
            format!("there is no collection {collection}"),
        )
    })
}

/// Whether `actor` may read `owner`'s objects of a collection defined so.
fn may_read(actor: &Actor, definition: &Definition, owner: Owner) -> Result<(), ApiError> {
    if actor.role == Role::Admin
        || definition.access.read == Read::Public
        || owner.is(actor.identity)
    {
        Ok(())
    } else {
        Err(ApiError::Client(Problem::forbidden(
            "this collection's objects are read by their owner only",
        )))
    }
}

fn collection_of(raw: &str) -> Result<CollectionName, ApiError> {
    CollectionName::parse(raw).map_err(|r| ApiError::invalid(r.code, r.detail))
}

fn owner_of(raw: &str, actor: &Actor) -> Result<Owner, ApiError> {
    if raw == "me" {
        return Ok(Owner::Player(actor.identity));
    }
    Owner::parse(raw).map_err(|r| ApiError::invalid(r.code, r.detail))
}

fn key_of(raw: &str) -> Result<ObjectKey, ApiError> {
    ObjectKey::parse(raw).map_err(|r| ApiError::invalid(r.code, r.detail))
}

/// A listing's query string beside its filters on indexed fields (`field=v`, `field=a,b`,
/// `field[gte]=v`, `field[lte]=v`, `field[contains]=text`), for the API's document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation: the listing reads the pairs as they come.
struct ListingParams {
    /// 1–100 (default 20).
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// An indexed field to sort on (default: by key).
    sort: Option<String>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
}

/// The public listing's query string beside the owner listing's.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation, as [`ListingParams`].
struct OwnerParam {
    /// Only this owner's objects: a player id, `me` or `game`.
    owner: Option<String>,
}

/// One object as every read shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StoredObject)]
pub struct ObjectOut {
    collection: String,
    owner: String,
    key: String,
    version: i64,
    #[schema(value_type = Object)]
    value: Value,
    updated_at: DateTime<Utc>,
    position: i64,
}

#[derive(sqlx::FromRow)]
struct ObjectRow {
    collection: String,
    owner: String,
    key: String,
    version: i64,
    value: Option<Value>,
    written_at: DateTime<Utc>,
    position: i64,
}

impl ObjectRow {
    fn out(self, definition: &Definition) -> ObjectOut {
        ObjectOut {
            collection: self.collection,
            owner: self.owner,
            key: self.key,
            version: self.version,
            value: personal::open(definition.personal, self.value.unwrap_or(Value::Null)),
            updated_at: self.written_at,
            position: self.position,
        }
    }
}

const OBJECT_COLUMNS: &str =
    "SELECT v.collection, v.owner, v.key, v.version, v.value, v.written_at, v.position \
       FROM rm_storage_versions v";

/// The object `(collection, owner, key)` as of `at`, if it exists then.
async fn read_object(
    conn: &mut PgConnection,
    collection: &CollectionName,
    owner: Owner,
    key: &str,
    at: At,
    definition: &Definition,
) -> Result<Option<ObjectOut>, sqlx::Error> {
    let mut q = QueryBuilder::new(OBJECT_COLUMNS);
    q.push(" WHERE v.collection = ")
        .push_bind(collection.as_str())
        .push(" AND v.owner = ")
        .push_bind(owner.to_string())
        .push(" AND v.key = ")
        .push_bind(key.to_owned())
        .push(" AND v.value IS NOT NULL");
    push_valid(at, &mut q);
    let row: Option<ObjectRow> = q.build_query_as().fetch_optional(&mut *conn).await?;
    Ok(row.map(|r| r.out(definition)))
}

/// `GET /v1/storage/{collection}/{owner|me}/{key}`.
#[utoipa::path(get, path = "/v1/storage/{collection}/{owner}/{key}", tag = "storage",
    params(("collection" = String, Path), ("owner" = String, Path, description = "A player id, `me` or `game`"), ("key" = String, Path), ReadParams),
    summary = "An object's latest version", responses((status = 200, body = ObjectOut)))]
async fn object(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let Path((collection, owner, key)) = path?;
    let (collection, owner, key) = (
        collection_of(&collection)?,
        owner_of(&owner, &actor)?,
        key_of(&key)?,
    );
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let definition = definition_at(&mut tx, &collection, position).await?;
    may_read(&actor, &definition, owner)?;
    let found = read_object(&mut tx, &collection, owner, key.as_str(), at, &definition).await?;
    tx.commit().await?;
    let found = found.ok_or_else(|| {
        ApiError::not_found(
            "object_not_found",
            format!("{owner} has no object {key} in {collection}"),
        )
    })?;
    Ok(answer(position, &found))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionsParams {
    /// 1–100 (default 20).
    limit: Option<i64>,
    /// The `next` of the newer page: versions before this one.
    before: Option<i64>,
}

/// One version as the history shows it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = ObjectVersion)]
struct VersionOut {
    version: i64,
    value: Option<Value>,
    written_at: DateTime<Utc>,
    position: i64,
    by: Uuid,
    op: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ObjectVersions)]
struct VersionsPage {
    collection: String,
    owner: String,
    key: String,
    versions: Vec<VersionOut>,
    /// Pass as `before` for the older page; `null` at the first version.
    next: Option<i64>,
}

fn limit(raw: Option<i64>) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "invalid_limit",
            format!("limit is 1 to {MAX_LIMIT}"),
        ))
    }
}

/// `GET /v1/storage/{collection}/{owner|me}/{key}/versions?limit=20&before=<version>`: every
/// version, newest first (as of `as_of`: those written by then).
#[utoipa::path(get, path = "/v1/storage/{collection}/{owner}/{key}/versions", tag = "storage",
    params(("collection" = String, Path), ("owner" = String, Path, description = "A player id, `me` or `game`"), ("key" = String, Path), ReadParams, VersionsParams),
    summary = "Every version of an object, newest first",
    responses((status = 200, body = VersionsPage)))]
async fn versions(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    params: Result<Query<VersionsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let params = query(params)?;
    let limit = limit(params.limit)?;
    let Path((collection, owner, key)) = path?;
    let (collection, owner, key) = (
        collection_of(&collection)?,
        owner_of(&owner, &actor)?,
        key_of(&key)?,
    );
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let definition = definition_at(&mut tx, &collection, position).await?;
    may_read(&actor, &definition, owner)?;
    let mut q = QueryBuilder::new(
        "SELECT v.version, v.value, v.written_at, v.position, v.by_id AS by, v.op \
           FROM rm_storage_versions v WHERE v.collection = ",
    );
    q.push_bind(collection.as_str())
        .push(" AND v.owner = ")
        .push_bind(owner.to_string())
        .push(" AND v.key = ")
        .push_bind(key.as_str().to_owned());
    if let At::AsOf(p) = at {
        q.push(" AND v.position <= ").push_bind(p);
    }
    if let Some(before) = params.before {
        q.push(" AND v.version < ").push_bind(before);
    }
    q.push(" ORDER BY v.version DESC LIMIT ").push_bind(limit);
    let mut versions: Vec<VersionOut> = q.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    if versions.is_empty() && params.before.is_none() {
        return Err(ApiError::not_found(
            "object_not_found",
            format!("{owner} has no object {key} in {collection}"),
        ));
    }
    for v in &mut versions {
        v.value = v
            .value
            .take()
            .map(|value| personal::open(definition.personal, value));
    }
    let full = i64::try_from(versions.len()).unwrap_or(i64::MAX) == limit;
    let next = versions
        .last()
        .filter(|v| full && v.version > 1)
        .map(|v| v.version);
    Ok(answer(
        position,
        &VersionsPage {
            collection: collection.to_string(),
            owner: owner.to_string(),
            key: key.to_string(),
            versions,
            next,
        },
    ))
}

/// A condition on an indexed field.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    /// Equal to one of these JSON values.
    OneOf(Vec<Value>),
    /// At least / at most this number or string (compared as its JSON type).
    AtLeast(Value),
    AtMost(Value),
    /// A string holding this text, whatever its case.
    Contains(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    field: FieldName,
    condition: Condition,
}

/// What a listing's query string asks for, beside the shared parameters.
#[derive(Debug, Clone, PartialEq)]
struct Listing {
    limit: i64,
    after: Option<Vec<Value>>,
    sort: Option<FieldName>,
    descending: bool,
    owner: Option<String>,
    filters: Vec<Filter>,
}

/// The query parameters every read shares, which are not filters.
const SHARED: &[&str] = &["min_position", "wait_ms", "as_of"];

fn invalid_filter(detail: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_filter", detail)
}

/// The JSON values a filter's text stands for: the string itself, and the number, boolean or
/// null it spells, if it spells one (`level=10` finds 10 and "10").
fn spelled(raw: &str) -> Vec<Value> {
    let mut values = vec![Value::String(raw.to_owned())];
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        if v.is_number() || v.is_boolean() || v.is_null() {
            values.push(v);
        }
    }
    values
}

/// A bound of a range filter: a number when it spells one, else a string.
fn bound(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v) if v.is_number() => v,
        _ => Value::String(raw.to_owned()),
    }
}

impl Listing {
    /// Parses a listing's query string against the collection's indexed fields (`public`: the
    /// listing across owners, which also takes `owner=`).
    fn parse(
        pairs: &[(String, String)],
        definition: &Definition,
        public: bool,
    ) -> Result<Self, ApiError> {
        let mut listing = Self {
            limit: DEFAULT_LIMIT,
            after: None,
            sort: None,
            descending: false,
            owner: None,
            filters: Vec::new(),
        };
        let indexed = |name: &str| -> Result<FieldName, ApiError> {
            FieldName::parse(name)
                .ok()
                .filter(|f| definition.indexed.contains(f))
                .ok_or_else(|| {
                    invalid_filter(format!(
                        "{name:?} is not an indexed field of this collection"
                    ))
                })
        };
        for (name, value) in pairs {
            if !storable(name) || !storable(value) {
                return Err(invalid_filter(
                    "a query parameter cannot hold a NUL character (U+0000)",
                ));
            }
            match name.as_str() {
                "limit" => {
                    let raw = value.parse::<i64>().map_err(|_| {
                        ApiError::invalid("invalid_limit", format!("limit is 1 to {MAX_LIMIT}"))
                    })?;
                    listing.limit = limit(Some(raw))?;
                }
                "after" => listing.after = Some(decode_cursor(value)?),
                "sort" => listing.sort = Some(indexed(value)?),
                "order" => {
                    listing.descending = match value.as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => {
                            return Err(ApiError::invalid("invalid_order", "order is asc or desc"))
                        }
                    }
                }
                "owner" if public => listing.owner = Some(value.clone()),
                n if SHARED.contains(&n) => {}
                n => {
                    let (field, op) = match n.split_once('[') {
                        Some((field, rest)) => (
                            field,
                            rest.strip_suffix(']')
                                .ok_or_else(|| invalid_filter(format!("{n:?} is not a filter")))?,
                        ),
                        None => (n, ""),
                    };
                    let field = indexed(field)?;
                    let condition = match op {
                        "" => Condition::OneOf(value.split(',').flat_map(spelled).collect()),
                        "gte" => Condition::AtLeast(bound(value)),
                        "lte" => Condition::AtMost(bound(value)),
                        "contains" => Condition::Contains(value.clone()),
                        other => {
                            return Err(invalid_filter(format!(
                                "{other:?} is not a filter operator (gte, lte, contains)"
                            )))
                        }
                    };
                    listing.filters.push(Filter { field, condition });
                }
            }
        }
        Ok(listing)
    }

    /// The expression rows are ordered by first.
    fn sort_expression(&self) -> String {
        self.sort.as_ref().map_or_else(
            || "to_jsonb(v.key)".to_owned(),
            |f| field_expression("v.value", f),
        )
    }
}

/// Appends the listing's conditions (collection, owner, validity, filters) to `q`.
fn push_conditions(
    q: &mut QueryBuilder<'_, Postgres>,
    collection: &CollectionName,
    owner: Option<&str>,
    at: At,
    listing: &Listing,
) {
    // The name as a literal (it is [a-z0-9_]): a partial index of the collection is usable only
    // when the planner sees which collection, which a bound parameter of a generic plan hides.
    q.push(format!(" WHERE v.collection = '{collection}'"));
    if let Some(owner) = owner {
        q.push(" AND v.owner = ").push_bind(owner.to_owned());
    }
    q.push(" AND v.value IS NOT NULL");
    push_valid(at, q);
    for filter in &listing.filters {
        let expression = field_expression("v.value", &filter.field);
        match &filter.condition {
            Condition::OneOf(values) => {
                q.push(format!(" AND {expression} = ANY("))
                    .push_bind(values.clone())
                    .push("::jsonb[])");
            }
            Condition::AtLeast(v) | Condition::AtMost(v) => {
                let op = if matches!(filter.condition, Condition::AtLeast(_)) {
                    ">="
                } else {
                    "<="
                };
                let kind = if v.is_number() { "number" } else { "string" };
                q.push(format!(" AND {expression} {op} "))
                    .push_bind(v.clone())
                    .push(format!("::jsonb AND jsonb_typeof({expression}) = '{kind}'"));
            }
            Condition::Contains(text) => {
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                q.push(format!(" AND jsonb_typeof({expression}) = 'string' AND ({expression} #>> '{{}}') ILIKE "))
                    .push_bind(format!("%{escaped}%"));
            }
        }
    }
}

/// A page of a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ObjectPage)]
pub struct Page {
    objects: Vec<ObjectOut>,
    total: i64,
    /// Pass as `after` for the next page; `null` on the last.
    next: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    object: ObjectRow,
    sort_value: Value,
}

fn encode_cursor(parts: &[Value]) -> String {
    hex::encode(Value::Array(parts.to_vec()).to_string())
}

fn decode_cursor(raw: &str) -> Result<Vec<Value>, ApiError> {
    hex::decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<Value>>(&bytes).ok())
        .filter(|parts| (2..=3).contains(&parts.len()) && parts.iter().all(storable_json))
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_cursor",
                "after is a cursor a listing answered as next",
            )
        })
}

/// A page of `collection`'s objects (of `owner`, or across owners), as of `at`: the read behind
/// both listings and the live topic's snapshot.
async fn read_page(
    conn: &mut PgConnection,
    collection: &CollectionName,
    owner: Option<&str>,
    at: At,
    listing: &Listing,
    definition: &Definition,
) -> Result<Page, ApiError> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM rm_storage_versions v");
    push_conditions(&mut count, collection, owner, at, listing);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;

    let sort = listing.sort_expression();
    // Ties on the sorted value are broken by owner (across owners) and key, in the same order.
    let tail: &[&str] = if owner.is_some() {
        &["v.key"]
    } else if listing.sort.is_some() {
        &["v.owner", "v.key"]
    } else {
        &["v.owner"]
    };
    let direction = if listing.descending { "DESC" } else { "ASC" };
    let mut q = QueryBuilder::new(format!(
        "SELECT v.collection, v.owner, v.key, v.version, v.value, v.written_at, v.position, \
                {sort} AS sort_value FROM rm_storage_versions v"
    ));
    push_conditions(&mut q, collection, owner, at, listing);
    if let Some(after) = &listing.after {
        if after.len() != 1 + tail.len() {
            return Err(ApiError::invalid(
                "invalid_cursor",
                "after is a cursor a listing answered as next",
            ));
        }
        let columns = std::iter::once(sort.as_str())
            .chain(tail.iter().copied())
            .collect::<Vec<_>>()
            .join(", ");
        q.push(format!(
            " AND ({columns}) {} (",
            if listing.descending { "<" } else { ">" }
        ));
        let mut parts = q.separated(", ");
        parts
            .push_bind(after[0].clone())
            .push_unseparated("::jsonb");
        for part in &after[1..] {
            parts.push_bind(part.as_str().unwrap_or_default().to_owned());
        }
        q.push(")");
    }
    let order = std::iter::once(sort.as_str())
        .chain(tail.iter().copied())
        .map(|c| format!("{c} {direction}"))
        .collect::<Vec<_>>()
        .join(", ");
    q.push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(listing.limit);
    let rows: Vec<ListedRow> = q.build_query_as().fetch_all(&mut *conn).await?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == listing.limit;
    let next = rows.last().filter(|_| full).map(|last| {
        let mut parts = vec![last.sort_value.clone()];
        for column in tail {
            parts.push(Value::String(if *column == "v.owner" {
                last.object.owner.clone()
            } else {
                last.object.key.clone()
            }));
        }
        encode_cursor(&parts)
    });
    Ok(Page {
        objects: rows.into_iter().map(|r| r.object.out(definition)).collect(),
        total,
        next,
    })
}

/// `GET /v1/storage/{collection}/{owner|me}` with `limit`, `after`, `sort`, `order` and filters.
#[utoipa::path(get, path = "/v1/storage/{collection}/{owner}", tag = "storage",
    params(("collection" = String, Path), ("owner" = String, Path, description = "A player id, `me` or `game`"), ReadParams, ListingParams),
    summary = "An owner's objects, filtered on indexed fields, a page at a time",
    responses((status = 200, body = Page)))]
async fn owner_listing(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    path: Result<Path<(String, String)>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let pairs = query(pairs)?;
    let Path((collection, owner)) = path?;
    let (collection, owner) = (collection_of(&collection)?, owner_of(&owner, &actor)?);
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let definition = definition_at(&mut tx, &collection, position).await?;
    may_read(&actor, &definition, owner)?;
    let listing = Listing::parse(&pairs, &definition, false)?;
    let page = read_page(
        &mut tx,
        &collection,
        Some(&owner.to_string()),
        at,
        &listing,
        &definition,
    )
    .await?;
    tx.commit().await?;
    Ok(answer(position, &page))
}

/// `GET /v1/storage/{collection}`: a `read: public` collection across owners (any collection for
/// an admin), with the owner listing's parameters and `owner=`.
#[utoipa::path(get, path = "/v1/storage/{collection}", tag = "storage",
    params(("collection" = String, Path), ReadParams, ListingParams, OwnerParam),
    summary = "A public collection's objects across owners",
    responses((status = 200, body = Page)))]
async fn public_listing(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    path: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let pairs = query(pairs)?;
    let Path(collection) = path?;
    let collection = collection_of(&collection)?;
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let definition = definition_at(&mut tx, &collection, position).await?;
    if definition.access.read != Read::Public && actor.role != Role::Admin {
        return Err(ApiError::Client(Problem::forbidden(
            "only a public collection is listed across owners",
        )));
    }
    let mut listing = Listing::parse(&pairs, &definition, true)?;
    let owner = listing
        .owner
        .take()
        .map(|raw| owner_of(&raw, &actor).map(|o| o.to_string()))
        .transpose()?;
    let page = read_page(
        &mut tx,
        &collection,
        owner.as_deref(),
        at,
        &listing,
        &definition,
    )
    .await?;
    tx.commit().await?;
    Ok(answer(position, &page))
}

/// The `storage` topic kind: `storage:<collection>:<owner|me>`.
struct StorageTopics;

impl TopicKindReads for StorageTopics {
    fn kind(&self) -> TopicKind {
        TOPIC
    }

    fn form(&self) -> &'static str {
        "storage:<collection>:<owner|me>"
    }

    fn parse(
        &self,
        raw: &str,
        rest: Option<&str>,
        caller: &Actor,
        _options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        let Some(rest) = rest else {
            return Ok(None);
        };
        let (collection, owner) = rest.split_once(':').ok_or_else(|| {
            invalid_topic(format!(
                "{raw:?}: a storage topic is storage:<collection>:<owner|me>"
            ))
        })?;
        let collection = CollectionName::parse(collection)
            .map_err(|r| invalid_topic(format!("{raw:?}: {}", r.detail)))?;
        let owner = if owner == "me" {
            Owner::Player(caller.identity)
        } else {
            Owner::parse(owner).map_err(|r| invalid_topic(format!("{raw:?}: {}", r.detail)))?
        };
        Ok(Some(Arc::new(StorageTopic {
            collection,
            owner,
            subscriber: *caller,
        })))
    }
}

/// One owner's objects in one collection.
#[derive(Debug, Clone)]
struct StorageTopic {
    collection: CollectionName,
    owner: Owner,
    /// Who subscribed: the snapshot checks the collection's read rule for them.
    subscriber: Actor,
}

impl Topic for StorageTopic {
    fn name(&self) -> String {
        TOPIC.topic(format!("{}:{}", self.collection, self.owner))
    }

    /// One per subscriber: whether it may read the owner's objects is decided by its snapshot
    /// (its owner and admins always may; anyone else while the collection is `read: public`,
    /// which needs the definition from the log), so a topic is never shared with a subscriber
    /// that snapshot did not admit.
    fn key(&self) -> String {
        format!("{}:{}", self.name(), self.subscriber.identity)
    }

    fn projections(&self) -> &'static [ProjectionName] {
        READS
    }

    fn sources(&self) -> Vec<Source> {
        vec![Source::all(self.name())]
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let position = reading.checkpoint(STORAGE);
            let definition = definition_at(conn, &self.collection, position).await?;
            may_read(&self.subscriber, &definition, self.owner)?;
            let listing = Listing::parse(&[], &definition, false)?;
            let page = read_page(
                conn,
                &self.collection,
                Some(&self.owner.to_string()),
                At::Now,
                &listing,
                &definition,
            )
            .await?;
            Ok((position, to_value(&page)))
        }
        .boxed()
    }

    fn changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        _reading: &'a mut Reading,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<Vec<Update>, ApiError>> {
        async move {
            let mut at: Vec<(String, i64)> = changes
                .iter()
                .map(|c| (c.key.clone(), c.position))
                .collect();
            at.sort_by_key(|(_, position)| *position);
            at.dedup();
            let mut updates = Vec::with_capacity(at.len());
            for (key, position) in at {
                let definition = definition_at(conn, &self.collection, position).await?;
                let object = read_object(
                    conn,
                    &self.collection,
                    self.owner,
                    &key,
                    At::AsOf(position),
                    &definition,
                )
                .await?;
                updates.push(Update::of(key, position, object));
            }
            Ok(updates)
        }
        .boxed()
    }
}
