//! The application: every service wired onto one listener, built from configuration so that tests
//! can start it on port 0 against their own database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use questlog_command_api::jobs::{JobContext, Jobs};
use questlog_command_api::routes::{WriteContext, WriteRoutes};
use questlog_command_api::{
    AddressLimiter, AppState, ClientAddresses, Clock, Sessions, WriterConfig, WriterHandle,
};
use questlog_domain::{App, Module};
use questlog_store::{EventStore, PgEventStore};
use questlog_web::{Problem, TokenKeys};
use sqlx::migrate::MigrateDatabase;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, Service, StoreArgs};
use crate::secret::token_secret;
use questlog_bus::Names;
use questlog_projector::ProjectorConfig;

/// Creates the database when it does not exist yet, then runs every pending migration: the
/// kernel's and those of every module the binary runs.
///
/// # Errors
/// When Postgres cannot be reached or a migration fails.
pub async fn prepare_database(url: &str) -> anyhow::Result<PgPool> {
    prepare_database_for(url, &crate::modules::app()).await
}

/// [`prepare_database`] for the modules registered on `app`.
///
/// # Errors
/// As [`prepare_database`].
pub async fn prepare_database_for(url: &str, app: &App) -> anyhow::Result<PgPool> {
    if !sqlx::Postgres::database_exists(url)
        .await
        .with_context(|| format!("cannot reach Postgres at {}", redact(url)))?
    {
        sqlx::Postgres::create_database(url)
            .await
            .context("creating the database")?;
    }
    let pool = questlog_store::connect(url, 4).context("parsing the database URL")?;
    questlog_store::migrator(app)
        .await
        .context("resolving the migrations")?
        .run(&pool)
        .await
        .context("running the migrations")?;
    Ok(pool)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The token keys for this configuration.
///
/// # Errors
/// When the development secret cannot be read from or kept in the database.
pub async fn token_keys(store: &StoreArgs, pool: &PgPool) -> anyhow::Result<TokenKeys> {
    let secret = token_secret(store.token_secret.as_deref(), pool).await?;
    Ok(TokenKeys::new(
        &secret,
        chrono::Duration::days(store.token_ttl_days),
    ))
}

/// questlog, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    writer: Option<WriterHandle>,
}

#[derive(Clone)]
struct Health {
    pool: PgPool,
    /// The streaming replica the query API reads from, when it reads from one.
    reads: Option<PgPool>,
    nats: Option<async_nats::Client>,
    names: Names,
}

/// Hooks for tests that reproduce faults (a projector failing at a named point).
#[derive(Clone, Default)]
pub struct Hooks {
    pub projector_failpoint: Option<questlog_projector::runner::Failpoint>,
    /// The clock of the writer and the scheduled jobs (the system's when unset).
    pub clock: Option<Clock>,
    /// Time between the rounds of the modules' scheduled jobs (each module's default when
    /// unset).
    pub job_interval: Option<std::time::Duration>,
    /// Modules to run besides the binary's own (a test's module made up for it).
    pub modules: Vec<Arc<dyn Module + Send + Sync>>,
}

impl Application {
    /// Connects, migrates, binds the listener and starts the background tasks.
    ///
    /// # Errors
    /// When the database cannot be prepared or the address cannot be bound.
    pub async fn build(
        store: &StoreArgs,
        serve: &ServeArgs,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        Self::build_with(store, serve, shutdown, Hooks::default()).await
    }

