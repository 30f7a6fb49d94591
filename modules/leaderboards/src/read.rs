//! The leaderboards' reads, from the leaderboards projection:
//!
//! - `GET /v1/leaderboards`: every board's definition, its current season and its last
//!   recomputation (how many entries moved);
//! - `GET /v1/leaderboards/{id}?season=&limit=&after=&players=`: a page of a season's standings
//!   (the current season by default), or of a friends board (`players=`: ranked among
//!   themselves);
//! - `GET /v1/leaderboards/{id}/players/{id|me}?radius=&season=&players=`: a player's entry
//!   and its neighbours;
//! - `GET /v1/leaderboards/{id}/seasons`: every season's start and end;
//! - the live topic `leaderboard:<id>`: the current season's top `leaderboard_limit`.
//!
//! Every read takes `min_position` and `as_of`: the entries as of a position are the versions
//! valid there (the projection keeps one per change), ranked by the live read's own SQL.
//!
//! The order is total: higher sort keys first (the score, then the subscore, each in the board's
//! order), equal ones by who reached the record first, then by player id; pages are keyset pages
//! whose cursor carries the last entry's key and rank.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_bus::{Change, ChangeOp, ProjectionName, TopicKind};
use questlog_domain::{Actor, App};
use questlog_query_api::live::{
    invalid_topic, to_value, Options, Reading, Source as Changes, Topic, TopicKindReads, Update,
};
use questlog_query_api::params::{query, At, Consistency, ReadParams};
use questlog_query_api::snapshot::answer;
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::builtin::{BuiltinBoard, BuiltinBoards};
use crate::names::{BOARD_TOPIC, CHANGES, LEADERBOARDS};
use crate::values::BoardId;
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

/// The projection every read follows.
const READS: &[ProjectionName] = &[LEADERBOARDS];

/// The page size unless told otherwise.
pub const DEFAULT_LIMIT: i64 = 10;
/// The largest page; more (or less than 1) is 422 `invalid_limit`.
pub const MAX_LIMIT: i64 = 100;
/// The neighbours each side unless told otherwise.
pub const DEFAULT_RADIUS: i64 = 5;
/// The most neighbours each side; more (or fewer than 0) is 422 `invalid_radius`.
pub const MAX_RADIUS: i64 = 50;
/// The most players a friends board ranks; more is 422 `too_many_players`.
pub const MAX_PLAYERS: usize = 100;

/// The module's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, page, around, seasons))]
struct ApiDoc;

/// Registers the routes and the topic.
pub(crate) fn register(app: &mut App, builtins: BuiltinBoards) {
    app.add_read_routes(
        Router::new()
            .route("/v1/leaderboards", get(list))
            .route("/v1/leaderboards/{id}", get(page))
            .route("/v1/leaderboards/{id}/players/{player}", get(around))
            .route("/v1/leaderboards/{id}/seasons", get(seasons))
            .layer(Extension(builtins.clone())),
    )
    .add_topic(BoardTopics { builtins })
    .add_read_projections(READS);
    app.add_api_docs(ApiDoc::openapi());
}

/// One line of a board.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = BoardEntry)]
pub struct Entry {
    #[sqlx(skip)]
    pub rank: i64,
    pub player_id: Uuid,
    /// `null` for a player with no name, or an erased one.
    pub username: Option<String>,
    /// Whether the player was erased (its entry keeps its place).
    pub erased: bool,
    pub score: i64,
    pub subscore: i64,
    pub metadata: Option<Value>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    sort_score: i64,
    #[serde(skip)]
    sort_subscore: i64,
    #[serde(skip)]
    reached: i64,
}

impl Ranked for Entry {
    fn key(&self) -> Key {
        Key {
            score: self.sort_score,
            subscore: self.sort_subscore,
            reached: self.reached,
            player_id: self.player_id,
        }
    }

    fn set_rank(&mut self, rank: i64) {
        self.rank = rank;
    }
}

