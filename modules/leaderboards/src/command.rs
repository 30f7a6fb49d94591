//! The leaderboards' commands, parsed at the edge (`define_leaderboard`, `submit_score`) and the
//! seasons job's internal `roll_seasons`, with their decisions against the board's stream.

use std::any::Any;

use questlog_domain::values::PlayerId;
use questlog_domain::{
    body, Actor, Context, Edge, Event as Erased, Parser, Rejection, Role, StreamId,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::board::{BoardView, Definition};
use crate::builtin::BuiltinBoards;
use crate::event::Event;
use crate::values::{self, BoardId, Operator, Order, Reset};
use crate::{board_stream, entry_stream};

/// The names `POST /v1/commands/{name}` accepts for leaderboards (`roll_seasons` is not one).
pub const COMMAND_NAMES: &[&str] = &["define_leaderboard", "submit_score"];

/// A leaderboard command that passed parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Admin: defines a board, or redefines it.
    Define {
        board: BoardId,
        definition: Definition,
    },
    /// A score for the sender (or, from an admin, for `player_id`).
    Submit {
        board: BoardId,
        player_id: Option<PlayerId>,
        score: i64,
        subscore: i64,
        metadata: Option<Map<String, Value>>,
    },
    /// Internal, sent by the seasons job (never over HTTP): starts the seasons whose ticks have
    /// passed.
    RollSeasons { board: BoardId },
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DefineBody {
    /// `[a-z0-9_]{1,64}`.
    leaderboard: String,
    title: String,
    /// `desc` (default) or `asc`.
    #[serde(default)]
    order: Option<String>,
    /// `best` (default), `set`, `incr` or `decr`.
    #[serde(default)]
    operator: Option<String>,
    /// A 5-field UTC cron schedule starting a new season at each tick, or `null`.
    #[serde(default)]
    reset: Option<String>,
    #[serde(default)]
    authoritative: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    leaderboard: String,
    /// An int64.
    #[schema(value_type = i64)]
    score: Value,
    /// An int64 breaking ties of scores.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    subscore: Option<Value>,
    /// A JSON object of at most 1 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// An admin submits for this player.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    player_id: Option<PlayerId>,
}

/// The bodies of the leaderboards' commands, for the API's document.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    use questlog_web::openapi::CommandDoc;
    vec![
        CommandDoc::of::<DefineBody>("define_leaderboard", "Define or redefine a leaderboard")
            .admin(),
        CommandDoc::of::<SubmitBody>("submit_score", "Submit a score to a leaderboard"),
    ]
}

impl Command {
    /// Parses a command from its name and raw JSON body.
    ///
    /// # Errors
    /// `bad_request` for a body of the wrong shape; each value's own code (`invalid_leaderboard`,
    /// `invalid_title`, `invalid_order`, `invalid_operator`, `invalid_reset`, `invalid_score`,
    /// `invalid_subscore`, `invalid_metadata`, `metadata_too_large`).
    pub fn parse(name: &str, raw: &[u8], _edge: &Edge) -> Result<Self, Rejection> {
        match name {
            "define_leaderboard" => {
                let b: DefineBody = body(raw)?;
                Ok(Self::Define {
                    board: BoardId::parse(&b.leaderboard)?,
                    definition: Definition {
                        title: values::title(b.title)?,
                        order: b.order.as_deref().map_or(Ok(Order::Desc), Order::parse)?,
                        operator: b
                            .operator
                            .as_deref()
                            .map_or(Ok(Operator::Best), Operator::parse)?,
                        reset: b.reset.as_deref().map(Reset::parse).transpose()?,
                        authoritative: b.authoritative,
                    },
                })
            }
            "submit_score" => {
                let b: SubmitBody = body(raw)?;
                Ok(Self::Submit {
                    board: BoardId::parse(&b.leaderboard)?,
                    player_id: b.player_id,
                    score: values::score(&b.score, "invalid_score", "score")?,
                    subscore: b
                        .subscore
                        .as_ref()
                        .map_or(Ok(0), |s| values::score(s, "invalid_subscore", "subscore"))?,
                    metadata: b.metadata.map(values::metadata).transpose()?,
                })
            }
            other => Err(Rejection::not_found(
                "unknown_command",
                format!("there is no command {other:?}"),
            )),
        }
    }

    pub(crate) fn parse_boxed(
        name: &str,
        raw: &[u8],
        edge: &Edge,
    ) -> Result<Box<dyn questlog_domain::Command>, Rejection> {
        Self::parse(name, raw, edge).map(|c| Box::new(c) as Box<dyn questlog_domain::Command>)
    }

