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

use anyhow::Context as _;
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
        // Submissions fold together until a board event (whose definition they depend on).
        let mut scores: Vec<Scored<'_>> = Vec::new();
        for decoded in events {
            let Some(event) = decoded.event.get::<Event>() else {
                continue;
            };
            let position = decoded.position();
            let at = decoded.recorded.recorded_at;
            if !matches!(event, Event::ScoreSubmitted { .. }) {
                // The submissions before a board event fold under the definition they had.
                submit_all(tx, &std::mem::take(&mut scores)).await?;
            }
            let board = match event {
                Event::ScoreSubmitted {
                    leaderboard,
                    player_id,
                    season,
                    score,
                    subscore,
                    metadata,
                } => {
                    scores.push(Scored {
                        board: leaderboard.as_str(),
                        season: i32::try_from(*season)?,
                        player_id: player_id.0,
                        submission: Submission {
                            score: *score,
                            subscore: *subscore,
                            metadata: metadata.clone(),
                            position,
                            at,
                        },
                    });
                    changes.push(Change {
                        topic: CHANGES.to_owned(),
                        key: leaderboard.as_str().to_owned(),
                        op: ChangeOp::Upsert,
                        position,
                    });
                    continue;
                }
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
            };
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
            changes.push(Change {
                topic: CHANGES.to_owned(),
                key: board.to_owned(),
                op: ChangeOp::Upsert,
                position,
            });
        }
        submit_all(tx, &scores).await?;
        Ok(changes)
    }
}

/// One score submission of a batch.
struct Scored<'a> {
    board: &'a str,
    season: i32,
    player_id: Uuid,
    submission: Submission,
}

/// One entry as the board shows it, with its summary.
#[derive(Debug, Clone)]
struct Entry {
    season: i32,
    player_id: Uuid,
    record: Record,
    summary: Summary,
}

/// A new version of an entry, valid over the positions `[valid_from, valid_to)`.
struct Version<'a> {
    board: &'a str,
    order: Order,
    entry: Entry,
    valid_from: i64,
    valid_to: i64,
}

/// The stored open version of an entry as a batch leaves it: closed at a position (where the
/// batch's first new version of the entry starts), and the summary last folded into it.
#[derive(Default)]
struct Stored {
    closed_at: Option<i64>,
    summary: Option<Summary>,
}

/// An entry of a batch: its summary so far, its stored open version (if it had one), and the
/// versions the batch adds (the last one open).
#[derive(Default)]
struct Folding<'a> {
    summary: Option<Summary>,
    stored: Option<Stored>,
    versions: Vec<Version<'a>>,
}

/// Folds a batch's submissions into their players' entries: reads every board's definition and
/// every open entry the batch touches in one statement each, folds in memory, and writes in one
/// statement each the closing of the superseded stored versions and every new version, each
/// valid from its submission's position as if folded one by one.
async fn submit_all(tx: &mut PgConnection, scores: &[Scored<'_>]) -> anyhow::Result<()> {
    if scores.is_empty() {
        return Ok(());
    }
    let boards: Vec<&str> = scores
        .iter()
        .map(|s| s.board)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let definitions: BTreeMap<String, (Order, Operator)> = sqlx::query_as::<
        _,
        (String, String, String),
    >(
        "SELECT leaderboard, sort_order, operator FROM rm_leaderboards WHERE leaderboard = ANY($1)",
    )
    .bind(&boards)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .filter_map(|(b, o, p)| Some((b, (Order::parse(&o).ok()?, Operator::parse(&p).ok()?))))
    .collect();
    let mut entries: BTreeMap<(&str, i32, Uuid), Folding<'_>> = BTreeMap::new();
    for s in scores {
        entries.entry((s.board, s.season, s.player_id)).or_default();
    }
    let (keys_boards, (keys_seasons, keys_players)): (Vec<&str>, (Vec<i32>, Vec<Uuid>)) =
        entries.keys().map(|(b, s, p)| (*b, (*s, *p))).unzip();
    let stored = sqlx::query(
        "SELECT e.leaderboard, e.season, e.player_id, e.summary \
         FROM UNNEST($1::text[], $2::int[], $3::uuid[]) AS k(leaderboard, season, player_id) \
         JOIN rm_leaderboard_entries e ON e.leaderboard = k.leaderboard \
          AND e.season = k.season AND e.player_id = k.player_id AND e.valid_to = $4",
    )
    .bind(&keys_boards)
    .bind(&keys_seasons)
    .bind(&keys_players)
    .bind(OPEN)
    .fetch_all(&mut *tx)
    .await?;
    for row in stored {
        let board: String = row.try_get("leaderboard")?;
        let key = (
            *boards
                .iter()
                .find(|b| **b == board)
                .context("an entry of a board the batch did not name")?,
            row.try_get("season")?,
            row.try_get("player_id")?,
        );
        let entry = entries
            .get_mut(&key)
            .context("an entry the batch did not name")?;
        entry.summary = Some(serde_json::from_value(row.try_get("summary")?)?);
        entry.stored = Some(Stored::default());
    }
    for s in scores {
        let Some(&(order, operator)) = definitions.get(s.board) else {
            // The decision refuses a score for a board nobody defined: never happens.
            continue;
        };
        let entry = entries
            .get_mut(&(s.board, s.season, s.player_id))
            .context("an entry of the batch")?;
        entry.fold(s, order, operator);
    }
    let mut closes = Vec::new();
    let mut versions = Vec::new();
    for ((board, season, player_id), entry) in entries {
        if let Some(stored) = entry.stored {
            if stored.closed_at.is_some() || stored.summary.is_some() {
                closes.push(Close {
                    board,
                    season,
                    player_id,
                    closed_at: stored.closed_at,
                    summary: stored.summary,
                });
            }
        }
        versions.extend(entry.versions);
    }
    close_stored(tx, &closes).await?;
    insert_versions(tx, &versions).await
}

impl<'a> Folding<'a> {
    /// Folds a submission in: a new version where what the board shows changes, else only the
    /// summary (what a recomputation needs) of the open version.
    fn fold(&mut self, s: &Scored<'a>, order: Order, operator: Operator) {
        let shown = self.summary.as_ref().map(|x| x.record(order, operator));
        let summary = Summary::fold(self.summary.take(), &s.submission);
        let record = summary.record(order, operator);
        let position = s.submission.position;
        if shown.as_ref() == Some(&record) {
            match (self.versions.last_mut(), self.stored.as_mut()) {
                (Some(open), _) => open.entry.summary = summary.clone(),
                (None, Some(stored)) => stored.summary = Some(summary.clone()),
                (None, None) => {}
            }
        } else {
            match (self.versions.last_mut(), self.stored.as_mut()) {
                (Some(open), _) => open.valid_to = position,
                (None, Some(stored)) => stored.closed_at = Some(position),
                (None, None) => {}
            }
            self.versions.push(Version {
                board: s.board,
                order,
                entry: Entry {
                    season: s.season,
                    player_id: s.player_id,
                    record,
                    summary: summary.clone(),
                },
                valid_from: position,
                valid_to: OPEN,
            });
        }
        self.summary = Some(summary);
    }
}

/// A change to a stored open version: closed at a position, its summary replaced (`None`: as it
/// is).
struct Close<'a> {
    board: &'a str,
    season: i32,
    player_id: Uuid,
    closed_at: Option<i64>,
    summary: Option<Summary>,
}

