//! The achievements' commands, parsed at the edge, and their decisions against the
//! achievement's stream and the player's achievement stream; the views those fold to.
//!
//! `grant_achievement` is one name across modules: an earlier module may own it (the academy
//! grants its built-in achievements by name). This module takes the name over and hands a grant
//! of an achievement nobody defined here to that earlier owner's command, decided in the same
//! context: an achievement defined as data is granted here, any other as before.

use std::any::Any;

use questlog_domain::values::{free_text, PlayerId};
use questlog_domain::{
    body, Actor, Context, Edge, Event as Erased, Parser, Rejection, Role, StreamId, View,
};
use serde::Deserialize;
use serde_json::Value;

use crate::builtin::BuiltinAchievements;
use crate::event::Event;
use crate::values::{self, AchievementId, Rule};
use crate::{achievement_stream, progress_stream};

/// The names this module registers itself (`grant_achievement` is taken over, see above).
pub const COMMAND_NAMES: &[&str] = &[
    "define_achievement",
    "set_achievement_progress",
    "unlock_achievement",
    "revoke_achievement",
];

/// The definition an achievement's stream folds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub title: String,
    pub description: String,
    pub hidden: bool,
    pub goal: i64,
    pub rule: Option<Rule>,
    pub authoritative: bool,
}

/// An achievement as its stream folds.
#[derive(Debug, Clone, Default)]
pub struct AchievementView(pub Option<Definition>);

impl View for AchievementView {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Erased) {
        if let Some(Event::AchievementDefined {
            title,
            description,
            hidden,
            goal,
            rule,
            authoritative,
            ..
        }) = event.get::<Event>()
        {
            self.0 = Some(Definition {
                title: title.clone(),
                description: description.clone(),
                hidden: *hidden,
                goal: *goal,
                rule: rule.clone(),
                authoritative: *authoritative,
            });
        }
    }
}

/// A player's progress on one achievement, as its stream folds (rules are the read model's).
#[derive(Debug, Clone, Default)]
pub struct ProgressView {
    pub progress: i64,
    pub unlocked: bool,
}

impl View for ProgressView {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Erased) {
        match event.get::<Event>() {
            Some(Event::AchievementProgressed { progress, .. }) => self.progress = *progress,
            Some(Event::AchievementAwarded { .. }) => self.unlocked = true,
            Some(Event::AchievementRevoked { .. }) => self.unlocked = false,
            _ => {}
        }
    }
}

