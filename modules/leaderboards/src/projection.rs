//! The leaderboards' read model (`rm_leaderboards`, `rm_leaderboard_seasons`,
//! `rm_leaderboard_entries`, and each board row's versions, `rm_leaderboard_versions`),
//! announced per board on the `leaderboards` change topic.
//!
//! An entry's record is the season's submissions folded by [`Summary`] and shown by the board's
//! order and operator ([`Summary::record`]); each change of what a board shows is a new version
//! of the entry (valid from the event's position), so a read as of any position ranks the
//! versions valid there. A redefinition that changes the order or the operator recomputes every
//! entry of every season from its summary, and records how many entries changed rank.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::rows::record_version;
use questlog_projector::{Decoded, Projection};
use serde_json::Value;
use sqlx::{PgConnection, Row as _};
use uuid::Uuid;

use crate::event::Event;
use crate::names::{CHANGES, LEADERBOARDS};
use crate::record::{Record, Submission, Summary};
use crate::values::{Operator, Order};

pub(crate) use questlog_projector::rows::OPEN;

/// The leaderboards projection.
pub struct Leaderboards;

/// A board's columns, live and versioned.
const BOARD: &[&str] = &[
    "leaderboard",
    "title",
    "sort_order",
    "operator",
    "reset",
    "authoritative",
    "season",
    "tick_base",
    "defined_position",
    "updated_position",
    "recomputed_position",
    "moved",
];

#[async_trait]
impl Projection for Leaderboards {
    fn name(&self) -> ProjectionName {
        LEADERBOARDS
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_leaderboards",
            "rm_leaderboard_seasons",
            "rm_leaderboard_entries",
            "rm_leaderboard_versions",
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for decoded in events {
            let Some(event) = decoded.event.get::<Event>() else {
                continue;
            };
            let position = decoded.position();
            let at = decoded.recorded.recorded_at;
            let board = match event {
                Event::LeaderboardDefined {
                    leaderboard,
                    title,
                    order,
                    operator,
                    reset,
                    authoritative,
                    at: defined_at,
                } => {
                    let board = leaderboard.as_str();
                    let before = sqlx::query(
                        "SELECT sort_order, operator, reset FROM rm_leaderboards \
                         WHERE leaderboard = $1",
                    )
                    .bind(board)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let reset = reset.as_ref().map(|r| r.as_str().to_owned());
                    match before {
                        None => {
                            sqlx::query(
                                "INSERT INTO rm_leaderboards (leaderboard, title, sort_order, \
                                 operator, reset, authoritative, tick_base, defined_position, \
                                 updated_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                            )
                            .bind(board)
                            .bind(title)
                            .bind(order.as_str())
                            .bind(operator.as_str())
                            .bind(&reset)
                            .bind(authoritative)
                            .bind(defined_at)
                            .bind(position)
                            .execute(&mut *tx)
                            .await?;
                        }
                        Some(row) => {
                            let was: (String, String, Option<String>) =
                                (row.get(0), row.get(1), row.get(2));
                            sqlx::query(
                                "UPDATE rm_leaderboards SET title = $2, sort_order = $3, \
                                 operator = $4, reset = $5, authoritative = $6, \
                                 tick_base = CASE WHEN reset IS DISTINCT FROM $5 THEN $7 \
                                             ELSE tick_base END, \
                                 updated_position = $8 WHERE leaderboard = $1",
                            )
                            .bind(board)
                            .bind(title)
                            .bind(order.as_str())
                            .bind(operator.as_str())
                            .bind(&reset)
                            .bind(authoritative)
                            .bind(defined_at)
                            .bind(position)
                            .execute(&mut *tx)
                            .await?;
                            if (was.0.as_str(), was.1.as_str())
                                != (order.as_str(), operator.as_str())
                            {
                                let moved =
                                    recompute(tx, board, *order, *operator, position).await?;
                                sqlx::query(
                                    "UPDATE rm_leaderboards SET recomputed_position = $2, \
                                     moved = $3 WHERE leaderboard = $1",
                                )
                                .bind(board)
                                .bind(position)
                                .bind(moved)
                                .execute(&mut *tx)
                                .await?;
                            }
                        }
                    }
                    board
                }
                Event::LeaderboardSeasonStarted {
                    leaderboard,
                    season,
                    started_at,
                } => {
                    let board = leaderboard.as_str();
                    let season = i32::try_from(*season)?;
                    sqlx::query(
                        "UPDATE rm_leaderboard_seasons SET ended_at = $3, ended_position = $4 \
                         WHERE leaderboard = $1 AND season = $2 - 1",
                    )
                    .bind(board)
                    .bind(season)
                    .bind(started_at)
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO rm_leaderboard_seasons (leaderboard, season, started_at, \
                         started_position) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(board)
                    .bind(season)
                    .bind(started_at)
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE rm_leaderboards SET season = $2, tick_base = $3, \
                         updated_position = $4 WHERE leaderboard = $1",
                    )
                    .bind(board)
                    .bind(season)
                    .bind(started_at)
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                    board
                }
                Event::ScoreSubmitted {
                    leaderboard,
                    player_id,
                    season,
                    score,
                    subscore,
                    metadata,
                } => {
                    let board = leaderboard.as_str();
                    let submission = Submission {
                        score: *score,
                        subscore: *subscore,
                        metadata: metadata.clone(),
                        position,
                        at,
                    };
                    submit(tx, board, i32::try_from(*season)?, player_id.0, &submission).await?;
                    board
                }
            };
            if !matches!(event, Event::ScoreSubmitted { .. }) {
                record_version(
                    tx,
                    "rm_leaderboards",
                    "rm_leaderboard_versions",
                    BOARD,
                    "leaderboard",
                    board,
                    position,
                )
                .await?;
            }
            changes.push(Change {
                topic: CHANGES.to_owned(),
                key: board.to_owned(),
                op: ChangeOp::Upsert,
                position,
            });
        }
        Ok(changes)
    }
}