/// Closes stored open versions and replaces their summaries.
async fn close_stored(tx: &mut PgConnection, closes: &[Close<'_>]) -> anyhow::Result<()> {
    if closes.is_empty() {
        return Ok(());
    }
    let mut boards = Vec::with_capacity(closes.len());
    let mut seasons = Vec::with_capacity(closes.len());
    let mut players = Vec::with_capacity(closes.len());
    let mut ends = Vec::with_capacity(closes.len());
    let mut summaries: Vec<Option<Value>> = Vec::with_capacity(closes.len());
    for c in closes {
        boards.push(c.board);
        seasons.push(c.season);
        players.push(c.player_id);
        ends.push(c.closed_at.unwrap_or(OPEN));
        summaries.push(c.summary.as_ref().map(serde_json::to_value).transpose()?);
    }
    sqlx::query(
        "UPDATE rm_leaderboard_entries e SET valid_to = c.valid_to, \
         summary = COALESCE(c.summary, e.summary) \
         FROM UNNEST($1::text[], $2::int[], $3::uuid[], $4::bigint[], $5::jsonb[]) \
           AS c(leaderboard, season, player_id, valid_to, summary) \
         WHERE e.leaderboard = c.leaderboard AND e.season = c.season \
           AND e.player_id = c.player_id AND e.valid_to = $6",
    )
    .bind(&boards)
    .bind(&seasons)
    .bind(&players)
    .bind(&ends)
    .bind(&summaries)
    .bind(OPEN)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds new versions of entries.
async fn insert_versions(tx: &mut PgConnection, versions: &[Version<'_>]) -> anyhow::Result<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let n = versions.len();
    let mut boards = Vec::with_capacity(n);
    let mut seasons = Vec::with_capacity(n);
    let mut players = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    let mut subscores = Vec::with_capacity(n);
    let mut metadata: Vec<Option<Value>> = Vec::with_capacity(n);
    let mut sort_scores = Vec::with_capacity(n);
    let mut sort_subscores = Vec::with_capacity(n);
    let mut reached = Vec::with_capacity(n);
    let mut updated: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut summaries: Vec<Value> = Vec::with_capacity(n);
    let mut froms = Vec::with_capacity(n);
    let mut tos = Vec::with_capacity(n);
    for v in versions {
        let e = &v.entry;
        let (sort_score, sort_subscore) = e.record.sort_keys(v.order);
        boards.push(v.board);
        seasons.push(e.season);
        players.push(e.player_id);
        scores.push(e.record.score);
        subscores.push(e.record.subscore);
        metadata.push(e.record.metadata.clone().map(Value::Object));
        sort_scores.push(sort_score);
        sort_subscores.push(sort_subscore);
        reached.push(e.record.reached);
        updated.push(e.record.at);
        summaries.push(serde_json::to_value(&e.summary)?);
        froms.push(v.valid_from);
        tos.push(v.valid_to);
    }
    sqlx::query(
        "INSERT INTO rm_leaderboard_entries (leaderboard, season, player_id, score, subscore, \
         metadata, sort_score, sort_subscore, reached, updated_at, summary, valid_from, valid_to) \
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::uuid[], $4::bigint[], $5::bigint[], \
         $6::jsonb[], $7::bigint[], $8::bigint[], $9::bigint[], $10::timestamptz[], $11::jsonb[], \
         $12::bigint[], $13::bigint[])",
    )
    .bind(&boards)
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
    .bind(&froms)
    .bind(&tos)
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
    let closes: Vec<_> = changed
        .iter()
        .map(|e| Close {
            board,
            season: e.season,
            player_id: e.player_id,
            closed_at: Some(position),
            summary: None,
        })
        .collect();
    close_stored(tx, &closes).await?;
    let versions: Vec<Version<'_>> = changed
        .into_iter()
        .map(|entry| Version {
            board,
            order,
            entry,
            valid_from: position,
            valid_to: OPEN,
        })
        .collect();
    insert_versions(tx, &versions).await?;
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