/// An achievement command that passed parsing.
#[derive(Debug)]
pub enum Command {
    Define {
        achievement: AchievementId,
        definition: Definition,
    },
    SetProgress {
        achievement: AchievementId,
        player_id: Option<PlayerId>,
        progress: i64,
    },
    Unlock {
        achievement: AchievementId,
        player_id: Option<PlayerId>,
    },
    Grant {
        achievement: AchievementId,
        player_id: PlayerId,
        /// The earlier owner's command for the same body, for an achievement not defined here.
        earlier: Option<Box<dyn questlog_domain::Command>>,
    },
    Revoke {
        achievement: AchievementId,
        player_id: PlayerId,
        reason: String,
    },
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DefineBody {
    achievement: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    hidden: bool,
    /// An integer ≥ 1 (default 1).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    goal: Option<Value>,
    /// `{"count": "<event type>", "where"?: {…}}` or `{"score": "<leaderboard>", "at_least": int}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    rule: Option<Value>,
    #[serde(default)]
    authoritative: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProgressBody {
    achievement: String,
    /// An integer ≥ 0; progress only rises.
    #[schema(value_type = i64)]
    progress: Value,
    /// An admin acts for this player.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    player_id: Option<PlayerId>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    achievement: String,
    /// An admin acts for this player.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    player_id: Option<PlayerId>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    #[schema(value_type = uuid::Uuid)]
    player_id: PlayerId,
    achievement: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[schema(value_type = uuid::Uuid)]
    player_id: PlayerId,
    achievement: String,
    reason: String,
}

/// The bodies of the achievements' commands, for the API's document.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    use questlog_web::openapi::CommandDoc;
    vec![
        CommandDoc::of::<DefineBody>("define_achievement", "Define or redefine an achievement")
            .admin(),
        CommandDoc::of::<ProgressBody>(
            "set_achievement_progress",
            "Raise the progress toward an achievement without a rule",
        ),
        CommandDoc::of::<UnlockBody>("unlock_achievement", "Unlock an achievement without a rule"),
        CommandDoc::of::<GrantBody>(
            "grant_achievement",
            "Grant an achievement (one defined as data, or any of the academy's)",
        )
        .admin(),
        CommandDoc::of::<RevokeBody>("revoke_achievement", "Revoke an achievement").admin(),
    ]
}

/// A count: a JSON integer from `min` to int64's largest.
fn count(raw: &Value, min: i64, code: &'static str, what: &str) -> Result<i64, Rejection> {
    match raw {
        Value::Number(n) => n.as_i64().filter(|v| *v >= min).ok_or_else(|| {
            Rejection::invalid(code, format!("{what} is an integer from {min} in int64"))
        }),
        _ => Err(Rejection::bad_request(format!("{what} must be a number"))),
    }
}

impl Command {
    /// Parses one of [`COMMAND_NAMES`] (`grant_achievement` goes through [`grant_parser`]).
    ///
    /// # Errors
    /// `bad_request` for a body of the wrong shape; each value's own code.
    pub fn parse(name: &str, raw: &[u8], _edge: &Edge) -> Result<Self, Rejection> {
        match name {
            "define_achievement" => {
                let b: DefineBody = body(raw)?;
                Ok(Self::Define {
                    achievement: AchievementId::parse(&b.achievement)?,
                    definition: Definition {
                        title: values::title(b.title)?,
                        description: values::description(b.description)?,
                        hidden: b.hidden,
                        goal: b
                            .goal
                            .as_ref()
                            .map_or(Ok(1), |g| count(g, 1, "invalid_goal", "goal"))?,
                        rule: b.rule.map(Rule::parse).transpose()?,
                        authoritative: b.authoritative,
                    },
                })
            }
            "set_achievement_progress" => {
                let b: ProgressBody = body(raw)?;
                Ok(Self::SetProgress {
                    achievement: AchievementId::parse(&b.achievement)?,
                    player_id: b.player_id,
                    progress: count(&b.progress, 0, "invalid_progress", "progress")?,
                })
            }
            "unlock_achievement" => {
                let b: UnlockBody = body(raw)?;
                Ok(Self::Unlock {
                    achievement: AchievementId::parse(&b.achievement)?,
                    player_id: b.player_id,
                })
            }
            "revoke_achievement" => {
                let b: RevokeBody = body(raw)?;
                Ok(Self::Revoke {
                    achievement: AchievementId::parse(&b.achievement)?,
                    player_id: b.player_id,
                    reason: free_text(b.reason, "invalid_reason", "a reason", 500)?,
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

    fn achievement(&self) -> &AchievementId {
        match self {
            Self::Define { achievement, .. }
            | Self::SetProgress { achievement, .. }
            | Self::Unlock { achievement, .. }
            | Self::Grant { achievement, .. }
            | Self::Revoke { achievement, .. } => achievement,
        }
    }

    /// The player whose achievement the command changes (`None` for a definition).
    fn player(&self, actor: &Actor) -> Option<PlayerId> {
        match self {
            Self::Define { .. } => None,
            Self::SetProgress { player_id, .. } | Self::Unlock { player_id, .. } => {
                Some(player_id.unwrap_or(actor.identity))
            }
            Self::Grant { player_id, .. } | Self::Revoke { player_id, .. } => Some(*player_id),
        }
    }
}

/// The parser of `grant_achievement`: this module's grant, handing an achievement not defined
/// here to `earlier` (the name's earlier owner, if any).
pub fn grant_parser(earlier: Option<Parser>) -> Parser {
    std::sync::Arc::new(move |name: &str, raw: &[u8], edge: &Edge| {
        let b: GrantBody = body(raw)?;
        let achievement = AchievementId::parse(&b.achievement)?;
        let earlier = earlier
            .as_ref()
            .map(|parse| parse(name, raw, edge))
            .transpose()?;
        Ok(Box::new(Command::Grant {
            achievement,
            player_id: b.player_id,
            earlier,
        }) as Box<dyn questlog_domain::Command>)
    })
}

/// The parser of `define_achievement`: a definition of a built-in achievement's id is refused
/// when decided (after the kernel's admin check), since that achievement is defined in code.
pub(crate) fn define_parser(builtins: BuiltinAchievements) -> Parser {
    std::sync::Arc::new(move |name: &str, raw: &[u8], edge: &Edge| {
        let command = Command::parse(name, raw, edge)?;
        let id = command.achievement().as_str().to_owned();
        Ok(if builtins.contains(&id) {
            questlog_domain::refused_when_decided(
                Box::new(command),
                Rejection::conflict(
                    "builtin_achievement",
                    format!("achievement {id:?} is built in: its definition is code"),
                ),
            )
        } else {
            Box::new(command)
        })
    })
}

fn unknown_achievement(id: &AchievementId) -> Rejection {
    Rejection::not_found(
        "unknown_achievement",
        format!("there is no achievement {:?}", id.as_str()),
    )
}

impl questlog_domain::Command for Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Define { .. } => "define_achievement",
            Self::SetProgress { .. } => "set_achievement_progress",
            Self::Unlock { .. } => "unlock_achievement",
            Self::Grant { .. } => "grant_achievement",
            Self::Revoke { .. } => "revoke_achievement",
        }
    }

    fn admin_only(&self) -> bool {
        matches!(
            self,
            Self::Define { .. } | Self::Grant { .. } | Self::Revoke { .. }
        )
    }

    fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        let mut streams = vec![achievement_stream(self.achievement())];
        if let Some(player) = self.player(actor) {
            streams.push(progress_stream(self.achievement(), player));
        }
        if let Self::Grant {
            earlier: Some(earlier),
            ..
        } = self
        {
            for stream in earlier.streams(actor) {
                if !streams.contains(&stream) {
                    streams.push(stream);
                }
            }
        }
        streams
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Erased)>, Rejection> {
        let id = self.achievement();
        let definition = ctx
            .view::<AchievementView>(&achievement_stream(id))
            .0
            .as_ref();
        if let Self::Define {
            definition: new, ..
        } = self
        {
            if definition == Some(new) {
                return Ok(vec![]);
            }
            return Ok(vec![(
                achievement_stream(id),
                Erased::new(Event::AchievementDefined {
                    achievement: id.clone(),
                    title: new.title.clone(),
                    description: new.description.clone(),
                    hidden: new.hidden,
                    goal: new.goal,
                    rule: new.rule.clone(),
                    authoritative: new.authoritative,
                }),
            )]);
        }
        let Some(definition) = definition else {
            return match self {
                Self::Grant {
                    earlier: Some(earlier),
                    ..
                } => earlier.decide(ctx),
                _ => Err(unknown_achievement(id)),
            };
        };
        let player = self.player(&ctx.actor).unwrap_or(ctx.actor.identity);
        let stream = progress_stream(id, player);
        let mine = ctx.view::<ProgressView>(&stream);
        let on = |e: Event| (stream.clone(), Erased::new(e));
        let awarded = || {
            on(Event::AchievementAwarded {
                achievement: id.clone(),
                player_id: player,
            })
        };
        let admin = ctx.actor.role == Role::Admin;
        if let Self::SetProgress { player_id, .. } | Self::Unlock { player_id, .. } = self {
            if !admin && player_id.is_some_and(|p| p != ctx.actor.identity) {
                return Err(Rejection::forbidden(
                    "forbidden",
                    "a player sets its own achievements; only an admin names player_id",
                ));
            }
            if admin && player_id.is_none() {
                return Err(Rejection::invalid(
                    "missing_player_id",
                    "an admin names the player (player_id)",
                ));
            }
            if definition.authoritative && !admin {
                return Err(Rejection::forbidden(
                    "forbidden",
                    format!(
                        "achievement {:?} is authoritative: only the server sets it",
                        id.as_str()
                    ),
                ));
            }
            if definition.rule.is_some() {
                return Err(Rejection::conflict(
                    "achievement_has_rule",
                    "this achievement's progress comes from its rule over the player's history",
                ));
            }
        }
        match self {
            Self::SetProgress { progress, .. } => {
                if *progress < mine.progress {
                    return Err(Rejection::conflict(
                        "progress_decreased",
                        format!("progress only rises; it is {} already", mine.progress),
                    ));
                }
                let mut events = Vec::new();
                if *progress > mine.progress {
                    events.push(on(Event::AchievementProgressed {
                        achievement: id.clone(),
                        player_id: player,
                        progress: *progress,
                    }));
                }
                if *progress >= definition.goal && !mine.unlocked {
                    events.push(awarded());
                }
                Ok(events)
            }
            Self::Unlock { .. } | Self::Grant { .. } => Ok(if mine.unlocked {
                vec![]
            } else {
                vec![awarded()]
            }),
            Self::Revoke { reason, .. } => Ok(vec![on(Event::AchievementRevoked {
                achievement: id.clone(),
                player_id: player,
                reason: reason.clone(),
            })]),
            Self::Define { .. } => Ok(vec![]),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
