//! HTTP routes that modules add to the write side beside `POST /v1/commands/{name}`: routes that
//! are not one command each (a route that checks a credential, then opens a session, or that
//! prepares what it submits as a command). A module registers a builder on the [`App`] with
//! [`WriteRoutesExt::add_write_routes`]; the process that runs the command API calls each with
//! what it has ([`WriteContext`]) and serves the routes beside its own, under the same body limit.

use axum::Router;
use questlog_domain::{App, Domain};
use questlog_web::TokenKeys;
use sqlx::PgPool;
use std::sync::Arc;

use crate::clients::ClientAddresses;
use crate::sessions::Sessions;
use crate::writer::{Clock, WriterHandle};

/// What a module's write routes get from the process.
#[derive(Clone)]
pub struct WriteContext {
    /// The process's pool.
    pub pool: PgPool,
    /// The writer every command goes through.
    pub writer: WriterHandle,
    /// The running modules' commands and streams.
    pub domain: Arc<Domain>,
    /// Signs and checks tokens.
    pub tokens: TokenKeys,
    /// The session store (refresh tokens).
    pub sessions: Sessions,
    /// The writer's clock (tests replace it).
    pub clock: Clock,
    /// How a client's address is found.
    pub clients: ClientAddresses,
}

type Build = Box<dyn Fn(&WriteContext) -> Router + Send + Sync>;

/// The write routes the running modules registered (an [`App`] part).
#[derive(Default)]
pub struct WriteRoutes {
    builders: Vec<Build>,
}

impl WriteRoutes {
    /// Every registered route, built for `context`.
    pub fn build(&self, context: &WriteContext) -> Router {
        self.builders
            .iter()
            .fold(Router::new(), |router, build| router.merge(build(context)))
    }
}

/// Registering write routes on an [`App`].
pub trait WriteRoutesExt {
    /// Registers routes built, once per process that runs the command API, by `build`.
    fn add_write_routes<F>(&mut self, build: F) -> &mut Self
    where
        F: Fn(&WriteContext) -> Router + Send + Sync + 'static;
}

impl WriteRoutesExt for App {
    fn add_write_routes<F>(&mut self, build: F) -> &mut Self
    where
        F: Fn(&WriteContext) -> Router + Send + Sync + 'static,
    {
        self.part_mut::<WriteRoutes>()
            .builders
            .push(Box::new(build));
        self
    }
}
