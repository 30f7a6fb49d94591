//! Streams: the unit of consistency. Every event belongs to exactly one stream, and a command's
//! decision is checked against the versions of the streams it read. A stream's id is its kind
//! (a type a module declares once, [`StreamKind`]) and a key: `<kind>-<key>`, or the kind alone
//! for a stream of which there is one.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;

use uuid::Uuid;

use crate::event::Event;

/// The kind of a stream, declared once by the module that owns it and used by every producer and
/// parser of its ids, so that a stream id cannot drift between crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKind(&'static str);

impl StreamKind {
    /// A kind named `name`: lowercase ASCII letters and `_`, never `-` (it ends the kind in an id).
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            assert!(
                bytes[i].is_ascii_lowercase() || bytes[i] == b'_',
                "a stream kind is lowercase letters and _"
            );
            i += 1;
        }
        Self(name)
    }

    pub const fn name(self) -> &'static str {
        self.0
    }

    /// The stream of this kind with `key` (empty for the kind's one stream).
    pub fn stream(self, key: impl Into<String>) -> StreamId {
        StreamId {
            kind: self,
            key: Key::of(key.into()),
        }
    }

    /// The stream of this kind keyed by `id`: the same stream as `self.stream(id.to_string())`,
    /// named without writing the id out.
    pub fn uuid(self, id: Uuid) -> StreamId {
        StreamId {
            kind: self,
            key: Key::Uuid(id),
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The id of a stream, written `<kind>-<key>`, or `<kind>` when the key is empty.
///
/// Streams are named for every command the writer decides (the streams it reads, the views it
/// looks up, the streams its events land on), so the key is held typed: a key that is a UUID
/// written the canonical way (lowercase, hyphenated) is held as the UUID — naming such a stream
/// neither allocates nor hashes text —, any other key as its text. Both ways of naming one
/// stream give one value ([`StreamKind::stream`] recognises the written UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    kind: StreamKind,
    key: Key,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    /// The kind's one stream.
    None,
    Uuid(Uuid),
    Text(Box<str>),
}

impl Key {
    fn of(key: String) -> Self {
        if key.is_empty() {
            return Self::None;
        }
        if key.len() == uuid::fmt::Hyphenated::LENGTH {
            if let Ok(id) = Uuid::try_parse(&key) {
                let mut canonical = [0; uuid::fmt::Hyphenated::LENGTH];
                if *id.hyphenated().encode_lower(&mut canonical) == *key {
                    return Self::Uuid(id);
                }
            }
        }
        Self::Text(key.into_boxed_str())
    }
}

impl StreamId {
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// The key as written (empty for the kind's one stream).
    pub fn key(&self) -> Cow<'_, str> {
        match &self.key {
            Key::None => Cow::Borrowed(""),
            Key::Uuid(id) => Cow::Owned(id.to_string()),
            Key::Text(text) => Cow::Borrowed(text),
        }
    }

    /// Splits a written id into its kind's name and its key (the kind ends at the first `-`).
    pub fn split(written: &str) -> (&str, &str) {
        written.split_once('-').unwrap_or((written, ""))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Key::None => f.write_str(self.kind.0),
            Key::Uuid(id) => write!(f, "{}-{id}", self.kind.0),
            Key::Text(text) => write!(f, "{}-{text}", self.kind.0),
        }
    }
}

/// The error of parsing a stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStream(pub String);

impl fmt::Display for UnknownStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a stream id: {:?}", self.0)
    }
}

impl std::error::Error for UnknownStream {}

/// What a module folds from the events of one kind of stream to decide its commands: a pure
/// function of the stream's events, in order. Several modules may fold the same stream, each into
/// its own view, and each view ignores the events it does not know.
pub trait View: Any + Clone + Send + Sync + fmt::Debug {
    /// The view of a stream with no events.
    fn initial(stream: &StreamId) -> Self;

    /// Applies one event of the stream.
    fn evolve(&mut self, event: &Event);
}

trait AnyView: Send + Sync + fmt::Debug {
    fn evolve(&mut self, event: &Event);
    fn as_any(&self) -> &dyn Any;
    fn clone_box(&self) -> Box<dyn AnyView>;
}

impl<V: View> AnyView for V {
    fn evolve(&mut self, event: &Event) {
        View::evolve(self, event);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn clone_box(&self) -> Box<dyn AnyView> {
        Box::new(self.clone())
    }
}

/// The folded state of one stream: every view that the running modules fold of its kind.
pub struct StreamState {
    views: Vec<(TypeId, Box<dyn AnyView>)>,
}

impl StreamState {
    pub(crate) fn new() -> Self {
        Self { views: Vec::new() }
    }

    pub(crate) fn push<V: View>(&mut self, stream: &StreamId) {
        self.views
            .push((TypeId::of::<V>(), Box::new(V::initial(stream))));
    }

    /// The view of type `V`, if a running module folds it for this stream's kind.
    pub fn view<V: View>(&self) -> Option<&V> {
        self.views
            .iter()
            .find(|(id, _)| *id == TypeId::of::<V>())
            .and_then(|(_, v)| v.as_any().downcast_ref())
    }

    /// Applies one event of this stream to every view.
    pub fn evolve(&mut self, event: &Event) {
        for (_, view) in &mut self.views {
            view.evolve(event);
        }
    }
}

impl Clone for StreamState {
    fn clone(&self) -> Self {
        Self {
            views: self
                .views
                .iter()
                .map(|(id, v)| (*id, v.clone_box()))
                .collect(),
        }
    }
}

impl fmt::Debug for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.views.iter().map(|(_, v)| v))
            .finish()
    }
}
