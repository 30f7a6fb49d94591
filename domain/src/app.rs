//! The kernel and its modules. A module (a game's rules, a feature such as storage, …) registers everything it
//! brings on one [`App`]: here its commands, event types and streams with the views it folds;
//! through the other kernel crates' extension traits its projections, read routes, live topics,
//! migrations and jobs. The binary lists the modules it runs; the kernel runs what is registered
//! and knows no feature.
//!
//! An [`App`] holds one part per registry type (each kernel crate keeps its own, see
//! [`App::part_mut`]), the way a Bevy app holds resources.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::command::{Command, Edge};
use crate::event::{DecodeError, DomainEvent, Event};
use crate::personal::LegacyField;
use crate::stream::{StreamId, StreamKind, StreamState, UnknownStream, View};
use crate::Rejection;

/// A feature: it registers what it brings on the app.
pub trait Module {
    /// The module's name (`questlog modules` lists them; a module added twice is built once).
    fn name(&self) -> &'static str;

    fn build(&self, app: &mut App);
}

/// The registries of the running modules, one part per type.
#[derive(Default)]
pub struct App {
    parts: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    modules: Vec<&'static str>,
}

impl App {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds `module` on this app, once.
    pub fn add_module(&mut self, module: &dyn Module) -> &mut Self {
        if !self.modules.contains(&module.name()) {
            self.modules.push(module.name());
            module.build(self);
        }
        self
    }

    /// The names of the modules built, in order.
    pub fn modules(&self) -> &[&'static str] {
        &self.modules
    }

    /// The part of type `T`, created empty on first use.
    ///
    /// # Panics
    /// Never: parts are stored by their own type id.
    pub fn part_mut<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.parts
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("a part is stored under its own type id")
    }

    /// The part of type `T`, if any module registered one.
    pub fn part<T: 'static>(&self) -> Option<&T> {
        self.parts.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The part of type `T` as registered (empty if none was), for the service that runs it.
    pub fn take<T: Default + Send + Sync + 'static>(&mut self) -> T {
        self.parts
            .remove(&TypeId::of::<T>())
            .and_then(|p| p.downcast().ok())
            .map_or_else(T::default, |p| *p)
    }

    /// The domain registry the write side, the projectors and the reads share.
    pub fn domain(&self) -> Arc<Domain> {
        Arc::new(self.part::<Domain>().cloned().unwrap_or_default())
    }

    /// Registers commands by their wire names, all parsed by `parse`.
    ///
    /// # Panics
    /// When another module registered one of the names: two modules cannot own one command
    /// (a module extends another's with [`App::extend_command`]).
    pub fn add_commands(&mut self, names: &'static [&'static str], parse: ParseFn) -> &mut Self {
        let domain = self.part_mut::<Domain>();
        for name in names {
            assert!(
                domain.commands.insert(name, Arc::new(parse)).is_none(),
                "command {name} is registered twice"
            );
            domain.command_names.push(name);
        }
        self
    }

    /// Registers the command `name`, extending the one a module registered under it before (if
    /// any): `extend` gets that parser and returns the one the name parses with from now on, so
    /// a later module can take over a name and hand the cases it does not know to the earlier
    /// owner (command names are one namespace).
    pub fn extend_command(
        &mut self,
        name: &'static str,
        extend: impl FnOnce(Option<Parser>) -> Parser,
    ) -> &mut Self {
        let domain = self.part_mut::<Domain>();
        let previous = domain.commands.remove(name);
        if previous.is_none() {
            domain.command_names.push(name);
        }
        domain.commands.insert(name, extend(previous));
        self
    }

    /// Registers a module's events: every type `E` holds decodes to it.
    ///
    /// # Panics
    /// When another module registered one of its types.
    pub fn add_events<E: DomainEvent>(&mut self) -> &mut Self {
        let domain = self.part_mut::<Domain>();
        domain.legacy.extend_from_slice(E::LEGACY_PERSONAL);
        for name in E::TYPES {
            let decode: DecodeFn = |t, v, data| E::from_parts(t, v, data).map(Event::new);
            assert!(
                domain.events.insert(name, decode).is_none(),
                "event type {name} is registered twice"
            );
        }
        self
    }

    /// Declares that the views of `kind`'s stream keyed by a player's id may name the player
    /// (`name` reads it from the stream's state): what an erasure's confirmation is checked
    /// against.
    pub fn add_player_name(&mut self, kind: StreamKind, name: NameFn) -> &mut Self {
        self.part_mut::<Domain>().names.push((kind, name));
        self
    }

    /// Registers a stream kind and which keys name a stream of it.
    ///
    /// # Panics
    /// When the kind is registered twice.
    pub fn add_stream(&mut self, kind: StreamKind, valid_key: fn(&str) -> bool) -> &mut Self {
        let domain = self.part_mut::<Domain>();
        assert!(
            domain
                .streams
                .insert(
                    kind.name(),
                    StreamDef {
                        kind,
                        valid_key,
                        views: Vec::new(),
                        from_latest: false,
                    }
                )
                .is_none(),
            "stream kind {kind} is registered twice"
        );
        self
    }

    /// Registers a view the module folds of every stream of `kind` (a kind any module declared).
    ///
    /// # Panics
    /// When `kind` is not registered (yet): a module adds the streams it folds after the modules
    /// that declare them.
    pub fn add_view<V: View>(&mut self, kind: StreamKind) -> &mut Self {
        let def = self
            .part_mut::<Domain>()
            .streams
            .get_mut(kind.name())
            .unwrap_or_else(|| panic!("stream kind {kind} is not registered"));
        def.views.push(|state, stream| state.push::<V>(stream));
        self
    }

    /// Declares that every view of `kind` — any module's — is a function of the stream's latest
    /// event alone: the writer then loads only that event of a stream it has not cached, however
    /// long the stream, and a command needing an older one names it
    /// ([`crate::Command::earlier_events`]).
    ///
    /// # Panics
    /// When `kind` is not registered (yet).
    pub fn fold_from_latest(&mut self, kind: StreamKind) -> &mut Self {
        self.part_mut::<Domain>()
            .streams
            .get_mut(kind.name())
            .unwrap_or_else(|| panic!("stream kind {kind} is not registered"))
            .from_latest = true;
        self
    }
}

