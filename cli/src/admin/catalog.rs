//! `questlog catalog apply <file.toml>`: the academy's catalog file applied through the writer
//! (its format and rules: `questlog_academy::catalog::apply`), and what each entry did printed.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use questlog_academy::catalog::apply::{apply_toml as apply_text, Applied};
use sqlx::PgPool;

use super::output::listing;

/// `questlog catalog apply`: reads `path` and applies it.
///
/// # Errors
/// When the file cannot be read, or as [`apply_toml`].
pub async fn apply(
    pool: &PgPool,
    path: &Path,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the catalog file {}", path.display()))?;
    apply_toml(pool, &text, json, out)
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
    text: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let report = apply_text(pool, crate::modules::app().domain(), text).await?;
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
