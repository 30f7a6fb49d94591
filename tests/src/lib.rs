//! The test harness: a database of its own per test, and questlog started on port 0 against it,
//! driven over HTTP like a client would.

pub mod faults;
pub mod query;

use std::sync::Once;
use std::time::{Duration, Instant};

use questlog::app::Hooks;
use questlog::config::{ServeArgs, StoreArgs};
use questlog::Application;
use questlog_academy::Role;
use questlog_command_api::WriterHandle;
use questlog_web::TokenKeys;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where the tests find Postgres (a maintenance database to create test databases from).
pub fn admin_database_url() -> String {
    std::env::var("QUESTLOG_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Where the tests find NATS.
pub fn nats_url() -> String {
    std::env::var("QUESTLOG_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn database_url(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

/// Logs only when `TEST_LOG` is set.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            questlog_web::telemetry::init("info,sqlx=warn");
        }
    });
}

/// A database that exists for one test and is dropped (forcefully) when the test ends, pass or fail.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// This test's NATS prefix: its own JetStream stream, consumers and subjects.
    pub nats_prefix: String,
    /// The maintenance database of the server it lives on (to drop it from).
    admin_url: String,
}

impl TestDb {
    /// A fresh, empty database with questlog's schema.
    ///
    /// # Panics
    /// When Postgres cannot be reached.
    pub async fn create() -> Self {
        Self::create_on(&admin_database_url()).await
    }

    /// A fresh, empty database with questlog's schema on the server of `admin_url` (a
    /// maintenance database URL, such as a private server's).
    ///
    /// # Panics
    /// When that server cannot be reached.
    pub async fn create_on(admin_url: &str) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let name = format!("questlog_test_{id}");
        let url = database_url(admin_url, &name);
        questlog::app::prepare_database(&url)
            .await
            .expect("Postgres must be reachable: run the suite through scripts/test.sh")
            .close()
            .await;
        Self {
            name,
            url,
            nats_prefix: format!("t{id}"),
            admin_url: admin_url.to_owned(),
        }
    }

    /// Another handle on the same database and NATS names that does not drop them (for a
    /// second replica).
    pub fn share(&self) -> Self {
        Self {
            name: String::new(),
            url: self.url.clone(),
            nats_prefix: self.nats_prefix.clone(),
            admin_url: self.admin_url.clone(),
        }
    }

    /// A pool on this database.
    ///
    /// # Panics
    /// On a malformed URL.
    pub fn pool(&self, size: u32) -> sqlx::PgPool {
        questlog_store::connect(&self.url, size).expect("valid URL")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let name = self.name.clone();
        let prefix = self.nats_prefix.clone();
        let admin_url = self.admin_url.clone();
        // Drop may run inside a runtime that is shutting down: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(client) = async_nats::connect(nats_url()).await {
                        let js = async_nats::jetstream::new(client);
                        let _ = js
                            .delete_stream(questlog_bus::Names::new(&prefix).events_stream())
                            .await;
                    }
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut conn)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

/// The token secret every test app signs with (at least 32 bytes, as questlog requires).
pub const TEST_SECRET: &str = "questlog-test-secret-of-thirty-two-bytes-or-more";

/// questlog running on port 0 against its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub keys: TokenKeys,
    pub shutdown: CancellationToken,
    /// The command writer, whose queue a test can watch.
    pub writer: Option<WriterHandle>,
    /// The paths its router serves (parameters as `{name}`).
    pub paths: Vec<String>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the app is stopped.
    pub db: TestDb,
}

/// A registered player as a client holds it.
#[derive(Debug, Clone)]
pub struct Player {
    pub id: Uuid,
    pub token: String,
}