/// A place in a board's order: higher sort keys first, then who reached the record first, then
/// the player's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The sort score (descending, whichever the board's order).
    pub score: i64,
    /// The sort subscore (likewise).
    pub subscore: i64,
    /// The position at which the record was reached.
    pub reached: i64,
    pub player_id: Uuid,
}

/// A line a ranking reads, as its read shows it, with its place in the board's order.
pub trait Ranked: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {
    fn key(&self) -> Key;

    fn set_rank(&mut self, rank: i64);
}

/// Where a page ends: the last entry's key and rank, written
/// `<sort score>.<sort subscore>.<reached>.<rank>.<id>` (opaque to clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    key: Key,
    rank: i64,
}

/// The highest rank a cursor may carry: the entries after it are numbered without overflow.
const MAX_CURSOR_RANK: i64 = i64::MAX - MAX_LIMIT - 1;

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.key.score,
            self.key.subscore,
            self.key.reached,
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
        let parts: Vec<&str> = raw.split('.').collect();
        let [score, subscore, reached, rank, player_id] = parts[..] else {
            return Err(bad());
        };
        let cursor = Self {
            key: Key {
                score: score.parse().map_err(|_| bad())?,
                subscore: subscore.parse().map_err(|_| bad())?,
                reached: reached.parse().map_err(|_| bad())?,
                player_id: Uuid::parse_str(player_id).map_err(|_| bad())?,
            },
            rank: rank.parse().map_err(|_| bad())?,
        };
        if !(1..=MAX_CURSOR_RANK).contains(&cursor.rank) {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// A defined board's entries, as a `FROM` item named `e` (the live filter written out, so the
/// planner matches the partial indexes).
fn entries(at: At) -> String {
    let filter = match at {
        At::Now => format!("valid_to = {}", crate::projection::OPEN),
        At::AsOf(_) => questlog_query_api::as_of::valid_at(AS_OF),
    };
    format!("(SELECT * FROM rm_leaderboard_entries WHERE {filter}) e")
}

/// The position of an as-of read in a [`Ranking`]'s statements, where its rows (a defined
/// board's entries, a built-in board's `rows`) name it.
pub const AS_OF: &str = "$9::bigint";

/// The position a ranking's rows are read as of, bound as [`AS_OF`] (0 for the live rows, which
/// do not name it).
fn as_of(at: At) -> i64 {
    match at {
        At::Now => 0,
        At::AsOf(p) => p,
    }
}

/// What a board's read shows of a line, over its rows `e` and the players `p`.
const COLUMNS: &str = "e.player_id, p.username, \
                       (p.player_id IS NOT NULL AND p.username IS NULL) AS erased, e.score, e.subscore, e.metadata, e.updated_at, \
                       e.sort_score, e.sort_subscore, e.reached";

/// The usernames a board's read shows.
const PLAYERS_JOIN: &str = "LEFT JOIN rm_players p ON p.player_id = e.player_id";

/// The board machinery's reads of one ranking: which rows (a board's season as of a point, all
/// of it or a set of players), shown with which columns. Keyset reads: every one is a few index
/// range scans bounded by its limit, whatever the board's size, and ranks are counted over the
/// index range ahead of a line only.
///
/// Each SQL statement binds the board as $1, the season as $2, the players as $3, the key from
/// $4, the limit as $8 and the position of an as-of read as $9 ([`AS_OF`]): one prepared
/// statement serves every past position.
#[derive(Debug, Clone)]
pub struct Ranking {
    board: String,
    season: i32,
    /// The position the rows are read as of ($9; 0, unused, for the live rows).
    as_of: i64,
    /// The rows: a `FROM` item named `e`.
    rows: String,
    /// Which of the rows are the board's season (over $1 and $2).
    filter: &'static str,
    /// What a line shows (it must name `player_id`, `sort_score`, `sort_subscore` and
    /// `reached`), and the joins it needs.
    columns: String,
    join: String,
    players: Option<Vec<Uuid>>,
}

impl Ranking {
    /// The ranking of a built-in board's rows at `at` (a [`crate::BuiltinBoard`]'s `rows`),
    /// shown with `columns` over `e` (the rows) after `join`.
    pub fn of_rows(
        at: At,
        rows: fn(At) -> String,
        columns: impl Into<String>,
        join: impl Into<String>,
    ) -> Self {
        Self {
            board: String::new(),
            season: 1,
            as_of: as_of(at),
            rows: rows(at),
            filter: "true",
            columns: columns.into(),
            join: join.into(),
            players: None,
        }
    }

    /// A defined board's season, or a built-in board's rows, as the leaderboards' reads show it.
    fn of_board(source: &Source, board: &BoardId, season: i32, at: At) -> Self {
        match source {
            Source::Defined => Self {
                board: board.to_string(),
                season,
                as_of: as_of(at),
                rows: entries(at),
                filter: "e.leaderboard = $1 AND e.season = $2",
                columns: COLUMNS.to_owned(),
                join: PLAYERS_JOIN.to_owned(),
                players: None,
            },
            Source::Builtin(builtin) => Self {
                board: board.to_string(),
                ..Self::of_rows(at, builtin.rows, COLUMNS, PLAYERS_JOIN)
            },
        }
    }

    /// `SELECT … FROM … WHERE <scope> AND <condition> ORDER BY <order> LIMIT $8`.
    fn select(&self, condition: &str, order: &str) -> String {
        let players = if self.players.is_some() {
            " AND e.player_id = ANY($3)"
        } else {
            ""
        };
        format!(
            "(SELECT {} FROM {} {} WHERE {}{players} AND {condition} ORDER BY {order} LIMIT $8)",
            self.columns, self.rows, self.join, self.filter
        )
    }

    fn bind<'q, T: Ranked>(
        &'q self,
        sql: &'q str,
        key: Option<Key>,
        limit: i64,
    ) -> sqlx::query::QueryAs<'q, Postgres, T, sqlx::postgres::PgArguments> {
        let key = key.unwrap_or(Key {
            score: 0,
            subscore: 0,
            reached: 0,
            player_id: Uuid::nil(),
        });
        sqlx::query_as(sql)
            .bind(self.board.as_str())
            .bind(self.season)
            .bind(self.players.clone().unwrap_or_default())
            .bind(key.score)
            .bind(key.subscore)
            .bind(key.reached)
            .bind(key.player_id)
            .bind(limit)
            .bind(self.as_of)
    }

    /// Up to `limit` entries right after `key` in rank order (from the top without one): three
    /// index range scans, each bounded by `limit`.
    async fn after<T: Ranked>(
        &self,
        conn: &mut PgConnection,
        key: Option<Key>,
        limit: i64,
    ) -> Result<Vec<T>, sqlx::Error> {
        const DOWN: &str = "e.sort_score DESC, e.sort_subscore DESC, e.reached, e.player_id";
        let sql = if key.is_none() {
            self.select("true", DOWN)
        } else {
            format!(
                "SELECT * FROM ({} UNION ALL {} UNION ALL {}) page \
                 ORDER BY sort_score DESC, sort_subscore DESC, reached, player_id LIMIT $8",
                self.select(
                    "e.sort_score = $4 AND e.sort_subscore = $5 AND (e.reached, e.player_id) > ($6, $7)",
                    DOWN
                ),
                self.select("e.sort_score = $4 AND e.sort_subscore < $5", DOWN),
                self.select("e.sort_score < $4", DOWN),
            )
        };
        self.bind(&sql, key, limit).fetch_all(conn).await
    }

    /// Up to `limit` entries right before `key`, nearest first.
    async fn before<T: Ranked>(
        &self,
        conn: &mut PgConnection,
        key: Key,
        limit: i64,
    ) -> Result<Vec<T>, sqlx::Error> {
        const UP: &str = "e.sort_score, e.sort_subscore, e.reached DESC, e.player_id DESC";
        let sql = format!(
            "SELECT * FROM ({} UNION ALL {} UNION ALL {}) page \
             ORDER BY sort_score, sort_subscore, reached DESC, player_id DESC LIMIT $8",
            self.select(
                "e.sort_score = $4 AND e.sort_subscore = $5 AND (e.reached, e.player_id) < ($6, $7)",
                UP
            ),
            self.select("e.sort_score = $4 AND e.sort_subscore > $5", UP),
            self.select("e.sort_score > $4", UP),
        );
        self.bind(&sql, Some(key), limit).fetch_all(conn).await
    }

    /// The rank of `key`: 1 + the entries ahead of it.
    async fn rank_of(&self, conn: &mut PgConnection, key: Key) -> Result<i64, sqlx::Error> {
        let players = if self.players.is_some() {
            " AND e.player_id = ANY($3)"
        } else {
            ""
        };
        let count = |condition: &str| {
            format!(
                "(SELECT count(*) FROM {} WHERE {}{players} AND {condition})",
                self.rows, self.filter
            )
        };
        let sql = format!(
            "SELECT 1 + {} + {} + {}",
            count("e.sort_score > $4"),
            count("e.sort_score = $4 AND e.sort_subscore > $5"),
            count(
                "e.sort_score = $4 AND e.sort_subscore = $5 AND (e.reached, e.player_id) < ($6, $7)"
            ),
        );
        sqlx::query_scalar(&sql)
            .bind(self.board.as_str())
            .bind(self.season)
            .bind(self.players.clone().unwrap_or_default())
            .bind(key.score)
            .bind(key.subscore)
            .bind(key.reached)
            .bind(key.player_id)
            .bind(0_i64)
            .bind(self.as_of)
            .fetch_one(conn)
            .await
    }

    /// The player's entry in scope, if it has one.
    async fn entry<T: Ranked>(
        &self,
        conn: &mut PgConnection,
        player_id: Uuid,
    ) -> Result<Option<T>, sqlx::Error> {
        let sql = self.select("e.player_id = $7", "e.player_id");
        self.bind(
            &sql,
            Some(Key {
                score: 0,
                subscore: 0,
                reached: 0,
                player_id,
            }),
            1,
        )
        .fetch_optional(conn)
        .await
    }

    /// The `limit` entries right after `after` (a key and its rank; from the top without one),
    /// ranked, and whether more follow.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn page<T: Ranked>(
        &self,
        conn: &mut PgConnection,
        after: Option<(Key, i64)>,
        limit: i64,
    ) -> Result<(Vec<T>, bool), sqlx::Error> {
        // One more than asked for tells whether there is a next page.
        let mut entries: Vec<T> = self.after(conn, after.map(|(k, _)| k), limit + 1).await?;
        let first_rank = after.map_or(1, |(_, rank)| rank + 1);
        for (entry, rank) in entries.iter_mut().zip(first_rank..) {
            entry.set_rank(rank);
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok((entries, more))
    }

    /// The player's entry and up to `radius` neighbours each side, ranked, in rank order
    /// (`None`: the player has no entry).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn around<T: Ranked>(
        &self,
        conn: &mut PgConnection,
        player_id: Uuid,
        radius: i64,
    ) -> Result<Option<Vec<T>>, sqlx::Error> {
        let Some(mut me) = self.entry::<T>(conn, player_id).await? else {
            return Ok(None);
        };
        let rank = self.rank_of(conn, me.key()).await?;
        me.set_rank(rank);
        let mut ahead: Vec<T> = self.before(conn, me.key(), radius).await?;
        let mut behind: Vec<T> = self.after(conn, Some(me.key()), radius).await?;
        for (entry, rank) in ahead.iter_mut().zip((1..rank).rev()) {
            entry.set_rank(rank);
        }
        for (entry, rank) in behind.iter_mut().zip(rank + 1..) {
            entry.set_rank(rank);
        }
        ahead.reverse();
        let mut entries = ahead;
        entries.push(me);
        entries.append(&mut behind);
        Ok(Some(entries))
    }
}

