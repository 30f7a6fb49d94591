//! Commands as clients send them: a name and a JSON object body, parsed at the edge into domain
//! values. Malformed JSON (a duplicate key, nesting deeper than 128), unknown fields, missing
//! fields and wrong types are `bad_request`; well-formed but invalid values carry their own code,
//! and so does text the log could not store (a NUL character, see [`crate::values::storable`]).

use questlog_domain::{body, Actor, Edge, NameKey, Rejection};
use questlog_web::openapi::CommandDoc;
use serde::Deserialize;
use uuid::Uuid;

use crate::stream::StreamId;
use crate::values::{
    free_text, Achievement, LabId, ModuleNo, PlayerId, Timezone, Username, MAX_MODULE,
};

/// A command that passed parsing: every value in it is valid on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    RegisterPlayer {
        username: Username,
        /// The keys of the streams a claim on the name may be on: the digest a new claim is made
        /// on, then the name's earlier form ([`crate::stream::claim_keys`]), drawn at the edge.
        claims: [String; 2],
    },
    SetTimezone {
        timezone: Timezone,
    },
    CompleteLab {
        lab_id: LabId,
    },
    UpdateStreak,
    DefineModule {
        module: ModuleNo,
        title: String,
        requires: Vec<ModuleNo>,
    },
    DefineLab {
        lab_id: LabId,
        module: ModuleNo,
        title: String,
        xp: u32,
    },
    GrantAchievement {
        player_id: PlayerId,
        achievement: Achievement,
    },
    RevokeXp {
        player_id: PlayerId,
        xp: u32,
        reason: String,
    },
}