    /// [`Application::build`] with fault-injection hooks.
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with(
        store: &StoreArgs,
        serve: &ServeArgs,
        shutdown: CancellationToken,
        hooks: Hooks,
    ) -> anyhow::Result<Self> {
        let runs = |s: Service| serve.service.is_none_or(|only| only == s);
        // Before any service starts counting: a handle taken earlier would record nowhere.
        crate::metrics::recorder();
        // A bad secret is refused before anything is created, connected or bound.
        crate::secret::configured_secret(store.token_secret.as_deref())?;
        let mut modules = crate::modules::configured(&serve.modules, hooks.job_interval)?;
        for module in &hooks.modules {
            modules.add_module(module.as_ref());
        }
        prepare_database_for(&store.database_url, &modules)
            .await?
            .close()
            .await;
        let pool = questlog_store::connect(&store.database_url, serve.db_pool)
            .context("parsing the database URL")?;
        let clock = hooks.clock.clone().unwrap_or_default();
        let keys = {
            let clock = clock.clone();
            token_keys(store, &pool)
                .await?
                .with_session_ttls(
                    chrono::Duration::seconds(i64::from(serve.sessions.access_ttl_secs)),
                    chrono::Duration::seconds(i64::from(serve.sessions.refresh_ttl_secs)),
                )
                .with_clock(move || clock.now())
        };
        let clients = ClientAddresses {
            trusted_header: match &serve.sessions.trusted_proxy_header {
                Some(name) => Some(axum::http::HeaderName::try_from(name.trim()).with_context(
                    || format!("QUESTLOG_TRUSTED_PROXY_HEADER: {name:?} is not a header name"),
                )?),
                None => None,
            },
        };
        let names = Names::new(&store.nats_prefix).with_stream(serve.stream.settings());
        let needs_nats =
            runs(Service::Relay) || runs(Service::Projector) || runs(Service::QueryApi);
        let nats = if needs_nats {
            // Connects in the background: commands are accepted while NATS is away.
            Some(
                questlog_bus::connect(&store.nats_url)
                    .await
                    .with_context(|| format!("connecting to NATS at {}", store.nats_url))?,
            )
        } else {
            None
        };
        // The query API's reads, from a streaming replica when one is named.
        let read_pool = match &serve.read_database_url {
            Some(url) if runs(Service::QueryApi) => Some(
                questlog_store::connect(url, serve.db_pool)
                    .context("parsing QUESTLOG_READ_DATABASE_URL")?,
            ),
            _ => None,
        };
        let domain = modules.domain();
        let mut tasks = Vec::new();
        let mut router = Router::new();
        let mut command_writer = None;
        let mut live_hub = None;
        if runs(Service::CommandApi) {
            // Made by the first process that serves commands, read by every one after it.
            let name_key = questlog_store::sealing::name_key(&pool)
                .await
                .context("reading the deployment's name key")?;
            let event_store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone()));
            let (writer, writer_task) = questlog_command_api::writer::spawn(
                domain.clone(),
                event_store.clone(),
                WriterConfig {
                    max_batch: serve.max_batch,
                    clock: clock.clone(),
                    ..WriterConfig::default()
                },
                shutdown.clone(),
            );
            tasks.push(writer_task);
            command_writer = Some(writer.clone());
            // Every job the modules registered runs where the command API runs.
            tasks.extend(modules.take::<Jobs>().spawn(&JobContext {
                database_url: store.database_url.clone(),
                pool: pool.clone(),
                writer: writer.clone(),
                clock: clock.clone(),
                shutdown: shutdown.clone(),
            }));
            let sessions = Sessions::new(pool.clone(), keys.clone());
            let extra = modules.take::<WriteRoutes>().build(&WriteContext {
                pool: pool.clone(),
                writer: writer.clone(),
                domain: domain.clone(),
                tokens: keys.clone(),
                sessions: sessions.clone(),
                clock: clock.clone(),
                clients: clients.clone(),
            });
            router = router.merge(questlog_command_api::router(
                AppState {
                    domain: domain.clone(),
                    store: event_store,
                    writer,
                    tokens: keys.clone(),
                    limiter: Arc::new(serve.modules.sender_limiter()),
                    sessions,
                    identity_limiter: Arc::new(AddressLimiter::new(
                        serve.sessions.identity_per_minute,
                        serve.sessions.identity_burst,
                    )),
                    clients,
                    names: name_key,
                },
                serve.body_limit,
                extra,
            ));
        }
        if let Some(client) = &nats {
            if runs(Service::Relay) {
                let config = questlog_relay::RelayConfig::new(&store.database_url, names.clone());
                tasks.push(tokio::spawn(questlog_relay::run(
                    config,
                    client.clone(),
                    shutdown.clone(),
                )));
            }
            if runs(Service::Projector) {
                // One runner for every projection: one consumer, each event decoded once.
                let mut config = ProjectorConfig::new(&store.database_url, names.clone());
                config.failpoint.clone_from(&hooks.projector_failpoint);
                tasks.push(tokio::spawn(questlog_projector::run(
                    questlog_projector::Projections::of(&modules),
                    domain.clone(),
                    config,
                    client.clone(),
                    shutdown.clone(),
                )));
            }
            if runs(Service::QueryApi) {
                let standby = read_pool.clone().map(|replica| {
                    questlog_query_api::Standby::spawn(replica, pool.clone(), shutdown.clone())
                });
                let reads = read_pool.clone().unwrap_or_else(|| pool.clone());
                let positions = questlog_query_api::Positions::spawn_listener_on(
                    client.clone(),
                    names.clone(),
                    reads.clone(),
                    standby,
                    shutdown.clone(),
                );
                live_hub = Some(positions.live().clone());
                let monitor = crate::lineage::Monitor::spawn(
                    pool.clone(),
                    read_pool.clone(),
                    client.clone(),
                    names.clone(),
                    Duration::from_secs(2),
                    shutdown.clone(),
                )
                .await;
                let read_models = questlog_projector::Projections::of(&modules)
                    .iter()
                    .flat_map(|p| p.tables().iter().map(|t| (*t).to_owned()))
                    .collect();
                let beside = questlog_store::archive::ArchiveSections::of(&modules)
                    .iter()
                    .map(|s| s.table.to_owned())
                    .collect();
                let state = questlog_query_api::QueryState::new(
                    reads.clone(),
                    keys.clone(),
                    positions,
                    &modules,
                )
                .with_primary(pool.clone());
                let export = questlog_query_api::export::router(
                    reads,
                    keys.clone(),
                    read_models,
                    beside,
                    &mut modules,
                );
                router = router.merge(questlog_query_api::router(state).merge(export).layer(
                    axum::middleware::from_fn_with_state(monitor, crate::lineage::gate),
                ));
            }
        }
        let scrape = crate::metrics::Scrape {
            pool: pool.clone(),
            relay: nats
                .clone()
                .filter(|_| runs(Service::Relay))
                .map(async_nats::jetstream::new),
            names: names.clone(),
            projections: if nats.is_some() && runs(Service::Projector) {
                questlog_projector::Projections::of(&modules)
                    .iter()
                    .map(|p| p.name().as_str())
                    .collect()
            } else {
                Vec::new()
            },
            hub: live_hub,
            standby: read_pool.clone().filter(|_| runs(Service::QueryApi)),
        };
        let health = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(Health {
                pool,
                reads: read_pool,
                nats,
                names,
            })
            .merge(
                Router::new()
                    .route("/metrics", get(crate::metrics::route))
                    .with_state(scrape),
            )
            .merge(
                Router::new()
                    .route("/v1/openapi.json", get(crate::openapi::openapi))
                    .with_state(crate::openapi::Served::of(&modules)),
            );
        let mut router = health
            .merge(router)
            .fallback(questlog_web::problem::route_not_found)
            .method_not_allowed_fallback(questlog_web::problem::method_not_allowed);
        router = harden(router);
        if let Some(cors) = cors(&serve.cors_origins)? {
            router = router.layer(cors);
        }
        let listener = TcpListener::bind(serve.listen)
            .await
            .with_context(|| format!("binding {}", serve.listen))?;
        Ok(Self {
            listener,
            router,
            shutdown,
            tasks,
            writer: command_writer,
        })
    }

    /// The port it listens on (useful when bound to port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Every route it serves, layers and all.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The command writer, when this process runs the command API (its queue can be watched).
    pub fn writer(&self) -> Option<WriterHandle> {
        self.writer.clone()
    }

    /// Serves until the shutdown token fires, then drains the background tasks.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        tracing::info!(address = %self.listener.local_addr()?, "questlog is listening");
        // One router for every connection (a router built per connection — every route, boxed
        // service and layer — would be held by each idle live subscriber for as long as it stays
        // connected), with the peer's address, which per-address limits count when no trusted
        // proxy header is configured.
        crate::serve::serve(self.listener, self.router, shutdown).await;
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        Ok(())
    }
}