/// The board's order and operator as the read model holds them.
async fn definition(
    tx: &mut PgConnection,
    board: &str,
) -> anyhow::Result<Option<(Order, Operator)>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT sort_order, operator FROM rm_leaderboards WHERE leaderboard = $1")
            .bind(board)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row.and_then(|(o, p)| Some((Order::parse(&o).ok()?, Operator::parse(&p).ok()?))))
}

/// One entry as the board shows it, with its summary.
#[derive(Debug, Clone)]
struct Entry {
    season: i32,
    player_id: Uuid,
    record: Record,
    summary: Summary,
}

/// Folds a submission into the player's entry of the season.
async fn submit(
    tx: &mut PgConnection,
    board: &str,
    season: i32,
    player_id: Uuid,
    submission: &Submission,
) -> anyhow::Result<()> {
    let Some((order, operator)) = definition(tx, board).await? else {
        // The decision refuses a score for a board nobody defined: never happens.
        return Ok(());
    };
    let live: Option<Value> = sqlx::query_scalar(
        "SELECT summary FROM rm_leaderboard_entries \
         WHERE leaderboard = $1 AND season = $2 AND player_id = $3 AND valid_to = $4",
    )
    .bind(board)
    .bind(season)
    .bind(player_id)
    .bind(OPEN)
    .fetch_optional(&mut *tx)
    .await?;
    let before: Option<Summary> = live.map(serde_json::from_value).transpose()?;
    let shown = before.as_ref().map(|s| s.record(order, operator));
    let summary = Summary::fold(before, submission);
    let record = summary.record(order, operator);
    if shown.as_ref() == Some(&record) {
        // What the board shows is unchanged: no new version, only what a recomputation needs.
        sqlx::query(
            "UPDATE rm_leaderboard_entries SET summary = $4 \
             WHERE leaderboard = $1 AND season = $2 AND player_id = $3 AND valid_to = $5",
        )
        .bind(board)
        .bind(season)
        .bind(player_id)
        .bind(serde_json::to_value(&summary)?)
        .bind(OPEN)
        .execute(&mut *tx)
        .await?;
        return Ok(());
    }
    let entry = Entry {
        season,
        player_id,
        record,
        summary,
    };
    write_versions(tx, board, order, submission.position, &[entry]).await
}

