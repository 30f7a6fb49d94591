//! Accounts: email and password (argon2id) for an identity — a new one, or an anonymous one that
//! keeps its progress —, logins that cannot be brute-forced (a lockout per email, the same cost
//! whether the email exists or not), and sessions of short-lived access tokens and rotating
//! refresh tokens (the kernel's `Sessions`). [`Accounts`] registers its events and the `account`
//! stream with its view (`event`, `state`), the commands its routes submit (`command`), its routes
//! on the write side (`routes`), its SQL (`migrations/`) and the accounts table as an archive
//! section.

pub mod command;
pub mod erasure;
pub mod event;
pub mod lockout;
pub mod password;
pub mod prune;
pub mod routes;
pub mod state;
pub mod values;

#[cfg(test)]
mod tests;

use questlog_command_api::jobs::JobsExt as _;
use questlog_command_api::routes::WriteRoutesExt as _;
use questlog_domain::{App, Module, StreamKind};
use questlog_query_api::export::{PlayerExport, PlayerExportExt as _};
use questlog_store::archive::{ArchiveExt as _, ArchiveSection, Column};
use questlog_store::MigrationsExt as _;
use questlog_web::openapi::ApiDocsExt as _;

pub use password::{Cost, Hasher};

/// An account's stream: `account-<player id>`.
pub const ACCOUNT: StreamKind = StreamKind::new("account");

/// The accounts module's own SQL (`modules/accounts/migrations/`), run with the kernel's.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The accounts (emails, usernames, password hashes) travel with the log: the log records that
/// an account exists, not its credentials.
pub const ARCHIVE: ArchiveSection = ArchiveSection {
    line: "account",
    count: "accounts",
    noun: "account",
    plural: "accounts",
    table: "accounts",
    columns: &[
        ("player_id", Column::Uuid),
        ("email", Column::Text),
        ("email_key", Column::Text),
        ("username", Column::Text),
        ("username_key", Column::Text),
        ("password_hash", Column::Text),
        ("registered_at", Column::Timestamptz),
        ("password_changed_at", Column::Timestamptz),
    ],
    order_by: &["player_id"],
};

/// The players' keys that open their personal data in the log (`questlog_store::sealing`) travel
/// with it: an import without them would read every sealed field as erased. An erased player's
/// row travels too, so its key is never made again.
pub const KEYS_ARCHIVE: ArchiveSection = ArchiveSection {
    line: "subject_key",
    count: "subject_keys",
    noun: "subject key",
    plural: "subject keys",
    table: "subject_keys",
    columns: &[
        ("player_id", Column::Uuid),
        ("key", Column::Text),
        ("created_at", Column::Timestamptz),
        ("erased_at", Column::Timestamptz),
    ],
    order_by: &["player_id"],
};

/// The accounts module, with its configuration.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// argon2id's cost.
    pub cost: Cost,
    /// Failed attempts for one email that lock it…
    pub max_failures: u32,
    /// …within this window (and for as long as the oldest of them stays in it).
    pub window: chrono::Duration,
    /// The time between the sessions job's rounds ([`prune::DEFAULT_INTERVAL`] unless set).
    pub prune_interval: Option<std::time::Duration>,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            cost: Cost::default(),
            max_failures: 5,
            window: chrono::Duration::minutes(15),
            prune_interval: None,
        }
    }
}

fn valid_key(key: &str) -> bool {
    uuid::Uuid::parse_str(key).is_ok()
}