/// Where a board's entries are: the leaderboards' own (a defined board) or a module's read
/// model (a built-in board).
#[derive(Debug, Clone)]
enum Source {
    Defined,
    Builtin(Arc<BuiltinBoard>),
}

impl Source {
    fn of(builtins: &BuiltinBoards, board: &BoardId) -> Self {
        builtins
            .get(board.as_str())
            .map_or(Self::Defined, Self::Builtin)
    }

    /// The projections a read of the board follows.
    fn projections(&self) -> &'static [ProjectionName] {
        match self {
            Self::Defined => READS,
            Self::Builtin(b) => b.projections,
        }
    }
}

/// What one read ranks: a board's season as of a point, all of it or a set of players.
#[derive(Debug, Clone)]
struct Scope {
    board: BoardId,
    season: i32,
    ranking: Ranking,
}

/// A board's page, as `GET /v1/leaderboards/{id}` answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BoardPage)]
pub struct Page {
    leaderboard: String,
    /// `null` when the board is not defined (a live topic on a board defined later).
    season: Option<i32>,
    position: i64,
    entries: Vec<Entry>,
    next: Option<String>,
}

/// The page of `limit` entries after `cursor` (from the top without one).
async fn read_page(
    conn: &mut PgConnection,
    scope: &Scope,
    position: i64,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let (entries, more): (Vec<Entry>, bool) = scope
        .ranking
        .page(conn, cursor.map(|c| (c.key, c.rank)), limit)
        .await?;
    let next = more.then(|| entries.last()).flatten().map(|last| {
        Cursor {
            key: last.key(),
            rank: last.rank,
        }
        .encode()
    });
    Ok(Page {
        leaderboard: scope.board.to_string(),
        season: Some(scope.season),
        position,
        entries,
        next,
    })
}