/// Parses a command's body (its name is one the parser was registered for).
pub type ParseFn = fn(&str, &[u8], &Edge) -> Result<Box<dyn Command>, Rejection>;

/// A registered parser, as [`App::extend_command`] hands it over.
pub type Parser =
    Arc<dyn Fn(&str, &[u8], &Edge) -> Result<Box<dyn Command>, Rejection> + Send + Sync>;

type DecodeFn = fn(&str, i32, &serde_json::Value) -> Result<Event, DecodeError>;

/// Reads a player's name from the state of one of its streams.
pub type NameFn = fn(&StreamState) -> Option<String>;

#[derive(Clone)]
struct StreamDef {
    kind: StreamKind,
    valid_key: fn(&str) -> bool,
    views: Vec<fn(&mut StreamState, &StreamId)>,
    /// Its views fold from the latest event alone ([`App::fold_from_latest`]).
    from_latest: bool,
}

/// The commands, events and streams of the running modules.
#[derive(Clone, Default)]
pub struct Domain {
    commands: HashMap<&'static str, Parser>,
    command_names: Vec<&'static str>,
    events: HashMap<&'static str, DecodeFn>,
    streams: HashMap<&'static str, StreamDef>,
    legacy: Vec<LegacyField>,
    names: Vec<(StreamKind, NameFn)>,
}

impl Domain {
    /// Parses a command from its name and its raw JSON body, as `edge` sees it.
    ///
    /// # Errors
    /// `unknown_command` (not found) for a name no running module registers; the module's own
    /// refusals (`bad_request`, a value's code) for the body.
    pub fn parse(
        &self,
        name: &str,
        raw: &[u8],
        edge: &Edge,
    ) -> Result<Box<dyn Command>, Rejection> {
        let parse = self.commands.get(name).ok_or_else(|| {
            Rejection::not_found("unknown_command", format!("there is no command {name:?}"))
        })?;
        parse(name, raw, edge)
    }

    /// The names `POST /v1/commands/{name}` accepts, in registration order.
    pub fn command_names(&self) -> &[&'static str] {
        &self.command_names
    }

    /// Decodes a stored event. A type no running module registers is kept as stored and ignored
    /// by every fold.
    ///
    /// # Errors
    /// When a registered type's data does not fit, or its schema version is newer than this build.
    pub fn decode(
        &self,
        event_type: &str,
        schema_version: i32,
        data: &serde_json::Value,
    ) -> Result<Event, DecodeError> {
        match self.events.get(event_type) {
            Some(decode) => decode(event_type, schema_version, data),
            None => Ok(Event::unknown(event_type, schema_version, data.clone())),
        }
    }

    /// The personal fields the running modules' events may hold in plain text, from before
    /// sealing ([`DomainEvent::LEGACY_PERSONAL`]).
    pub fn legacy_personal(&self) -> &[LegacyField] {
        &self.legacy
    }

    /// The stream kinds whose player streams may name their player, and how to read the name
    /// ([`App::add_player_name`]).
    pub fn player_names(&self) -> &[(StreamKind, NameFn)] {
        &self.names
    }

    /// Whether a running module registers the event type.
    pub fn knows_event(&self, event_type: &str) -> bool {
        self.events.contains_key(event_type)
    }

    /// Parses a written stream id of a registered kind.
    ///
    /// # Errors
    /// When its kind is not registered or its key names no stream of the kind.
    pub fn stream(&self, written: &str) -> Result<StreamId, UnknownStream> {
        let (kind, key) = StreamId::split(written);
        self.streams
            .get(kind)
            .filter(|def| (def.valid_key)(key))
            .map(|def| def.kind.stream(key))
            .ok_or_else(|| UnknownStream(written.to_owned()))
    }

    /// Whether the views of `stream`'s kind fold from its latest event alone
    /// ([`App::fold_from_latest`]).
    pub fn folds_from_latest(&self, stream: &StreamId) -> bool {
        self.streams
            .get(stream.kind().name())
            .is_some_and(|def| def.from_latest)
    }

    /// The state of a stream with no events: every registered view of its kind, initial.
    pub fn initial(&self, stream: &StreamId) -> StreamState {
        let mut state = StreamState::new();
        if let Some(def) = self.streams.get(stream.kind().name()) {
            for push in &def.views {
                push(&mut state, stream);
            }
        }
        state
    }

    /// Folds a stream's events from its initial state.
    pub fn fold<'a>(
        &self,
        stream: &StreamId,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> StreamState {
        let mut state = self.initial(stream);
        for event in events {
            state.evolve(event);
        }
        state
    }
}
