//! A scratch database and NATS prefix, questlog started in-process on port 0, and a client.

use anyhow::Context as _;
use questlog::config::{ServeArgs, StoreArgs};
use questlog::Application;
use questlog_academy::Role;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Args;

pub const SECRET: &str = "questlog-bench-secret-of-thirty-two-bytes-or-more";

/// The running system under test: questlog in this process, or (`Env::remote`) a command API
/// in another process on a store of its own.
pub struct Env {
    pub base: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub db_name: String,
    pub maintenance_url: String,
    pub nats_url: String,
    pub prefix: String,
    shutdown: CancellationToken,
    /// The in-process application (none when questlog runs in other processes).
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn database_url(maintenance: &str, name: &str) -> String {
    let base = maintenance.rsplit_once('/').map_or(maintenance, |(b, _)| b);
    format!("{base}/{name}")
}

/// A fresh store's names: a scratch database and a NATS prefix of its own.
pub struct Store {
    pub db_name: String,
    pub prefix: String,
}

impl Store {
    pub fn fresh() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            db_name: format!("questlog_bench_{id}"),
            prefix: format!("bench{id}"),
        }
    }

    /// The settings a questlog process on this store runs with.
    pub fn args(&self, args: &Args) -> StoreArgs {
        StoreArgs {
            database_url: database_url(&args.database_url, &self.db_name),
            nats_url: args.nats_url.clone(),
            nats_prefix: self.prefix.clone(),
            token_secret: Some(SECRET.to_owned()),
            token_ttl_days: 1,
        }
    }
}

/// How the harness serves `service` (every service when `None`): on port 0, and with no limit on
/// the identities one address creates, since every simulated player comes from this one address.
pub fn serve_args(service: Option<questlog::config::Service>) -> anyhow::Result<ServeArgs> {
    Ok(ServeArgs {
        service,
        sessions: questlog::config::SessionArgs {
            identity_per_minute: std::num::NonZeroU32::MAX,
            identity_burst: std::num::NonZeroU32::MAX,
            ..questlog::config::SessionArgs::default()
        },
        ..ServeArgs::on("127.0.0.1:0".parse()?)
    })
}

impl Env {
    pub async fn start(args: &Args) -> anyhow::Result<Self> {
        let names = Store::fresh();
        let store = names.args(args);
        let serve = serve_args(
            args.write_only
                .then_some(questlog::config::Service::CommandApi),
        )?;
        let shutdown = CancellationToken::new();
        let app = Application::build(&store, &serve, shutdown.clone())
            .await
            .context("starting questlog")?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let task = tokio::spawn(app.run());
        let mut env = Self::remote(args, names, base)?;
        env.shutdown = shutdown;
        env.task = Some(task);
        Ok(env)
    }

    /// The system under test when questlog runs in other processes on `store`, with its command
    /// API at `base`. [`Env::stop`] then only removes the store.
    pub fn remote(args: &Args, store: Store, base: String) -> anyhow::Result<Self> {
        let keys = questlog_web_keys();
        Ok(Self {
            base,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            admin: keys.issue(Uuid::new_v4(), Role::Admin),
            db_name: store.db_name,
            maintenance_url: args.database_url.clone(),
            nats_url: args.nats_url.clone(),
            prefix: store.prefix,
            shutdown: CancellationToken::new(),
            task: None,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Some(task) = self.task {
            let _ = task.await;
        }
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            let _ = js
                .delete_stream(questlog_bus::Names::new(&self.prefix).events_stream())
                .await;
        }
        drop_database(&self.maintenance_url, &self.db_name).await;
    }

    /// Sends a command; returns the status and body.
    pub async fn command(
        &self,
        token: &str,
        name: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.command_at(&self.base, token, name, body).await
    }

    /// Sends a command to the command API at `base` (another process on the same store).
    pub async fn command_at(
        &self,
        base: &str,
        token: &str,
        name: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .post(format!("{base}/v1/commands/{name}"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// Reads `url` as `token`'s bearer: the answer's JSON, which must be a success.
    pub async fn get(&self, token: &str, url: &str) -> anyhow::Result<Value> {
        let response = self.client.get(url).bearer_auth(token).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// A new player: its token and id.
    pub async fn player(&self) -> anyhow::Result<(String, Uuid)> {
        let response: Value = self
            .client
            .post(format!("{}/v1/identity", self.base))
            .send()
            .await?
            .json()
            .await?;
        let token = response["token"].as_str().context("token")?.to_owned();
        let id = response["identity"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("identity")?;
        let name = format!("p{}", &Uuid::new_v4().simple().to_string()[..20]);
        let (status, body) = self
            .command(&token, "register_player", &json!({ "username": name }))
            .await?;
        anyhow::ensure!(status == 200, "register_player: {body}");
        Ok((token, id))
    }

    /// Module 1 with `labs` labs, `lab-1` …
    pub async fn catalog(&self, labs: usize) -> anyhow::Result<()> {
        self.command(
            &self.admin,
            "define_module",
            &json!({ "module": 1, "title": "Bench" }),
        )
        .await?;
        for i in 1..=labs {
            let (status, body) = self
                .command(
                    &self.admin,
                    "define_lab",
                    &json!({ "lab_id": format!("lab-{i}"), "module": 1, "title": "t", "xp": 10 }),
                )
                .await?;
            anyhow::ensure!(status == 200, "define_lab: {body}");
        }
        Ok(())
    }
}

fn questlog_web_keys() -> questlog_web::TokenKeys {
    questlog_web::TokenKeys::new(SECRET.as_bytes(), chrono::Duration::days(1))
}

/// A scratch database for a baseline, with questlog's schema.
pub async fn scratch_database(maintenance: &str) -> anyhow::Result<(String, String)> {
    let name = format!("questlog_bench_{}", Uuid::new_v4().simple());
    let url = database_url(maintenance, &name);
    questlog::app::prepare_database(&url).await?.close().await;
    Ok((name, url))
}

/// An empty scratch database, for a baseline that brings its own schema (the peer's `events`
/// table would clash with questlog's).
pub async fn empty_database(maintenance: &str) -> anyhow::Result<(String, String)> {
    let name = format!("questlog_bench_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(maintenance).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let url = database_url(maintenance, &name);
    Ok((name, url))
}

pub async fn drop_database(maintenance: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(maintenance).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}