/// The board a path names; an id that is not one names no board.
fn board_in_path(raw: &str) -> Result<BoardId, ApiError> {
    BoardId::parse(raw).map_err(|_| unknown_leaderboard())
}

fn unknown_leaderboard() -> ApiError {
    ApiError::not_found("unknown_leaderboard", "there is no such leaderboard")
}

/// The board's current season as the versions stand (`None`: not defined then). A built-in
/// board's one season stands from the log's start.
async fn current_season(
    conn: &mut PgConnection,
    source: &Source,
    board: &BoardId,
    rows: At,
) -> Result<Option<i32>, sqlx::Error> {
    if let Source::Builtin(_) = source {
        return Ok(Some(1));
    }
    let upto = match rows {
        At::Now => i64::MAX,
        At::AsOf(p) => p,
    };
    sqlx::query_scalar(
        "SELECT max(season) FROM rm_leaderboard_seasons \
         WHERE leaderboard = $1 AND started_position <= $2",
    )
    .bind(board.as_str())
    .bind(upto)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ScopeParams {
    /// A season's number, or `current` (the default).
    season: Option<String>,
    /// A friends board: up to 100 player ids, comma-separated, ranked among themselves.
    players: Option<String>,
}

impl ScopeParams {
    /// The players of a friends board: up to 100 ids, comma-separated.
    fn players(&self) -> Result<Option<Vec<Uuid>>, ApiError> {
        let Some(raw) = &self.players else {
            return Ok(None);
        };
        let mut players = Vec::new();
        for id in raw.split(',').filter(|s| !s.is_empty()) {
            let id = Uuid::parse_str(id.trim()).map_err(|_| {
                ApiError::bad_request("invalid_players", "players is a list of player ids")
            })?;
            if !players.contains(&id) {
                players.push(id);
            }
        }
        if players.len() > MAX_PLAYERS {
            return Err(ApiError::invalid(
                "too_many_players",
                format!("a friends board ranks at most {MAX_PLAYERS} players"),
            ));
        }
        Ok(Some(players))
    }

    /// The scope of a read of `board` in this snapshot.
    async fn scope(
        &self,
        conn: &mut PgConnection,
        source: &Source,
        board: BoardId,
        rows: At,
    ) -> Result<Scope, ApiError> {
        let players = self.players()?;
        let current = current_season(conn, source, &board, rows)
            .await?
            .ok_or_else(unknown_leaderboard)?;
        let season = match self.season.as_deref() {
            None | Some("current") => current,
            Some(raw) => {
                let season: i32 = raw.parse().map_err(|_| {
                    ApiError::bad_request("invalid_season", "season is a number or \"current\"")
                })?;
                if !(1..=current).contains(&season) {
                    return Err(ApiError::not_found(
                        "unknown_season",
                        format!("the leaderboard has seasons 1 to {current}"),
                    ));
                }
                season
            }
        };
        let mut ranking = Ranking::of_board(source, &board, season, rows);
        ranking.players = players;
        Ok(Scope {
            board,
            season,
            ranking,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// 1–100 (default 10).
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// `GET /v1/leaderboards/{id}`: one page of a season's standings.
#[utoipa::path(get, path = "/v1/leaderboards/{id}", tag = "leaderboards",
    operation_id = "leaderboard_page",
    params(("id" = String, Path, description = "The leaderboard"), ReadParams, ScopeParams, PageParams),
    summary = "A page of a season's standings", responses((status = 200, body = Page)))]
#[tracing::instrument(skip_all)]
async fn page(
    State(state): State<QueryState>,
    Extension(builtins): Extension<BuiltinBoards>,
    auth: Result<Authenticated, Problem>,
    id: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    scope: Result<Query<ScopeParams>, QueryRejection>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let Path(id) = id?;
    let board = board_in_path(&id)?;
    let consistency = Consistency::parse(query(read)?)?;
    let scope_params = query(scope)?;
    let params = query(params)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            format!("limit is 1 to {MAX_LIMIT}"),
        ));
    }
    let cursor = params.after.as_deref().map(Cursor::decode).transpose()?;
    scope_params.players()?;
    let source = Source::of(&builtins, &board);
    let (mut tx, position, rows) = consistency
        .open(&state.pool, &state.positions, source.projections())
        .await?;
    let scope = scope_params.scope(&mut tx, &source, board, rows).await?;
    let page = read_page(&mut tx, &scope, position, cursor, limit).await?;
    tx.commit().await?;
    Ok(answer(position, &page))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AroundParams {
    /// Neighbours each side, 0–50 (default 5).
    radius: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BoardAround)]