    fn board(&self) -> &BoardId {
        match self {
            Self::Define { board, .. }
            | Self::Submit { board, .. }
            | Self::RollSeasons { board } => board,
        }
    }

    /// The player a submission is for: the named one, else the sender.
    fn player(player_id: Option<PlayerId>, actor: &Actor) -> PlayerId {
        player_id.unwrap_or(actor.identity)
    }
}

/// The parser of the leaderboards' commands: a command naming a built-in board is refused when
/// decided (after the kernel's admin check), since its definition is code and its scores are
/// its module's.
pub(crate) fn parser(builtins: BuiltinBoards) -> Parser {
    std::sync::Arc::new(move |name: &str, raw: &[u8], edge: &Edge| {
        let command = Command::parse(name, raw, edge)?;
        let board = command.board().as_str().to_owned();
        Ok(if builtins.get(&board).is_some() {
            questlog_domain::refused_when_decided(
                Box::new(command),
                Rejection::conflict(
                    "builtin_leaderboard",
                    format!(
                        "leaderboard {board:?} is built in: its definition is code and its \
                         scores are its module's"
                    ),
                ),
            )
        } else {
            Box::new(command)
        })
    })
}

/// The refusal of a board nobody defined.
pub fn unknown_leaderboard(board: &BoardId) -> Rejection {
    Rejection::not_found(
        "unknown_leaderboard",
        format!("there is no leaderboard {:?}", board.as_str()),
    )
}

impl questlog_domain::Command for Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Define { .. } => "define_leaderboard",
            Self::Submit { .. } => "submit_score",
            Self::RollSeasons { .. } => "roll_seasons",
        }
    }

    fn admin_only(&self) -> bool {
        matches!(self, Self::Define { .. } | Self::RollSeasons { .. })
    }

    fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        let board = board_stream(self.board());
        match self {
            Self::Submit {
                board: id,
                player_id,
                ..
            } => vec![board, entry_stream(id, Self::player(*player_id, actor))],
            _ => vec![board],
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Erased)>, Rejection> {
        let id = self.board();
        let stream = board_stream(id);
        let view = ctx.view::<BoardView>(&stream);
        let on_board = |e: Event| (stream.clone(), Erased::new(e));
        let mut events: Vec<(StreamId, Erased)> =
            view.due(id, ctx.now).into_iter().map(on_board).collect();
        let season = view.season + u32::try_from(events.len()).unwrap_or(u32::MAX);
        match self {
            Self::Define { definition, .. } => {
                if view.definition.as_ref() == Some(definition) {
                    return Ok(events);
                }
                events.push(on_board(Event::LeaderboardDefined {
                    leaderboard: id.clone(),
                    title: definition.title.clone(),
                    order: definition.order,
                    operator: definition.operator,
                    reset: definition.reset.clone(),
                    authoritative: definition.authoritative,
                    at: ctx.now,
                }));
                if view.definition.is_none() {
                    events.push(on_board(Event::LeaderboardSeasonStarted {
                        leaderboard: id.clone(),
                        season: 1,
                        started_at: ctx.now,
                    }));
                }
                Ok(events)
            }
            Self::Submit {
                player_id,
                score,
                subscore,
                metadata,
                ..
            } => {
                let definition = view
                    .definition
                    .as_ref()
                    .ok_or_else(|| unknown_leaderboard(id))?;
                let admin = ctx.actor.role == Role::Admin;
                if !admin && player_id.is_some_and(|p| p != ctx.actor.identity) {
                    return Err(Rejection::forbidden(
                        "forbidden",
                        "a player submits its own scores; only an admin names player_id",
                    ));
                }
                if admin && player_id.is_none() {
                    return Err(Rejection::invalid(
                        "missing_player_id",
                        "an admin names the player the score is for (player_id)",
                    ));
                }
                if definition.authoritative && !admin {
                    return Err(Rejection::forbidden(
                        "forbidden",
                        format!(
                            "leaderboard {:?} is authoritative: only the server submits to it",
                            id.as_str()
                        ),
                    ));
                }
                let player = Self::player(*player_id, &ctx.actor);
                events.push((
                    entry_stream(id, player),
                    Erased::new(Event::ScoreSubmitted {
                        leaderboard: id.clone(),
                        player_id: player,
                        season,
                        score: *score,
                        subscore: *subscore,
                        metadata: metadata.clone(),
                    }),
                ));
                Ok(events)
            }
            Self::RollSeasons { .. } => Ok(events),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
