//! `questlog`: serve, migrate, and the admin commands.

use anyhow::Context as _;
use clap::Parser;
use questlog::admin::archive::{self, ImportOutcome};
use questlog::app::{prepare_database, redact, token_keys, Application};
use questlog::config::{Cli, Cmd, TokenCmd};
use questlog_domain::Role;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    questlog_web::telemetry::init("info,sqlx=warn");
    let cli = Cli::parse();
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
        Cmd::Export(args) => {
            let url = &cli.store.database_url;
            let pool = questlog_store::connect(url, 2).context("parsing the database URL")?;
            archive::export(&pool, &args.file, true, args.json, &mut std::io::stdout())
                .await
                .with_context(|| format!("exporting {} to {}", redact(url), args.file.display()))?;
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
