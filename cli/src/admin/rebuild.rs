//! `questlog verify`: every read model rebuilt from the log and compared with the live one.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

use questlog_projector::verify::TableCheck;
use questlog_projector::{Projection, Projections};
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
    verify_modules(database_url, &crate::modules::app(), json, out).await
}

/// [`verify`] for the projections of the modules registered on `app`.
///
/// # Errors
/// As [`verify`].
pub async fn verify_modules(
    database_url: &str,
    app: &questlog_domain::App,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut conn = PgConnection::connect(database_url).await?;
    let bar = progress_bar("replaying");
    let projections = Projections::of(app);
    // The log read ahead on a second connection, in the verifying transaction's snapshot.
    let reader = PgConnection::connect(database_url).await?;
    let checks = questlog_projector::verify::verify(
        &mut conn,
        Some(reader),
        &app.domain(),
        &projections,
        questlog_projector::replay::Fold::Bulk,
        &mut |at, end| {
            bar.set_length(u64::try_from(end).unwrap_or(0));
            bar.set_position(u64::try_from(at).unwrap_or(0));
        },
    )
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

/// A point of the log: a position, or an RFC 3339 time (the last event recorded at or before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Position(i64),
    Time(chrono::DateTime<chrono::Utc>),
}

impl std::str::FromStr for Point {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(p) = s.parse::<i64>() {
            return if p >= 0 {
                Ok(Self::Position(p))
            } else {
                Err("a position is 0 or more".to_owned())
            };
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Self::Time(t.with_timezone(&chrono::Utc)))
            .map_err(|_| format!("{s:?} is neither a log position nor an RFC 3339 time"))
    }
}

impl Point {
    /// The log position this point stands for.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn resolve(self, conn: &mut PgConnection) -> anyhow::Result<i64> {
        Ok(match self {
            Self::Position(p) => p,
            Self::Time(t) => {
                sqlx::query_scalar(
                    "SELECT coalesce(max(position), 0) FROM events WHERE recorded_at <= $1",
                )
                .bind(t)
                .fetch_one(conn)
                .await?
            }
        })
    }
}

/// The projections `which` names: one by name, or `all`.
///
/// # Errors
/// When no projection has that name.
pub fn select(all: &[Arc<dyn Projection>], which: &str) -> anyhow::Result<Vec<usize>> {
    if which == "all" {
        return Ok((0..all.len()).collect());
    }
    all.iter()
        .position(|p| p.name().as_str() == which)
        .map(|i| vec![i])
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|p| p.name().as_str()).collect();
            anyhow::anyhow!(
                "there is no projection {which:?}; projections are {} (or all)",
                names.join(", ")
            )
        })
}

/// `questlog replay <projection|all> [--to <point>]`: without `--to`, rebuilds from the log and
/// switches the new tables in (asks for `yes`); with it, builds the tables as of that point in a
/// schema of their own for inspection. Returns whether it did the work.
///
/// # Errors
/// When the database fails or an event cannot be folded.
pub async fn replay(
    database_url: &str,
    which: &str,
    to: Option<Point>,
    yes: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    use questlog_projector::replay;

    let app = crate::modules::app();
    let domain = app.domain();
    let all = Projections::of(&app);
    let chosen: Vec<&dyn Projection> = select(&all, which)?
        .into_iter()
        .map(|i| all[i].as_ref())
        .collect();
    let tables: Vec<&str> = chosen.iter().flat_map(|p| p.tables()).copied().collect();
    let mut conn = PgConnection::connect(database_url).await?;
    let bar = progress_bar("replaying");
    let mut progress = |at: i64, end: i64| {
        bar.set_length(u64::try_from(end).unwrap_or(0));
        bar.set_position(u64::try_from(at).unwrap_or(0));
    };
    let rebuilt = if let Some(point) = to {
        let position = point.resolve(&mut conn).await?;
        let schema = format!("questlog_asof_{position}");
        let rebuilt = replay::build_as_of(
            &mut conn,
            Some(PgConnection::connect(database_url).await?),
            &domain,
            &schema,
            &chosen,
            position,
            replay::Fold::Bulk,
            &mut progress,
        )
        .await?;
        if !json {
            writeln!(
                out,
                "built {} as of position {position} in schema {schema} (the live read models are untouched; DROP SCHEMA {schema} CASCADE when done)",
                tables.join(", ")
            )?;
        }
        rebuilt
    } else {
        if !yes {
            writeln!(
                out,
                "this rebuilds {} from the log and switches the rebuilt tables in for the live ones \
                 ({}); reads stay up. Run again with --yes to do it.",
                chosen.iter().map(|p| p.name().as_str()).collect::<Vec<_>>().join(", "),
                tables.join(", ")
            )?;
            return Ok(false);
        }
        let reader = PgConnection::connect(database_url).await?;
        replay::rebuild_and_switch(&mut conn, Some(reader), &domain, &chosen, &mut progress).await?
    };
    bar.finish_and_clear();
    listing(
        out,
        json,
        &["projection", "position", "events applied"],
        &rebuilt,
        |r| {
            vec![
                r.projection.to_owned(),
                r.position.to_string(),
                r.events.to_string(),
            ]
        },
    )?;
    Ok(true)
}