/// The names `POST /v1/commands/{name}` accepts.
pub const COMMAND_NAMES: &[&str] = &[
    "register_player",
    "set_timezone",
    "complete_lab",
    "update_streak",
    "define_module",
    "define_lab",
    "grant_achievement",
    "revoke_xp",
];

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterPlayerBody {
    /// 1–30 of `[A-Za-z0-9_.-]`, unique case-insensitively.
    username: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetTimezoneBody {
    /// An IANA time zone name (`Europe/Paris`).
    timezone: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LabBody {
    lab_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DefineModuleBody {
    /// 1..2147483647.
    module: i64,
    /// 1–200 characters.
    title: String,
    /// The modules that must be complete first.
    #[serde(default)]
    requires: Vec<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DefineLabBody {
    lab_id: String,
    module: i64,
    /// 1–200 characters.
    title: String,
    /// 1..100000.
    xp: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantAchievementBody {
    player_id: Uuid,
    /// `[a-z0-9_]{1,64}`.
    achievement: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeXpBody {
    player_id: Uuid,
    /// The XP to take back (at most what the player has).
    xp: i64,
    /// 1–500 characters.
    reason: String,
}

/// The bodies of the academy's commands, for the API's document.
pub(crate) fn docs() -> Vec<CommandDoc> {
    vec![
        CommandDoc::of::<RegisterPlayerBody>("register_player", "Register the caller as a player"),
        CommandDoc::of::<SetTimezoneBody>(
            "set_timezone",
            "Set the player's time zone (streak days)",
        ),
        CommandDoc::of::<LabBody>(
            "complete_lab",
            "Complete a lab: XP, levels, modules, achievements",
        ),
        CommandDoc::of::<EmptyBody>("update_streak", "Record today's activity for the streak"),
        CommandDoc::of::<DefineModuleBody>("define_module", "Define a catalog module").admin(),
        CommandDoc::of::<DefineLabBody>("define_lab", "Define a lab of a module").admin(),
        CommandDoc::of::<GrantAchievementBody>("grant_achievement", "Grant an achievement").admin(),
        CommandDoc::of::<RevokeXpBody>("revoke_xp", "Take XP back (a compensating event)").admin(),
    ]
}

fn module_no(raw: i64) -> Result<ModuleNo, Rejection> {
    u32::try_from(raw)
        .ok()
        .filter(|m| (1..=MAX_MODULE).contains(m))
        .ok_or_else(|| {
            Rejection::invalid(
                "invalid_module",
                format!("a module is a whole number from 1 to {MAX_MODULE}"),
            )
        })
}

impl Command {
    /// `register_player` of `username`, its claim keyed under the deployment's `names`.
    pub fn register_player(username: Username, names: &NameKey) -> Self {
        Self::RegisterPlayer {
            claims: crate::stream::claim_keys(&username, names),
            username,
        }
    }

    /// Parses a command from its name and its raw JSON body, as `edge` sees it.
    ///
    /// # Errors
    /// `unknown_command` (not found) for a name questlog does not know, `bad_request` for a body of
    /// the wrong shape, and a value's own code (`invalid_username`, …) for an invalid value.
    pub fn parse(name: &str, raw: &[u8], edge: &Edge) -> Result<Self, Rejection> {
        Ok(match name {
            "register_player" => {
                let b: RegisterPlayerBody = body(raw)?;
                Self::register_player(Username::parse(&b.username)?, &edge.names)
            }
            "set_timezone" => {
                let b: SetTimezoneBody = body(raw)?;
                Self::SetTimezone {
                    timezone: Timezone::parse(&b.timezone)?,
                }
            }
            "complete_lab" => {
                let b: LabBody = body(raw)?;
                Self::CompleteLab {
                    lab_id: LabId::parse(&b.lab_id)?,
                }
            }
            "update_streak" => {
                let EmptyBody {} = body(raw)?;
                Self::UpdateStreak
            }
            "define_module" => {
                let b: DefineModuleBody = body(raw)?;
                let module = module_no(b.module)?;
                let mut requires = b
                    .requires
                    .into_iter()
                    .map(module_no)
                    .collect::<Result<Vec<_>, _>>()?;
                requires.sort_unstable();
                requires.dedup();
                Self::DefineModule {
                    module,
                    title: free_text(b.title, "invalid_title", "a title", 200)?,
                    requires,
                }
            }
            "define_lab" => {
                let b: DefineLabBody = body(raw)?;
                let xp = u32::try_from(b.xp)
                    .ok()
                    .filter(|xp| (1..=100_000).contains(xp))
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "invalid_xp",
                            "a lab's xp is a whole number from 1 to 100000",
                        )
                    })?;
                Self::DefineLab {
                    lab_id: LabId::parse(&b.lab_id)?,
                    module: module_no(b.module)?,
                    title: free_text(b.title, "invalid_title", "a title", 200)?,
                    xp,
                }
            }
            "grant_achievement" => {
                let b: GrantAchievementBody = body(raw)?;
                Self::GrantAchievement {
                    player_id: PlayerId(b.player_id),
                    achievement: Achievement::parse(&b.achievement)?,
                }
            }
            "revoke_xp" => {
                let b: RevokeXpBody = body(raw)?;
                let xp = u32::try_from(b.xp)
                    .ok()
                    .filter(|xp| *xp >= 1)
                    .ok_or_else(|| {
                        Rejection::invalid("invalid_xp", "xp to revoke is a whole number from 1 up")
                    })?;
                Self::RevokeXp {
                    player_id: PlayerId(b.player_id),
                    xp,
                    reason: free_text(b.reason, "invalid_reason", "a reason", 500)?,
                }
            }
            other => {
                return Err(Rejection::not_found(
                    "unknown_command",
                    format!("there is no command {other:?}"),
                ))
            }
        })
    }

    /// The command's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegisterPlayer { .. } => "register_player",
            Self::SetTimezone { .. } => "set_timezone",
            Self::CompleteLab { .. } => "complete_lab",
            Self::UpdateStreak => "update_streak",
            Self::DefineModule { .. } => "define_module",
            Self::DefineLab { .. } => "define_lab",
            Self::GrantAchievement { .. } => "grant_achievement",
            Self::RevokeXp { .. } => "revoke_xp",
        }
    }

    /// Whether only an admin may send it.
    pub fn admin_only(&self) -> bool {
        matches!(
            self,
            Self::DefineModule { .. }
                | Self::DefineLab { .. }
                | Self::GrantAchievement { .. }
                | Self::RevokeXp { .. }
        )
    }

    /// The streams the decision reads. Its events land only on these streams, and the append is
    /// checked against the versions they had when they were read.
    pub fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        let me = StreamId::Player(actor.identity);
        match self {
            Self::RegisterPlayer { claims, .. } => {
                let [new, earlier] = claims.clone();
                vec![me, StreamId::Username(new), StreamId::Username(earlier)]
            }
            Self::SetTimezone { .. } | Self::UpdateStreak => vec![me],
            Self::CompleteLab { .. } => vec![me, StreamId::Catalog],
            Self::DefineModule { .. } | Self::DefineLab { .. } => vec![StreamId::Catalog],
            Self::GrantAchievement { player_id, .. } | Self::RevokeXp { player_id, .. } => {
                vec![StreamId::Player(*player_id)]
            }
        }
    }
}
