//! `questlog catalog apply <file.toml> [--json]`: the admin command the academy adds to the
//! binary. It applies a catalog file ([`super::apply`]) and prints what each entry did.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{FromArgMatches as _, Subcommand};
use questlog_command_api::admin::output::listing;
use questlog_command_api::admin::{AdminCommandsExt as _, AdminContext};
use questlog_domain::{App, Domain};
use sqlx::PgPool;

use super::apply::{apply_toml as apply_text, Applied};

/// The academy's catalog of modules and labs.
#[derive(Debug, Subcommand)]
enum CatalogCmd {
    /// Define the modules and labs of a TOML file (see the README for its format). Applying the
    /// same file again changes nothing.
    Apply {
        /// The catalog file (TOML: `[[module]]` and `[[lab]]` tables).
        file: PathBuf,
        /// Print what was applied as a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// Adds `catalog` to the binary's admin commands.
pub(crate) fn register(app: &mut App) {
    let command = CatalogCmd::augment_subcommands(
        clap::Command::new("catalog")
            .about("The academy module's catalog of modules and labs.")
            .subcommand_required(true),
    );
    app.add_admin_command(command, run);
}

async fn run(context: AdminContext) -> anyhow::Result<()> {
    match CatalogCmd::from_arg_matches(&context.matches)? {
        CatalogCmd::Apply { file, json } => {
            let mut printed = Vec::new();
            let applied = apply(&context.pool, context.domain, &file, json, &mut printed).await;
            std::io::stdout().write_all(&printed)?;
            applied
        }
    }
}

/// `questlog catalog apply`: reads `path`, applies it and prints what each entry did.
///
/// # Errors
/// When the file cannot be read, or as [`apply_toml`].
pub async fn apply(
    pool: &PgPool,
    domain: Arc<Domain>,
    path: &Path,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the catalog file {}", path.display()))?;
    apply_toml(pool, domain, &text, json, out)
        .await
        .with_context(|| format!("applying {}", path.display()))
}

/// Applies a catalog given as TOML text, printing what each entry did.
///
/// # Errors
/// When the text is not a catalog file, an entry is invalid or refused by the domain (naming the
/// entry; nothing is appended then), the database cannot be reached, or writing fails.
pub async fn apply_toml(
    pool: &PgPool,
    domain: Arc<Domain>,
    text: &str,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let report = apply_text(pool, domain, text).await?;
    if report.failure.is_none() || !report.applied.is_empty() {
        listing(
            out,
            json,
            &["entry", "title", "result", "position"],
            &report.applied,
            |a: &Applied| {
                vec![
                    a.entry(),
                    a.title.clone(),
                    a.result.as_str().to_owned(),
                    a.position.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                ]
            },
        )?;
    }
    report.outcome()
}
