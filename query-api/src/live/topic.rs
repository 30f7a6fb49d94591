//! What a live topic is to the hub and the connections: the traits a module implements for the
//! topics it registers ([`TopicKindReads`] parses a kind's names, [`Topic`] is one parsed topic),
//! and what their reads share ([`Reading`], [`Update`], [`span`]). The hub and the transport run
//! any registered topic; a new one is a module's registration, not a change here.
//!
//! Labels. Every snapshot and change carries a position at which its data is exactly what the
//! matching read answers `as_of` that position: a read model in a REPEATABLE READ snapshot
//! reflects the log up to its checkpoint in that snapshot, which may be past the announcement
//! that prompted the read, so the label comes from the snapshot, not from the announcement.
//!
//! - A topic read from one projection is exact at every position from the last event its data
//!   reflects up to the projection's checkpoint.
//! - A topic read from several projections at their checkpoints is exact from the last event of
//!   any part it reflects up to just before the first event of any part its projection has not
//!   applied (see [`span`]); when a lagging projection has yet to apply an event older than one
//!   another has, no position is exact: the hub sends nothing then (that event's own announcement
//!   brings the topic again), and a snapshot reads the topic as of the lower checkpoint instead.
//! - A topic whose changes are one row per event reads each change as that row as of its event's
//!   position, like the as-of reads: a client applying the changes in order holds the as-of
//!   answer at each one.
//!
//! A snapshot is labelled with the highest exact position it knows of (so that a resume from it
//! can be served from retention); a change with the last event it reflects where the rows say
//! which, so that a change a snapshot already holds is at or below the snapshot's label. Since
//! every label is exact, a change at or below what a client holds is never news to it.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::future::BoxFuture;
use questlog_bus::{Change, ChangeOp, ProjectionName, TopicKind};
use questlog_domain::Actor;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

use crate::error::ApiError;

/// The options a subscription carries beside its topics (`<name>=<value>` in the query, or the
/// ticket body's fields), by name. Only the names some registered topic kind declares are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Options(BTreeMap<String, String>);

impl Options {
    /// The option's raw value, if the subscription set it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// These options and `name` set to `value`.
    #[must_use]
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.set(name, value);
        self
    }
}

/// A kind of topic a module registers: how its names parse for a caller.
pub trait TopicKindReads: Send + Sync + 'static {
    /// The kind: the part of the name before any `:`.
    fn kind(&self) -> TopicKind;

    /// How a client writes a topic of the kind (`<kind>:<id>`), for the refusal of an unknown one.
    fn form(&self) -> &'static str;

    /// The subscription options the kind reads (they are accepted beside any topic).
    fn options(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks the options the kind reads, whichever topics the subscription names.
    ///
    /// # Errors
    /// A malformed (400) or out-of-range (422) option.
    fn check(&self, _options: &Options) -> Result<(), ApiError> {
        Ok(())
    }

    /// The topic `raw` names for `caller`, where `rest` is what follows `<kind>:` (`None` for a
    /// bare kind); `Ok(None)` when the kind has no topic of that shape (an unknown topic).
    ///
    /// # Errors
    /// 400 `invalid_topic` for a malformed name of the kind.
    fn parse(
        &self,
        raw: &str,
        rest: Option<&str>,
        caller: &Actor,
        options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError>;
}

/// One parsed topic: what a subscription follows. Its reads are the module's own read functions,
/// the ones its HTTP routes answer with.
pub trait Topic: Send + Sync + fmt::Debug + 'static {
    /// The topic's name in the events: as the client wrote it, with ids in canonical form.
    fn name(&self) -> String;

    /// What makes two topics one (the name, and any option that changes its data).
    fn key(&self) -> String {
        self.name()
    }

    /// Whether `actor` may follow the topic: the same rules as the matching read.
    ///
    /// # Errors
    /// 403 `forbidden` (or the read's own refusal).
    fn authorize(&self, _actor: &Actor) -> Result<(), ApiError> {
        Ok(())
    }

    /// The projections the topic is read from.
    fn projections(&self) -> &'static [ProjectionName];

    /// The announced changes that touch the topic.
    fn sources(&self) -> Vec<Source>;

    /// The topic's data in this snapshot, and the highest position as of which it is exactly the
    /// matching read.
    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>>;

    /// What `changes` (all touching this topic, from one announcement) made of it, read in this
    /// snapshot, in label order.
    fn changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<Vec<Update>, ApiError>>;
}

/// A parsed topic as the hub and the connections hold it: one topic per [`Topic::key`].
#[derive(Debug, Clone)]
pub struct LiveTopic {
    key: String,
    topic: Arc<dyn Topic>,
}

impl LiveTopic {
    pub fn new(topic: Arc<dyn Topic>) -> Self {
        Self {
            key: topic.key(),
            topic,
        }
    }

    pub fn topic(&self) -> &dyn Topic {
        self.topic.as_ref()
    }

    pub fn name(&self) -> String {
        self.topic.name()
    }

    pub fn projections(&self) -> &'static [ProjectionName] {
        self.topic.projections()
    }
}

impl PartialEq for LiveTopic {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for LiveTopic {}

impl Hash for LiveTopic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// Where a topic's changes come from: every announced change on `topic` (with `key`, when set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub topic: String,
    pub key: Option<String>,
}

impl Source {
    /// Every change announced on `topic`.
    pub fn all(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
        }
    }
}

/// One change of a topic, read once and sent to every subscriber of it.
#[derive(Debug, Clone)]
pub struct Update {
    pub key: String,
    pub op: ChangeOp,
    /// Its label: a position as of which `data` is exactly the matching read (see the module
    /// docs for which).
    pub position: i64,
    pub data: Value,
}

