//! What modules register on the read side ([`Reads`], the query API's part of the
//! [`App`](questlog_domain::App)): their read routes, their live topics, how each stream kind's
//! folded state renders as JSON for the admin stream view and `questlog state`, and the
//! projections their reads follow. [`QueryApp`] is the extension trait they register through.

use std::sync::Arc;

use axum::Router;
use questlog_bus::ProjectionName;
use questlog_domain::{App, StreamId, StreamKind, StreamState, View};
use serde_json::Value;

use crate::live::{Options, TopicKindReads};
use crate::QueryState;

type StateJsonFn = Arc<dyn Fn(&StreamState) -> Option<Value> + Send + Sync>;

/// The read side's registry part.
#[derive(Clone, Default)]
pub struct Reads {
    routes: Vec<Router<QueryState>>,
    topics: Vec<Arc<dyn TopicKindReads>>,
    states: Vec<(StreamKind, StateJsonFn)>,
    projections: Vec<ProjectionName>,
}

impl Reads {
    /// The part the running modules registered on `app` (empty when none did).
    pub fn of(app: &App) -> Arc<Self> {
        Arc::new(app.part::<Self>().cloned().unwrap_or_default())
    }

    /// Every module's read routes, merged.
    pub(crate) fn routes(&self) -> Router<QueryState> {
        self.routes
            .iter()
            .cloned()
            .fold(Router::new(), Router::merge)
    }

    /// The registered topic kinds, in registration order.
    pub fn topic_kinds(&self) -> &[Arc<dyn TopicKindReads>] {
        &self.topics
    }

    /// Whether some topic kind reads the option `name`.
    pub(crate) fn reads_option(&self, name: &str) -> bool {
        self.topics.iter().any(|t| t.options().contains(&name))
    }

    /// Checks the options against every kind that reads them.
    pub(crate) fn check_options(&self, options: &Options) -> Result<(), crate::ApiError> {
        self.topics.iter().try_for_each(|t| t.check(options))
    }

    /// The projections the registered reads follow, in registration order.
    pub fn projections(&self) -> &[ProjectionName] {
        &self.projections
    }

    /// The folded state of `stream` as JSON, through what its kind registered (`null` when no
    /// running module renders that kind).
    pub fn state_json(&self, stream: &StreamId, state: &StreamState) -> Value {
        self.states
            .iter()
            .filter(|(kind, _)| *kind == stream.kind())
            .find_map(|(_, render)| render(state))
            .unwrap_or(Value::Null)
    }
}

/// How a module registers its reads on the [`App`].
pub trait QueryApp {
    /// Read routes, merged into the query API's router (axum's `Router::merge`: no two modules
    /// may route the same path and method).
    fn add_read_routes(&mut self, routes: Router<QueryState>) -> &mut Self;

    /// A kind of live topic `GET /v1/subscribe` follows. Several modules may register topics
    /// under one kind's name, each parsing its own shapes of it (one the bare `<kind>`, another
    /// `<kind>:<id>`): a topic goes to the first, in registration order, that takes it.
    ///
    /// # Panics
    /// When a kind of the same name and form is registered twice.
    fn add_topic(&mut self, topic: impl TopicKindReads) -> &mut Self;

    /// How the view `V` of a stream of `kind` renders as JSON for an admin.
    fn add_state_json<V: View>(&mut self, kind: StreamKind, render: fn(&V) -> Value) -> &mut Self;

    /// Projections the module's reads follow: the admin's projections view lists them even
    /// before their first checkpoint.
    fn add_read_projections(&mut self, projections: &[ProjectionName]) -> &mut Self;
}

impl QueryApp for App {
    fn add_read_routes(&mut self, routes: Router<QueryState>) -> &mut Self {
        self.part_mut::<Reads>().routes.push(routes);
        self
    }

    fn add_topic(&mut self, topic: impl TopicKindReads) -> &mut Self {
        let reads = self.part_mut::<Reads>();
        let kind = topic.kind();
        let form = topic.form();
        assert!(
            reads
                .topics
                .iter()
                .all(|t| (t.kind(), t.form()) != (kind, form)),
            "topic kind {kind} ({form}) is registered twice"
        );
        reads.topics.push(Arc::new(topic));
        self
    }

    fn add_state_json<V: View>(&mut self, kind: StreamKind, render: fn(&V) -> Value) -> &mut Self {
        let render: StateJsonFn = Arc::new(move |state| state.view::<V>().map(render));
        self.part_mut::<Reads>().states.push((kind, render));
        self
    }

    fn add_read_projections(&mut self, projections: &[ProjectionName]) -> &mut Self {
        let reads = self.part_mut::<Reads>();
        for projection in projections {
            if !reads.projections.contains(projection) {
                reads.projections.push(*projection);
            }
        }
        self
    }
}