struct Around {
    leaderboard: String,
    season: i32,
    position: i64,
    entries: Vec<Entry>,
}

/// `GET /v1/leaderboards/{id}/players/{id|me}?radius=5`: a player's entry and up to `radius`
/// neighbours each side, with their ranks.
#[utoipa::path(get, path = "/v1/leaderboards/{id}/players/{player}", tag = "leaderboards",
    operation_id = "leaderboard_around",
    params(("id" = String, Path, description = "The leaderboard"), ("player" = String, Path, description = "A player id, or `me`"), ReadParams,
        ScopeParams, AroundParams),
    summary = "A player's entry with neighbours", responses((status = 200, body = Around)))]
#[tracing::instrument(skip_all)]
async fn around(
    State(state): State<QueryState>,
    Extension(builtins): Extension<BuiltinBoards>,
    auth: Result<Authenticated, Problem>,
    path: Result<Path<(String, String)>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    scope: Result<Query<ScopeParams>, QueryRejection>,
    params: Result<Query<AroundParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let Path((id, player)) = path?;
    let board = board_in_path(&id)?;
    let consistency = Consistency::parse(query(read)?)?;
    let scope_params = query(scope)?;
    let radius = query(params)?.radius.unwrap_or(DEFAULT_RADIUS);
    if !(0..=MAX_RADIUS).contains(&radius) {
        return Err(ApiError::invalid(
            "invalid_radius",
            format!("radius is 0 to {MAX_RADIUS}"),
        ));
    }
    let not_ranked = || ApiError::not_found("entry_not_found", "the player has no entry here");
    let player_id = if player == "me" {
        actor.identity.0
    } else {
        Uuid::parse_str(&player).map_err(|_| not_ranked())?
    };
    scope_params.players()?;
    let source = Source::of(&builtins, &board);
    let (mut tx, position, rows) = consistency
        .open(&state.pool, &state.positions, source.projections())
        .await?;
    let scope = scope_params.scope(&mut tx, &source, board, rows).await?;
    let entries: Vec<Entry> = scope
        .ranking
        .around(&mut tx, player_id, radius)
        .await?
        .ok_or_else(not_ranked)?;
    tx.commit().await?;
    let body = Around {
        leaderboard: scope.board.to_string(),
        season: scope.season,
        position,
        entries,
    };
    Ok(answer(position, &body))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = BoardSeason)]
