//! `questlog`: serve, migrate, and the admin commands.

use anyhow::Context as _;
use clap::Parser;
use questlog::app::{prepare_database, token_keys, Application};
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
    }
    Ok(())
}
