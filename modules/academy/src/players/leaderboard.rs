//! The XP board: a built-in board of the leaderboards module ([`XP_BOARD`], `xp`), whose rows are
//! the players' read model (`rm_players`, and `rm_leaderboard_history` as of a position). The
//! leaderboards' reads answer it like any board (`GET /v1/leaderboards/xp`, `leaderboard:xp`);
//! `GET /v1/leaderboard` and `GET /v1/leaderboard/players/{id}` are the same board's rows read
//! through the same machinery ([`Ranking`]), shown with the academy's fields (level, XP) and
//! cursor, as index range scans of `rm_players_leaderboard (xp DESC, xp_position ASC, player_id
//! ASC)`.
//!
//! The order is total: more XP first, equal XP by who reached it first (`xp_position`), then by
//! player id, so every player has one rank, 1 + the number of players ahead. Pages are keyset
//! pages: the cursor holds the last entry's sort key and rank, the next page starts right after
//! it in the index and its ranks continue from it. No OFFSET, no scan of the players before it.
//!
//! The `leaderboard` live topic follows the top `leaderboard_limit` players (a subscription
//! option): each change sends the whole new window, read by [`read_page`] like the route.
//!
//! Where the contract is silent: `limit` and `radius` out of range are 422 (`invalid_limit`,
//! `invalid_radius`): well-formed but invalid values; unparseable ones are 400 `bad_request`.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_bus::{Change, ChangeOp, ProjectionName, TopicKind};
use questlog_domain::Actor;
// The XP board's pages and neighbourhoods are any board's: the same defaults and bounds.
use questlog_leaderboards::read::{
    topic_limit, Key as BoardKey, Ranked, Ranking, DEFAULT_LIMIT, DEFAULT_RADIUS, LIMIT_OPTION,
    MAX_LIMIT, MAX_RADIUS,
};
use questlog_leaderboards::values::{Operator, Order};
use questlog_leaderboards::BuiltinBoard;
use questlog_query_api::live::{to_value, Options, Reading, Source, Topic, TopicKindReads, Update};
use questlog_query_api::params::{query, At, Consistency, ReadParams};
use questlog_query_api::snapshot::answer;
use questlog_query_api::{ApiError, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{player_in_path, player_not_found};
use crate::names::{LEADERBOARD_CHANGES, LEADERBOARD_TOPIC, PLAYERS};

/// The projection the leaderboard is read from.
const LEADERBOARD: &[ProjectionName] = &[PLAYERS];

/// One leaderboard line.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = XpEntry)]
pub struct Entry {
    #[sqlx(skip)]
    rank: i64,
    player_id: Uuid,
    /// `null` once the player is erased.
    username: Option<String>,
    /// Whether the player was erased (the entry keeps its place).
    erased: bool,
    xp: i64,
    level: i32,
    #[serde(skip)]
    xp_position: i64,
}

impl Entry {
    fn key(&self) -> Key {
        Key {
            xp: self.xp,
            xp_position: self.xp_position,
            player_id: self.player_id,
        }
    }
}

impl Ranked for Entry {
    fn key(&self) -> BoardKey {
        Entry::key(self).into()
    }

    fn set_rank(&mut self, rank: i64) {
        self.rank = rank;
    }
}

/// A place in the leaderboard's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    xp: i64,
    xp_position: i64,
    player_id: Uuid,
}

/// The place on the XP board: the XP is the score, with no subscore; the tie goes to who reached
/// it first.
impl From<Key> for BoardKey {
    fn from(k: Key) -> Self {
        Self {
            score: k.xp,
            subscore: 0,
            reached: k.xp_position,
            player_id: k.player_id,
        }
    }
}