/// How long a request may take until its answer starts (a `min_position` wait is at most 30 s; an
/// event stream's answer starts at once and then streams for as long as it likes).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every route answers through: a request span for tracing; a panic in a handler is logged
/// and answered with problem+json `500 internal`, never a dropped connection; a request whose
/// answer has not started after [`REQUEST_TIMEOUT`] gets `503 timeout`.
pub fn harden(router: Router) -> Router {
    use axum::error_handling::HandleErrorLayer;
    router
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took too long; try again",
                    )
                    .retry_after(1)
                }))
                .timeout(REQUEST_TIMEOUT),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                tracing::error!(panic = what, "a request handler panicked");
                Problem::internal().into_response()
            },
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The CORS policy for `origins` (none: no cross-origin access). Preflight requests are answered
/// by the layer itself, before routing; answers expose the headers a client reads.
fn cors(origins: &[String]) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let mut list = Vec::with_capacity(origins.len());
        for origin in origins {
            let uri: axum::http::Uri = origin
                .parse()
                .with_context(|| format!("QUESTLOG_CORS_ORIGINS: {origin:?} is not an origin"))?;
            anyhow::ensure!(
                uri.scheme().is_some() && uri.host().is_some() && uri.path() == "/",
                "QUESTLOG_CORS_ORIGINS: {origin:?} is not an origin (scheme://host[:port])"
            );
            list.push(HeaderValue::from_str(origin)?);
        }
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-correlation-id"),
            ])
            .expose_headers([
                HeaderName::from_static("questlog-position"),
                HeaderName::from_static("idempotent-replayed"),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    ))
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(health): State<Health>) -> Result<impl IntoResponse, Problem> {
    sqlx::query("SELECT 1")
        .execute(&health.pool)
        .await
        .map_err(|_| Problem::unavailable("Postgres is not reachable"))?;
    if let Some(reads) = &health.reads {
        sqlx::query("SELECT 1")
            .execute(reads)
            .await
            .map_err(|_| Problem::unavailable("the read database is not reachable"))?;
        let why = crate::lineage::read_database(&health.pool, reads)
            .await
            .map_err(|e| Problem::unavailable(format!("cannot check the read database: {e:#}")))?;
        if let Some(why) = why {
            return Err(crate::lineage::problem_of(&crate::lineage::Verdict {
                mismatches: Vec::new(),
                read_database: Some(why),
            }));
        }
    }
    if let Some(nats) = &health.nats {
        if nats.connection_state() != async_nats::connection::State::Connected {
            return Err(Problem::unavailable("NATS is not reachable"));
        }
        let js = async_nats::jetstream::new(nats.clone());
        let found = crate::lineage::check(&health.pool, &js, &health.names)
            .await
            .map_err(|e| Problem::unavailable(format!("cannot check the event stream: {e:#}")))?;
        if !found.is_empty() {
            return Err(crate::lineage::problem(&found));
        }
    }
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "status": "ready" })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_panicking_handler_answers_problem_json_500_and_the_server_goes_on() {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let router = harden(
            Router::new()
                .route("/boom", get(boom))
                .route("/fine", get(|| async { "fine" })),
        );
        let answer = router
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).expect("request"))
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["code"], "internal");
        let answer = router
            .oneshot(Request::get("/fine").body(Body::empty()).expect("request"))
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_answer_does_not_start_in_time_gets_problem_json_503() {
        async fn stuck() -> &'static str {
            tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
            "late"
        }
        let answer = harden(Router::new().route("/stuck", get(stuck)))
            .oneshot(Request::get("/stuck").body(Body::empty()).expect("request"))
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["code"], "timeout");
    }
}