struct Season {
    season: i32,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

/// `GET /v1/leaderboards/{id}/seasons`: every season, oldest first.
#[utoipa::path(get, path = "/v1/leaderboards/{id}/seasons", tag = "leaderboards",
    params(("id" = String, Path, description = "The leaderboard"), ReadParams),
    summary = "Every season of a board, oldest first", responses((status = 200, body = Vec<Season>)))]
#[tracing::instrument(skip_all)]
async fn seasons(
    State(state): State<QueryState>,
    Extension(builtins): Extension<BuiltinBoards>,
    auth: Result<Authenticated, Problem>,
    id: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let Path(id) = id?;
    let board = board_in_path(&id)?;
    let consistency = Consistency::parse(query(read)?)?;
    let source = Source::of(&builtins, &board);
    let (mut tx, position, rows) = consistency
        .open(&state.pool, &state.positions, source.projections())
        .await?;
    if let Source::Builtin(_) = source {
        // Its one season began with the log: at the first event's time.
        let seasons: Vec<Season> = sqlx::query_as(
            "SELECT 1 AS season, recorded_at AS started_at, NULL::timestamptz AS ended_at \
               FROM events ORDER BY position LIMIT 1",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(answer(position, &seasons));
    }
    let upto = match rows {
        At::Now => i64::MAX,
        At::AsOf(p) => p,
    };
    let seasons: Vec<Season> = sqlx::query_as(
        "SELECT season, started_at, \
                CASE WHEN ended_position <= $2 THEN ended_at END AS ended_at \
           FROM rm_leaderboard_seasons WHERE leaderboard = $1 AND started_position <= $2 \
          ORDER BY season",
    )
    .bind(board.as_str())
    .bind(upto)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if seasons.is_empty() {
        return Err(unknown_leaderboard());
    }
    Ok(answer(position, &seasons))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct Board {
    leaderboard: String,
    title: String,
    #[sqlx(rename = "sort_order")]
    order: String,
    operator: String,
    reset: Option<String>,
    authoritative: bool,
    season: i32,
    recomputed: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Boards {
    position: i64,
    leaderboards: Vec<Board>,
}

/// `GET /v1/leaderboards`: every board as defined now, or as it stood `as_of` a position.
#[utoipa::path(get, path = "/v1/leaderboards", tag = "leaderboards", params(ReadParams),
    summary = "Every leaderboard as defined now, or as of a position", responses((status = 200, body = Boards)))]
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<QueryState>,
    Extension(builtins): Extension<BuiltinBoards>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let (mut tx, position, at) = consistency
        .open(&state.pool, &state.positions, READS)
        .await?;
    let boards = match at {
        At::Now => "rm_leaderboards".to_owned(),
        At::AsOf(_) => "(SELECT * FROM rm_leaderboard_versions \
                          WHERE valid_from <= $1 AND valid_to > $1) b"
            .to_owned(),
    };
    let mut leaderboards: Vec<Board> = sqlx::query_as(&format!(
        "SELECT leaderboard, title, sort_order, operator, reset, authoritative, season, \
                CASE WHEN recomputed_position IS NULL THEN NULL ELSE \
                  jsonb_build_object('position', recomputed_position, 'moved', moved) END \
                  AS recomputed \
           FROM {boards} ORDER BY leaderboard"
    ))
    .bind(as_of(at))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    // The built-in boards after the defined ones, as registered: defined from the log's start.
    leaderboards.extend(builtins.all().iter().map(|b| Board {
        leaderboard: b.id.to_owned(),
        title: b.title.to_owned(),
        order: b.order.as_str().to_owned(),
        operator: b.operator.as_str().to_owned(),
        reset: None,
        authoritative: true,
        season: 1,
        recomputed: None,
    }));
    Ok(answer(
        position,
        &Boards {
            position,
            leaderboards,
        },
    ))
}

