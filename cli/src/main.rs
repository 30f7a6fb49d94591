//! `questlog`: serve, migrate, and the admin commands.

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};
use questlog::admin::archive::{self, ImportOutcome};
use questlog::admin::inspect;
use questlog::app::{prepare_database, redact, token_keys, Application};
use questlog::config::{Cli, Cmd, StoreArgs, TokenCmd};
use questlog_command_api::admin::{AdminCommands, AdminContext};
use questlog_domain::Role;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    questlog_web::telemetry::init("info,sqlx=warn");
    match run_command_line().await {
        // Output piped into `head` or a pager that quit: the reader has what it wanted.
        Err(e) if closed_output(&e) => Ok(()),
        other => other,
    }
}

fn closed_output(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Reads the command line, the binary's own commands and every module's admin commands, and
/// runs the one it names.
async fn run_command_line() -> anyhow::Result<()> {
    let app = questlog::modules::app();
    let admin = app.part::<AdminCommands>();
    let matches = admin
        .into_iter()
        .flat_map(AdminCommands::commands)
        .fold(Cli::command(), clap::Command::subcommand)
        .get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(admin) = admin.filter(|admin| admin.contains(name)) {
            let store = StoreArgs::from_arg_matches(&matches)?;
            let context = AdminContext {
                pool: prepare_database(&store.database_url).await?,
                domain: app.domain(),
                matches: sub.clone(),
            };
            if let Some(command) = admin.run(name, context) {
                return command.await;
            }
        }
    }
    run(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Migrate => {
            prepare_database(&cli.store.database_url).await?;
            println!("database is up to date");
        }
        Cmd::Serve(serve) => {
            let shutdown = questlog_web::shutdown::on_signal();
            Application::build(&cli.store, &serve, shutdown)
                .await?
                .run()
                .await?;
        }
        Cmd::Verify { json } => {
            prepare_database(&cli.store.database_url).await?;
            let drifted = questlog::admin::rebuild::verify(
                &cli.store.database_url,
                json,
                &mut std::io::stdout(),
            )
            .await?;
            if drifted {
                std::process::exit(1);
            }
        }
        Cmd::Replay {
            projection,
            to,
            yes,
            json,
        } => {
            prepare_database(&cli.store.database_url).await?;
            let done = questlog::admin::rebuild::replay(
                &cli.store.database_url,
                &projection,
                to,
                yes,
                json,
                &mut std::io::stdout(),
            )
            .await?;
            if !done {
                std::process::exit(2);
            }
        }
        Cmd::Token(TokenCmd::Issue(args)) => {
            let pool = prepare_database(&cli.store.database_url).await?;
            let keys = token_keys(&cli.store, &pool)
                .await
                .context("loading the token secret")?;
            let identity = args.identity.unwrap_or_else(uuid::Uuid::new_v4);
            let role = if args.admin {
                Role::Admin
            } else {
                Role::Player
            };
            let token = keys.issue(identity, role);
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "identity": identity, "token": token })
                );
            } else {
                println!("{token}");
            }
        }
        Cmd::History(args) => {
            let pool = read_only(&cli.store.database_url)?;
            let out = &mut std::io::stdout().lock();
            inspect::history(&pool, &args.stream, args.from, args.to, args.json, out).await?;
        }
        Cmd::State(args) => {
            let pool = read_only(&cli.store.database_url)?;
            let out = &mut std::io::stdout().lock();
            inspect::state(&pool, &args.stream, args.at, args.json, out).await?;
        }
        Cmd::Stats(args) => {
            let pool = read_only(&cli.store.database_url)?;
            inspect::stats(&pool, args.json, &mut std::io::stdout().lock()).await?;
        }
        Cmd::Export(args) => {
            let url = &cli.store.database_url;
            let pool = questlog_store::connect(url, 2).context("parsing the database URL")?;
            archive::export(&pool, &args.file, true, args.json, &mut std::io::stdout())
                .await
                .with_context(|| format!("exporting {} to {}", redact(url), args.file.display()))?;
        }
        Cmd::Repair { yes, json } => {
            prepare_database(&cli.store.database_url).await?;
            let nats = async_nats::ConnectOptions::new()
                .connection_timeout(std::time::Duration::from_secs(5))
                .connect(
                    questlog_bus::server_urls(&cli.store.nats_url)
                        .with_context(|| format!("reading the NATS URLs {}", cli.store.nats_url))?,
                )
                .await
                .with_context(|| format!("connecting to NATS at {}", cli.store.nats_url))?;
            let repair = questlog::admin::repair::repair(
                &cli.store.database_url,
                &nats,
                &questlog_bus::Names::new(&cli.store.nats_prefix),
                yes,
                json,
                &mut std::io::stdout(),
            )
            .await?;
            if !repair.found.is_empty() && !repair.done {
                std::process::exit(2);
            }
        }
        Cmd::Import(args) => {
            let pool = prepare_database(&cli.store.database_url).await?;
            let outcome = archive::import(
                &pool,
                &args.file,
                args.yes,
                true,
                args.json,
                &mut std::io::stdout(),
            )
            .await?;
            if let ImportOutcome::Planned(_) = outcome {
                // Scripts that forgot --yes must not take the import for done.
                std::process::exit(2);
            }
        }
    }
    Ok(())
}

/// A pool for the read-only commands: they neither create the database nor migrate it, so that
/// looking at a database never changes it.
fn read_only(url: &str) -> anyhow::Result<sqlx::PgPool> {
    questlog_store::connect(url, 2)
        .with_context(|| format!("parsing the database URL {}", redact(url)))
}