/// Where a page ends: the last entry's key and rank. Written as `<xp>.<xp_position>.<rank>.<id>`,
/// which clients treat as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    key: Key,
    rank: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.key.xp,
            self.key.xp_position,
            self.rank,
            self.key.player_id.simple()
        )
    }

    fn decode(raw: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "invalid_cursor",
                "the cursor is not one this API handed out",
            )
        };
        let mut parts = raw.split('.');
        let (Some(xp), Some(xp_position), Some(rank), Some(player_id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let cursor = Self {
            key: Key {
                xp: xp.parse().map_err(|_| bad())?,
                xp_position: xp_position.parse().map_err(|_| bad())?,
                player_id: Uuid::parse_str(player_id).map_err(|_| bad())?,
            },
            rank: rank.parse().map_err(|_| bad())?,
        };
        // A rank this API hands out leaves room to number the page after it.
        if !(1..=MAX_CURSOR_RANK).contains(&cursor.rank) {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// The highest rank a cursor may carry: the entries after it are numbered without overflow.
const MAX_CURSOR_RANK: i64 = i64::MAX - MAX_LIMIT - 1;

/// The XP board, built into the leaderboards: the players by XP, from the log's start, one
/// season. Its rows are the players projection's, announced on the academy's `leaderboard`
/// change topic.
pub const XP_BOARD: BuiltinBoard = BuiltinBoard {
    id: "xp",
    title: "XP",
    order: Order::Desc,
    operator: Operator::Incr,
    projections: LEADERBOARD,
    changes: LEADERBOARD_CHANGES,
    rows: xp_rows,
};

/// The XP board's rows at `at`, as a `FROM` item named `e`: the live players, or the versions of
/// `rm_leaderboard_history` valid at a past position (see `questlog_query_api::as_of`). Each row
/// has the board's columns (the XP as the score and the sort score, no subscore, reached where
/// the XP was, updated at that event's time) and the academy's own (`username`, `xp`, `level`,
/// `xp_position`).
pub fn xp_rows(at: At) -> String {
    let players = match at {
        At::Now => "rm_players".to_owned(),
        At::AsOf(_) => format!(
            "(SELECT player_id, username, xp, level, xp_position FROM rm_leaderboard_history \
               WHERE {}) h",
            questlog_query_api::as_of::valid_at(questlog_leaderboards::read::AS_OF)
        ),
    };
    format!(
        "(SELECT player_id, username, xp, level, xp_position, \
                 xp AS score, 0::bigint AS subscore, NULL::jsonb AS metadata, \
                 (SELECT recorded_at FROM events WHERE position = xp_position) AS updated_at, \
                 xp AS sort_score, 0::bigint AS sort_subscore, xp_position AS reached \
            FROM {players}) e"
    )
}

/// What the academy's reads show of a line of the XP board.
const COLUMNS: &str = "e.player_id, e.username, e.username IS NULL AS erased, e.xp, e.level, \
                       e.xp_position, e.sort_score, e.sort_subscore, e.reached";

/// The XP board at `at`, as the academy's reads rank it.
fn board(at: At) -> Ranking {
    Ranking::of_rows(at, xp_rows, COLUMNS, "")
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// 1–100 (default 10).
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// One page of the leaderboard, as `GET /v1/leaderboard` answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = XpPage)]
pub struct Page {
    position: i64,
    entries: Vec<Entry>,
    next: Option<String>,
}

/// `GET /v1/leaderboard?limit=10&after=<cursor>`: one page of the leaderboard.
#[utoipa::path(get, path = "/v1/leaderboard", tag = "academy", operation_id = "xp_leaderboard",
    params(ReadParams, PageParams), summary = "The XP leaderboard, a page at a time",
    responses((status = 200, body = Page)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn page(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let params = query(params)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            format!("limit is 1 to {MAX_LIMIT}"),
        ));
    }
    let cursor = params.after.as_deref().map(Cursor::decode).transpose()?;
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, LEADERBOARD)
        .await?;
    let page = read_page(&mut tx, at, position, cursor, limit).await?;
    tx.commit().await?;
    Ok(answer(position, &page))
}

/// The page of `limit` entries after `cursor` (from the top without one) in this snapshot, as
/// reflecting `position`. The read behind `GET /v1/leaderboard` and the `leaderboard` live topic.
pub(crate) async fn read_page(
    conn: &mut PgConnection,
    at: At,
    position: i64,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let (entries, more): (Vec<Entry>, bool) = board(at)
        .page(conn, cursor.map(|c| (c.key.into(), c.rank)), limit)
        .await?;
    let next = more.then(|| entries.last()).flatten().map(|last| {
        Cursor {
            key: last.key(),
            rank: last.rank,
        }
        .encode()
    });
    Ok(Page {
        position,
        entries,
        next,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AroundParams {
    /// Neighbours each side, 0–50 (default 5).
    radius: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = XpAround)]
struct Around {
    position: i64,
    entries: Vec<Entry>,
}

/// `GET /v1/leaderboard/players/{id}?radius=5`: a player's entry and up to `radius` neighbours
/// each side, with their ranks.
#[utoipa::path(get, path = "/v1/leaderboard/players/{id}", tag = "academy",
    operation_id = "xp_leaderboard_around",
    params(("id" = String, Path, description = "A player id, or `me`"), ReadParams, AroundParams),
    summary = "A player's place on the XP leaderboard, with neighbours",
    responses((status = 200, body = Around)))]
#[tracing::instrument(skip_all, fields(player = tracing::field::Empty))]
pub(crate) async fn around(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    id: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    params: Result<Query<AroundParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let radius = query(params)?.radius.unwrap_or(DEFAULT_RADIUS);
    if !(0..=MAX_RADIUS).contains(&radius) {
        return Err(ApiError::invalid(
            "invalid_radius",
            format!("radius is 0 to {MAX_RADIUS}"),
        ));
    }
    let player_id = player_in_path(id, actor.identity.0)?;
    tracing::Span::current().record("player", tracing::field::display(player_id));
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, LEADERBOARD)
        .await?;
    let entries: Vec<Entry> = board(at)
        .around(&mut tx, player_id, radius)
        .await?
        .ok_or_else(player_not_found)?;
    tx.commit().await?;
    Ok(answer(position, &Around { position, entries }))
}