impl TestApp {
    /// Starts questlog on a new database.
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDb::create().await).await
    }

    /// Starts questlog on an existing test database (a restart, or a second replica).
    ///
    /// # Panics
    /// When the application cannot start.
    pub async fn spawn_on(db: TestDb) -> Self {
        let store = store_args(&db);
        Self::spawn_custom(db, store, Hooks::default()).await
    }

    /// Starts questlog with its store configuration and hooks set by the test.
    ///
    /// # Panics
    /// When the application cannot start.
    pub async fn spawn_custom(db: TestDb, store: StoreArgs, hooks: Hooks) -> Self {
        Self::spawn_serving(db, store, hooks, Self::serve_args()).await
    }

    /// The service configuration tests run with: the defaults on port 0, a smaller pool, no
    /// practical limit on identities per address (every test client is 127.0.0.1; the limit's
    /// own tests set one).
    pub fn serve_args() -> ServeArgs {
        let unlimited = std::num::NonZeroU32::new(1_000_000).expect("positive");
        ServeArgs {
            db_pool: 8,
            sessions: questlog::config::SessionArgs {
                identity_per_minute: unlimited,
                identity_burst: unlimited,
                ..questlog::config::SessionArgs::default()
            },
            ..ServeArgs::on("127.0.0.1:0".parse().expect("valid address"))
        }
    }

    /// Starts questlog with every part of its configuration set by the test.
    ///
    /// # Panics
    /// When the application cannot start.
    pub async fn spawn_serving(
        db: TestDb,
        store: StoreArgs,
        hooks: Hooks,
        serve: ServeArgs,
    ) -> Self {
        init_logging();
        let shutdown = CancellationToken::new();
        let app = Application::build_with(&store, &serve, shutdown.clone(), hooks)
            .await
            .expect("questlog starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let writer = app.writer();
        let paths = mounted_paths(app.router());
        let task = tokio::spawn(app.run());
        Self {
            address,
            client: reqwest::Client::new(),
            keys: TokenKeys::new(TEST_SECRET.as_bytes(), chrono::Duration::days(30)),
            shutdown,
            writer,
            paths,
            task: Some(task),
            db,
        }
    }

    /// Stops the app gracefully and hands back its database (to start another app on it).
    ///
    /// # Panics
    /// When the app failed while running.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app ran cleanly");
        }
        TestDb {
            name: std::mem::take(&mut self.db.name),
            url: std::mem::take(&mut self.db.url),
            nats_prefix: std::mem::take(&mut self.db.nats_prefix),
            admin_url: std::mem::take(&mut self.db.admin_url),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// An admin token, as `questlog token issue --admin` makes one.
    pub fn admin_token(&self) -> String {
        self.keys.issue(Uuid::new_v4(), Role::Admin)
    }

    /// Sends a command; returns the status and the JSON body.
    ///
    /// # Panics
    /// When the request fails at the transport level or the body is not JSON.
    pub async fn command(&self, token: &str, name: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(&format!("/v1/commands/{name}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// Sends a command that must succeed.
    ///
    /// # Panics
    /// When it does not.
    pub async fn ok(&self, token: &str, name: &str, body: Value) -> Value {
        let (status, out) = self.command(token, name, &body).await;
        assert_eq!(status, StatusCode::OK, "{name} {body} answered {out}");
        out
    }

    /// A GET as a client: the status, the `Questlog-Position` header and the JSON body.
    ///
    /// # Panics
    /// When the request fails at the transport level or the body is not JSON.
    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Option<i64>, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let position = response
            .headers()
            .get("questlog-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (status, position, response.json().await.expect("JSON body"))
    }

    /// A GET that must succeed after the read side has applied `position` (waiting up to 30 s).
    ///
    /// # Panics
    /// When it does not.
    pub async fn read_at(&self, token: &str, path: &str, position: i64) -> Value {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, at, body) = self
            .get(
                token,
                &format!("{path}{sep}min_position={position}&wait_ms=30000"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "GET {path} at {position}: {body}");
        assert!(
            at.is_some_and(|p| p >= position),
            "Questlog-Position {at:?} is below {position}"
        );
        body
    }

    /// `path` as of the past position `at`, which must answer 200 exactly at it (the read
    /// waits for its projections to have applied it).
    ///
    /// # Panics
    /// When the read fails or answers at another position.
    pub async fn read_as_of(&self, token: &str, path: &str, at: i64) -> Value {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, position, body) = self.get(token, &format!("{path}{sep}as_of={at}")).await;
        assert_eq!(
            (status, position),
            (StatusCode::OK, Some(at)),
            "{path} as of {at}: {body}"
        );
        body
    }

    /// A new identity.
    ///
    /// # Panics
    /// When the route fails.
    pub async fn identity(&self) -> Player {
        let response = self
            .client
            .post(self.url("/v1/identity"))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("JSON");
        Player {
            id: body["identity"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("identity"),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// A new identity with a registered player.
    pub async fn player(&self, username: &str) -> Player {
        let p = self.identity().await;
        self.ok(&p.token, "register_player", json!({ "username": username }))
            .await;
        p
    }

    /// Defines module 1 with `labs` labs (`lab-1` …) worth `xp` each.
    pub async fn catalog(&self, labs: usize, xp: u32) -> String {
        let admin = self.admin_token();
        self.ok(
            &admin,
            "define_module",
            json!({ "module": 1, "title": "Basics" }),
        )
        .await;
        for i in 1..=labs {
            self.ok(
                &admin,
                "define_lab",
                json!({ "lab_id": format!("lab-{i}"), "module": 1, "title": format!("Lab {i}"), "xp": xp }),
            )
            .await;
        }
        admin
    }
}

impl TestApp {
    /// `complete_lab` for each of `labs` (`lab-<n>`) in order; returns the last answer's position.
    ///
    /// # Panics
    /// When one is refused.
    pub async fn complete_labs(&self, token: &str, labs: impl IntoIterator<Item = usize>) -> i64 {
        let mut last = 0;
        for lab in labs {
            let out = self
                .ok(
                    token,
                    "complete_lab",
                    json!({ "lab_id": format!("lab-{lab}") }),
                )
                .await;
            last = position(&out);
        }
        last
    }

    /// Waits (up to 30 s) until every projection has applied `head`.
    ///
    /// # Panics
    /// When they do not.
    pub async fn caught_up(&self, head: i64) {
        let admin = self.admin_token();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, _, body) = self.get(&admin, "/v1/admin/projections").await;
            let done = body["projections"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["position"].as_i64() >= Some(head)));
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not caught up: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `questlog verify --json` on this app's database: whether anything drifted, and the checks.
    ///
    /// # Panics
    /// When verify cannot run.
    pub async fn verify(&self) -> (bool, Value) {
        let mut out = Vec::new();
        let drifted = questlog::admin::rebuild::verify(&self.db.url, true, &mut out)
            .await
            .expect("verify runs");
        (drifted, serde_json::from_slice(&out).expect("JSON"))
    }

    /// `GET /readyz`: the status and the body.
    ///
    /// # Panics
    /// When the request fails at the transport level.
    pub async fn readyz(&self) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The store configuration a test app runs with.
pub fn store_args(db: &TestDb) -> StoreArgs {
    StoreArgs {
        database_url: db.url.clone(),
        nats_url: nats_url(),
        nats_prefix: db.nats_prefix.clone(),
        token_secret: Some(TEST_SECRET.to_owned()),
        token_ttl_days: 30,
    }
}

/// The paths `router` serves, as axum's own description of it lists them (axum offers no other
/// way to enumerate a router's routes); its fallbacks' internal paths left out.
pub fn mounted_paths(router: &axum::Router) -> Vec<String> {
    let described = format!("{router:?}");
    // The fallback's own paths are described after the routes'.
    let routes = described
        .split("fallback_router")
        .next()
        .unwrap_or_default();
    let mut paths: Vec<String> = routes
        .split("RouteId(")
        .skip(1)
        .filter_map(|entry| {
            let start = entry.find(": \"")? + 3;
            let end = start + entry[start..].find('"')?;
            Some(entry[start..end].to_owned())
        })
        .filter(|path| path.starts_with('/') && !path.contains("__private__"))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Counts the events in a test database's log.
///
/// # Panics
/// When the database cannot be read.
pub async fn event_count(db: &TestDb) -> i64 {
    let pool = db.pool(1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count events");
    pool.close().await;
    n
}

/// Holds the log's append lock ([`questlog_store::APPEND_LOCK`]) from a connection of the test's
/// own, so that the writer's batch at hand waits inside its append while the commands sent
/// meanwhile queue up behind it: opening the gate commits them together, in one batch.
pub struct AppendGate {
    conn: sqlx::PgConnection,
}

impl AppendGate {
    /// Takes the lock.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn close(db: &TestDb) -> Self {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(questlog_store::APPEND_LOCK)
            .execute(&mut conn)
            .await
            .expect("take the append lock");
        Self { conn }
    }

    /// Waits (up to 30 s) until an append is waiting for the lock.
    ///
    /// # Panics
    /// When none is.
    pub async fn wait_for_an_append(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                  WHERE d.datname = current_database() AND l.locktype = 'advisory' \
                    AND NOT l.granted AND l.objid = ($1 & 4294967295)::oid",
            )
            .bind(questlog_store::APPEND_LOCK)
            .fetch_one(&mut self.conn)
            .await
            .expect("read pg_locks");
            if waiting > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no append waited for the append lock within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Releases the lock: the waiting append goes on, and the writer's next batch after it.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn open(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(questlog_store::APPEND_LOCK)
            .execute(&mut self.conn)
            .await
            .expect("release the append lock");
    }
}

/// Waits (up to 30 s) until `done` holds, checking every 10 ms.
///
/// # Panics
/// When it does not, naming `what`.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (up to 30 s) until what `done` resolves to is true, trying every 50 ms.
///
/// # Panics
/// When it does not, naming `what`.
pub async fn wait_until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `position` of a command's answer.
///
/// # Panics
/// When the answer has none.
pub fn position(out: &Value) -> i64 {
    out["position"].as_i64().expect("position")
}

/// The types of a command answer's events, in order.
///
/// # Panics
/// When the answer has no events list.
pub fn event_types(out: &Value) -> Vec<&str> {
    out["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}
