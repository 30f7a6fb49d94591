//! `questlog verify`: every read model rebuilt from the log and compared with the live one.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use questlog_projector::verify::TableCheck;
use sqlx::{Connection, PgConnection};

use crate::admin::output::listing;

/// A progress bar on standard error for long work, when a person is watching.
pub fn progress_bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Rebuilds every projection from the log and compares it with the live read models; prints one
/// row per table and the differing rows. Returns whether any drifted.
///
/// # Errors
/// When the database cannot be reached or an event cannot be folded.
pub async fn verify(database_url: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut conn = PgConnection::connect(database_url).await?;
    let bar = progress_bar("replaying");
    let projections = questlog_projector::all();
    let checks = questlog_projector::verify::verify(&mut conn, &projections, &mut |at, end| {
        bar.set_length(u64::try_from(end).unwrap_or(0));
        bar.set_position(u64::try_from(at).unwrap_or(0));
    })
    .await?;
    bar.finish_and_clear();
    let drifted = checks.iter().any(TableCheck::drifted);
    listing(
        out,
        json,
        &[
            "projection",
            "table",
            "position",
            "live rows",
            "replayed rows",
            "live only",
            "replay only",
        ],
        &checks,
        |c| {
            vec![
                c.projection.to_owned(),
                c.table.to_owned(),
                c.position.to_string(),
                c.live_rows.to_string(),
                c.replayed_rows.to_string(),
                c.live_only.to_string(),
                c.replay_only.to_string(),
            ]
        },
    )?;
    if !json {
        for check in checks.iter().filter(|c| c.drifted()) {
            writeln!(out, "\n{} differs from a replay of the log:", check.table)?;
            for example in &check.examples {
                writeln!(
                    out,
                    "  {}: {}",
                    example["side"].as_str().unwrap_or("?"),
                    example["row"]
                )?;
            }
        }
        writeln!(
            out,
            "{}",
            if drifted {
                "drift: the read models above differ from the log"
            } else {
                "no drift: every read model equals a replay of the log"
            }
        )?;
    }
    Ok(drifted)
}