/// The `leaderboard` topic kind: the top `leaderboard_limit` players (default 10, 1 to 100), as
/// the leaderboards' own topics take the option.
pub(crate) struct LeaderboardTopics;

impl TopicKindReads for LeaderboardTopics {
    fn kind(&self) -> TopicKind {
        LEADERBOARD_TOPIC
    }

    fn form(&self) -> &'static str {
        "leaderboard"
    }

    fn options(&self) -> &'static [&'static str] {
        &[LIMIT_OPTION]
    }

    fn check(&self, options: &Options) -> Result<(), ApiError> {
        topic_limit(options).map(|_| ())
    }

    fn parse(
        &self,
        _raw: &str,
        rest: Option<&str>,
        _caller: &Actor,
        options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        if rest.is_some() {
            return Ok(None);
        }
        let limit = topic_limit(options)?;
        Ok(Some(Arc::new(LeaderboardTopic { limit })))
    }
}

/// The top `limit` players. Its window is exact up to the players' checkpoint, so every change
/// sends the whole new window once per announcement, labelled with the checkpoint (the last
/// change that moved it is not known here; the checkpoint is as exact).
#[derive(Debug)]
pub(crate) struct LeaderboardTopic {
    limit: i64,
}

impl Topic for LeaderboardTopic {
    fn name(&self) -> String {
        LEADERBOARD_TOPIC.as_str().to_owned()
    }

    fn key(&self) -> String {
        // Two windows are two topics.
        format!("{}?{LIMIT_OPTION}={}", LEADERBOARD_TOPIC, self.limit)
    }

    fn projections(&self) -> &'static [ProjectionName] {
        LEADERBOARD
    }

    fn sources(&self) -> Vec<Source> {
        vec![Source::all(LEADERBOARD_CHANGES)]
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let position = reading.checkpoint(PLAYERS);
            let page = read_page(conn, At::Now, position, None, self.limit).await?;
            Ok((position, to_value(&page)))
        }
        .boxed()
    }

    fn changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<Vec<Update>, ApiError>> {
        async move {
            let Some(last) = changes.iter().max_by_key(|c| c.position) else {
                return Ok(Vec::new());
            };
            let position = reading.checkpoint(PLAYERS);
            let page = read_page(conn, At::Now, position, None, self.limit).await?;
            Ok(vec![Update {
                key: last.key.clone(),
                op: ChangeOp::Upsert,
                position,
                data: to_value(&page),
            }])
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let cursor = Cursor {
            key: Key {
                xp: 1500,
                xp_position: 42,
                player_id: Uuid::new_v4(),
            },
            rank: 7,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
    }

    #[test]
    fn a_malformed_cursor_is_refused() {
        for raw in [
            "",
            "abc",
            "1.2.3",
            "1.2.3.not-a-uuid",
            "1.2.0.0191c1e2a6b47c3e9c1a2b3c4d5e6f70",
            "1.2.3.0191c1e2a6b47c3e9c1a2b3c4d5e6f70.9",
            "1.2.9223372036854775807.0191c1e2a6b47c3e9c1a2b3c4d5e6f70",
            "1.2.9223372036854775707.0191c1e2a6b47c3e9c1a2b3c4d5e6f70",
        ] {
            assert!(
                matches!(Cursor::decode(raw), Err(ApiError::Client(p)) if p.code == "invalid_cursor"),
                "{raw:?} must be refused"
            );
        }
    }
}