/// The subscription option naming a board topic's window (the academy's XP topic reads it too).
pub const LIMIT_OPTION: &str = "leaderboard_limit";

/// The window a board topic's options ask for ([`LIMIT_OPTION`], 1 to [`MAX_LIMIT`]; the
/// default page when they name none), checked.
///
/// # Errors
/// 400 `bad_request` when it is not an integer, 422 `invalid_limit` when out of range.
pub fn topic_limit(options: &Options) -> Result<i64, ApiError> {
    let Some(raw) = options.get(LIMIT_OPTION) else {
        return Ok(DEFAULT_LIMIT);
    };
    let limit = raw
        .parse::<i64>()
        .map_err(|_| ApiError::Client(Problem::bad_request("leaderboard_limit is an integer")))?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            format!("leaderboard_limit is 1 to {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// The `leaderboard:<id>` topic kind.
struct BoardTopics {
    builtins: BuiltinBoards,
}

impl TopicKindReads for BoardTopics {
    fn kind(&self) -> TopicKind {
        BOARD_TOPIC
    }

    fn form(&self) -> &'static str {
        "leaderboard:<id>"
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
        let Some(rest) = rest else {
            return Ok(None);
        };
        let board = BoardId::parse(rest)
            .map_err(|_| invalid_topic(format!("{rest:?} is not a leaderboard id")))?;
        let limit = topic_limit(options)?;
        let source = Source::of(&self.builtins, &board);
        Ok(Some(Arc::new(BoardTopic {
            board,
            limit,
            source,
        })))
    }
}

/// A board's current season's top `limit`, sent whole on each change, labelled with the
/// checkpoint of the projection its rows are read from (as of which it is exact).
#[derive(Debug)]
struct BoardTopic {
    board: BoardId,
    limit: i64,
    source: Source,
}

impl BoardTopic {
    /// The projection whose checkpoint labels the window.
    fn labelled_by(&self) -> ProjectionName {
        self.source.projections()[0]
    }

    async fn read(&self, conn: &mut PgConnection, position: i64) -> Result<Value, ApiError> {
        let Some(season) = current_season(conn, &self.source, &self.board, At::Now).await? else {
            return Ok(to_value(&Page {
                leaderboard: self.board.to_string(),
                season: None,
                position,
                entries: Vec::new(),
                next: None,
            }));
        };
        let scope = Scope {
            board: self.board.clone(),
            season,
            ranking: Ranking::of_board(&self.source, &self.board, season, At::Now),
        };
        Ok(to_value(
            &read_page(conn, &scope, position, None, self.limit).await?,
        ))
    }
}

impl Topic for BoardTopic {
    fn name(&self) -> String {
        BOARD_TOPIC.topic(&self.board)
    }

    fn key(&self) -> String {
        format!("{}?{LIMIT_OPTION}={}", self.name(), self.limit)
    }

    fn projections(&self) -> &'static [ProjectionName] {
        self.source.projections()
    }

    fn sources(&self) -> Vec<Changes> {
        match &self.source {
            Source::Defined => vec![Changes {
                topic: CHANGES.to_owned(),
                key: Some(self.board.to_string()),
            }],
            Source::Builtin(b) => vec![Changes::all(b.changes)],
        }
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let position = reading.checkpoint(self.labelled_by());
            Ok((position, self.read(conn, position).await?))
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
            if changes.is_empty() {
                return Ok(Vec::new());
            }
            let position = reading.checkpoint(self.labelled_by());
            Ok(vec![Update {
                key: self.board.to_string(),
                op: ChangeOp::Upsert,
                position,
                data: self.read(conn, position).await?,
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
                score: -15,
                subscore: i64::MIN,
                reached: 42,
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
            "1.2.3.4",
            "1.2.3.0.0191c1e2a6b47c3e9c1a2b3c4d5e6f70",
            "a.b.c.d.e",
        ] {
            assert!(
                matches!(Cursor::decode(raw), Err(ApiError::Client(p)) if p.code == "invalid_cursor"),
                "{raw:?} must be refused"
            );
        }
    }
}