/// Closes the open versions of `entries` at `position` and opens their new ones from it.
async fn write_versions(
    tx: &mut PgConnection,
    board: &str,
    order: Order,
    position: i64,
    entries: &[Entry],
) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let seasons: Vec<i32> = entries.iter().map(|e| e.season).collect();
    let players: Vec<Uuid> = entries.iter().map(|e| e.player_id).collect();
    sqlx::query(
        "UPDATE rm_leaderboard_entries e SET valid_to = $2 \
         FROM UNNEST($3::int[], $4::uuid[]) AS c(season, player_id) \
         WHERE e.leaderboard = $1 AND e.season = c.season AND e.player_id = c.player_id \
           AND e.valid_to = $5",
    )
    .bind(board)
    .bind(position)
    .bind(&seasons)
    .bind(&players)
    .bind(OPEN)
    .execute(&mut *tx)
    .await?;
    let mut scores = Vec::with_capacity(entries.len());
    let mut subscores = Vec::with_capacity(entries.len());
    let mut metadata: Vec<Option<Value>> = Vec::with_capacity(entries.len());
    let mut sort_scores = Vec::with_capacity(entries.len());
    let mut sort_subscores = Vec::with_capacity(entries.len());
    let mut reached = Vec::with_capacity(entries.len());
    let mut updated: Vec<DateTime<Utc>> = Vec::with_capacity(entries.len());
    let mut summaries: Vec<Value> = Vec::with_capacity(entries.len());
    for e in entries {
        let (sort_score, sort_subscore) = e.record.sort_keys(order);
        scores.push(e.record.score);
        subscores.push(e.record.subscore);
        metadata.push(e.record.metadata.clone().map(Value::Object));
        sort_scores.push(sort_score);
        sort_subscores.push(sort_subscore);
        reached.push(e.record.reached);
        updated.push(e.record.at);
        summaries.push(serde_json::to_value(&e.summary)?);
    }
    sqlx::query(
        "INSERT INTO rm_leaderboard_entries (leaderboard, season, player_id, score, subscore, \
         metadata, sort_score, sort_subscore, reached, updated_at, summary, valid_from) \
         SELECT $1, * , $12 FROM UNNEST($2::int[], $3::uuid[], $4::bigint[], $5::bigint[], \
         $6::jsonb[], $7::bigint[], $8::bigint[], $9::bigint[], $10::timestamptz[], $11::jsonb[])",
    )
    .bind(board)
    .bind(&seasons)
    .bind(&players)
    .bind(&scores)
    .bind(&subscores)
    .bind(&metadata)
    .bind(&sort_scores)
    .bind(&sort_subscores)
    .bind(&reached)
    .bind(&updated)
    .bind(&summaries)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What an entry showed before a recomputation: its record and its sort keys.
type Shown = (Record, (i64, i64));

/// Recomputes every season's entries of `board` for a new order and operator, as of `position`.
/// Returns how many entries changed rank.
async fn recompute(
    tx: &mut PgConnection,
    board: &str,
    order: Order,
    operator: Operator,
    position: i64,
) -> anyhow::Result<i64> {
    let rows = sqlx::query(
        "SELECT season, player_id, score, subscore, metadata, reached, updated_at, summary, \
         sort_score, sort_subscore \
         FROM rm_leaderboard_entries WHERE leaderboard = $1 AND valid_to = $2 \
         ORDER BY season, sort_score DESC, sort_subscore DESC, reached, player_id",
    )
    .bind(board)
    .bind(OPEN)
    .fetch_all(&mut *tx)
    .await?;
    // Each season's entries in their old rank order.
    let mut seasons: BTreeMap<i32, Vec<(Shown, Entry)>> = BTreeMap::new();
    for row in rows {
        let metadata: Option<Value> = row.get("metadata");
        let old = Record {
            score: row.get("score"),
            subscore: row.get("subscore"),
            metadata: metadata.and_then(|m| match m {
                Value::Object(map) => Some(map),
                _ => None,
            }),
            reached: row.get("reached"),
            at: row.get("updated_at"),
        };
        let summary: Summary = serde_json::from_value(row.get("summary"))?;
        let entry = Entry {
            season: row.get("season"),
            player_id: row.get("player_id"),
            record: summary.record(order, operator),
            summary,
        };
        let keys = (row.get("sort_score"), row.get("sort_subscore"));
        seasons
            .entry(entry.season)
            .or_default()
            .push(((old, keys), entry));
    }
    let mut moved = 0_i64;
    let mut changed = Vec::new();
    for (_, entries) in seasons {
        let mut ranked: Vec<(usize, &Entry)> = entries.iter().map(|(_, e)| e).enumerate().collect();
        ranked.sort_by(|(_, a), (_, b)| rank_order(order, a, b));
        moved += ranked
            .iter()
            .enumerate()
            .filter(|(new_rank, (old_rank, _))| new_rank != old_rank)
            .count() as i64;
        changed.extend(
            entries
                .into_iter()
                .filter(|((old, keys), e)| *old != e.record || *keys != e.record.sort_keys(order))
                .map(|(_, e)| e),
        );
    }
    write_versions(tx, board, order, position, &changed).await?;
    Ok(moved)
}

/// The board's ranking: higher sort keys first, then who reached the record first, then by id.
fn rank_order(order: Order, a: &Entry, b: &Entry) -> std::cmp::Ordering {
    let key = |e: &Entry| {
        let (s, ss) = e.record.sort_keys(order);
        (
            std::cmp::Reverse(s),
            std::cmp::Reverse(ss),
            e.record.reached,
            e.player_id,
        )
    };
    key(a).cmp(&key(b))
}