impl Module for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn build(&self, app: &mut App) {
        app.add_events::<event::AccountEvent>()
            .add_events::<questlog_domain::ErasureEvent>()
            .add_stream(ACCOUNT, valid_key)
            .add_view::<state::Account>(ACCOUNT);
        // The names an erasure is confirmed with: those of the modules registered before this
        // one (the binary registers the modules that name players first).
        let names: std::sync::Arc<[_]> = app.domain().player_names().into();
        for name in erasure::COMMAND_NAMES {
            let names = names.clone();
            app.extend_command(name, move |_| erasure::parser(names));
        }
        app.add_command_docs(erasure::docs());
        let module = self.clone();
        // A hasher per process, its dummy hash made once.
        let hasher = std::sync::OnceLock::<Hasher>::new();
        app.add_api_docs(<routes::ApiDoc as utoipa::OpenApi>::openapi());
        app.add_write_routes(move |ctx| {
            let hasher = hasher
                .get_or_init(|| {
                    Hasher::new(module.cost).expect("argon2 parameters checked at start")
                })
                .clone();
            routes::router(routes::AccountsState {
                ctx: ctx.clone(),
                hasher,
                lockout: lockout::Lockout::new(
                    ctx.pool.clone(),
                    module.max_failures,
                    module.window,
                ),
            })
        });
        app.add_player_export(PlayerExport::new(
            "account",
            &["accounts"],
            |conn, player| Box::pin(export(conn, player)),
        ));
        // Whether the player's personal data is sealed, and since when; never its key.
        app.add_player_export(PlayerExport::new(
            "personal_data",
            &["subject_keys"],
            |conn, player| Box::pin(export_key(conn, player)),
        ));
        // The sessions its routes open are pruned once nothing can use them.
        let interval = self.prune_interval.unwrap_or(prune::DEFAULT_INTERVAL);
        app.add_job(prune::JOB, move |context| prune::job(interval, context));
        app.add_migrations(self.name(), &MIGRATIONS)
            .add_archive_section(ARCHIVE)
            .add_archive_section(KEYS_ARCHIVE);
    }
}

/// The caller's account in its export: its email and username, when it registered and last
/// changed its password; never the password's hash.
async fn export(
    conn: &mut sqlx::PgConnection,
    player: uuid::Uuid,
) -> anyhow::Result<serde_json::Value> {
    let account: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('email', email, 'username', username, \
                'registered_at', registered_at, 'password_changed_at', password_changed_at) \
           FROM accounts WHERE player_id = $1",
    )
    .bind(player)
    .fetch_optional(conn)
    .await?;
    Ok(account.unwrap_or(serde_json::Value::Null))
}

/// Whether the caller's personal data is sealed (since when) or erased (when).
async fn export_key(
    conn: &mut sqlx::PgConnection,
    player: uuid::Uuid,
) -> anyhow::Result<serde_json::Value> {
    let key: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('sealed_since', created_at, 'erased_at', erased_at) \
           FROM subject_keys WHERE player_id = $1",
    )
    .bind(player)
    .fetch_optional(conn)
    .await?;
    Ok(key.unwrap_or(serde_json::Value::Null))
}

/// The accounts module's settings, as the binary reads them (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct AccountsArgs {
    /// argon2id memory cost of password hashes, in KiB.
    #[arg(long, env = "QUESTLOG_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,

    /// argon2id passes over the memory.
    #[arg(long, env = "QUESTLOG_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// argon2id lanes.
    #[arg(long, env = "QUESTLOG_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Failed logins for one email that lock it (429 `locked`) …
    #[arg(long, env = "QUESTLOG_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// … within this many seconds.
    #[arg(long, env = "QUESTLOG_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u32,
}

impl Default for AccountsArgs {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            login_max_failures: 5,
            login_window_secs: 900,
        }
    }
}

impl AccountsArgs {
    /// The module these settings configure, its sessions job every `prune_interval` (its
    /// default when `None`).
    ///
    /// # Errors
    /// When the argon2 parameters are out of range.
    pub fn module(&self, prune_interval: Option<std::time::Duration>) -> anyhow::Result<Accounts> {
        let cost = Cost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        };
        // Checked here, at start, so that a bad configuration never reaches a request.
        Hasher::new(cost)?;
        Ok(Accounts {
            cost,
            max_failures: self.login_max_failures,
            window: chrono::Duration::seconds(i64::from(self.login_window_secs)),
            prune_interval,
        })
    }
}