impl Update {
    /// An upsert of `data`, or a delete when there is none any more.
    pub fn of<T: Serialize>(key: String, position: i64, data: Option<T>) -> Self {
        Self {
            key,
            op: if data.is_some() {
                ChangeOp::Upsert
            } else {
                ChangeOp::Delete
            },
            position,
            data: data.map_or(Value::Null, |d| to_value(&d)),
        }
    }
}

/// The entities a topic's changes name by their UUID keys (a message, a player), each with the
/// position of its change, in position order, each change once: what a topic with one update per
/// changed entity reads, as of each change.
pub fn changed_ids(changes: &[Change]) -> Vec<(uuid::Uuid, i64)> {
    let mut at: Vec<(uuid::Uuid, i64)> = changes
        .iter()
        .filter_map(|c| Some((uuid::Uuid::parse_str(&c.key).ok()?, c.position)))
        .collect();
    at.sort_by_key(|(_, position)| *position);
    at.dedup();
    at
}

/// One update per entity of [`changed_ids`], keyed by its id, labelled with its change's
/// position: `rows` holds each one's data as of then (`None` once gone), in the same order.
pub fn updates_of<T: Serialize>(at: Vec<(uuid::Uuid, i64)>, rows: Vec<Option<T>>) -> Vec<Update> {
    at.into_iter()
        .zip(rows)
        .map(|((key, position), data)| Update::of(key.to_string(), position, data))
        .collect()
}

/// The refusal of a malformed topic name.
pub fn invalid_topic(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_topic", detail)
}

/// A read's answer as JSON. Serialising the reads' plain structs cannot fail.
pub fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Where the projections stand in one REPEATABLE READ snapshot, and what the topics read in it
/// share: each topic may keep a value of its own type here (read once per snapshot).
pub struct Reading {
    checkpoints: Vec<(String, i64)>,
    shared: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl Reading {
    /// Reads the checkpoints: the first thing a snapshot's transaction reads.
    pub async fn new(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let checkpoints = sqlx::query_as("SELECT projection, position FROM projection_checkpoints")
            .fetch_all(conn)
            .await?;
        Ok(Self {
            checkpoints,
            shared: HashMap::new(),
        })
    }

    /// `projection`'s checkpoint in this snapshot (0 before its first).
    pub fn checkpoint(&self, projection: ProjectionName) -> i64 {
        self.checkpoints
            .iter()
            .find(|(name, _)| name == projection.as_str())
            .map_or(0, |(_, position)| *position)
    }

    /// The value of type `T` a topic kept in this snapshot.
    pub fn shared<T: Any + Send + Clone>(&self) -> Option<T> {
        self.shared
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Keeps `value` for the other topics read in this snapshot.
    pub fn share<T: Any + Send>(&mut self, value: T) {
        self.shared.insert(TypeId::of::<T>(), Box::new(value));
    }
}

/// The positions as of which data read in one snapshot is exactly the as-of read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The last event the data reflects.
    pub from: i64,
    /// The highest position known to be exact.
    pub until: i64,
}

/// One projection's part of a topic's data, read in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The projection's checkpoint in the snapshot.
    pub checkpoint: i64,
    /// The last event of the part that the projection has applied (0: none).
    pub last: i64,
    /// The first event of the part that it has not applied, when one is in the snapshot's log
    /// below the furthest checkpoint of the parts.
    pub next: Option<i64>,
}

/// The positions at which parts read at different checkpoints are together exactly the as-of
/// answer: from the last event any part reflects, to just before the first event of a part its
/// projection has not applied, and no further than the furthest checkpoint (the snapshot knows
/// nothing beyond). `None` when there is none: a lagging projection has yet to apply an event
/// older than one another part reflects.
pub fn span(parts: &[Part]) -> Option<Span> {
    let from = parts.iter().map(|p| p.last).max().unwrap_or(0);
    let furthest = parts.iter().map(|p| p.checkpoint).max().unwrap_or(0);
    let until = parts
        .iter()
        .filter_map(|p| p.next)
        .map(|next| next - 1)
        .fold(furthest, i64::min);
    (from <= until).then_some(Span { from, until })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(checkpoint: i64, last: i64, next: Option<i64>) -> Part {
        Part {
            checkpoint,
            last,
            next,
        }
    }

    #[test]
    fn parts_read_at_one_checkpoint_are_exact_from_their_last_event_to_it() {
        assert_eq!(
            span(&[part(12, 9, None), part(12, 3, None)]),
            Some(Span { from: 9, until: 12 })
        );
    }

    #[test]
    fn a_lagging_part_with_nothing_left_to_apply_holds_up_to_the_furthest_checkpoint() {
        // The first part at 12 reflects its event 11; the second at 8 has no event in 9..=12.
        assert_eq!(
            span(&[part(12, 11, None), part(8, 3, None)]),
            Some(Span {
                from: 11,
                until: 12
            })
        );
    }

    #[test]
    fn the_span_ends_before_the_first_event_a_lagging_projection_has_not_applied() {
        // The second part at 8 has yet to apply its event 10; the first's last event is 9.
        assert_eq!(
            span(&[part(12, 9, None), part(8, 3, Some(10))]),
            Some(Span { from: 9, until: 9 })
        );
    }

    #[test]
    fn parts_that_never_stood_together_in_the_log_have_no_exact_position() {
        // The first part's event 11 is in, the second's 10 before it is not.
        assert_eq!(span(&[part(12, 11, None), part(8, 3, Some(10))]), None);
        // The other way round: the second's 13 is in, the first's 12 is not.
        assert_eq!(span(&[part(11, 9, Some(12)), part(14, 13, None)]), None);
    }
}
