//! The presence module's commands: `heartbeat` as clients send it, parsed at the edge, and the
//! reaper's internal `go_offline`; their decisions against the academy's player stream, and what
//! they keep beside the log (the player's last-seen time).

use std::any::Any;

use chrono::{DateTime, Utc};
use questlog_academy::context::AcademyContext as _;
use questlog_academy::stream::StreamId as AcademyStream;
use questlog_academy::values::{LabId, PlayerId};
use questlog_academy::Event;
use questlog_domain::{body, Actor, Beside, Context, Edge, Event as Erased, Rejection, StreamId};
use serde::Deserialize;

/// A presence command that passed parsing: every value in it is valid on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Heartbeat {
        current_lab: Option<LabId>,
    },
    /// Internal, sent by the presence reaper (never over HTTP): the player has not sent a
    /// heartbeat since `last_seen`, longer ago than the presence timeout.
    GoOffline {
        player_id: PlayerId,
        last_seen: DateTime<Utc>,
    },
}

/// The names `POST /v1/commands/{name}` accepts for presence (`go_offline` is not one).
pub const COMMAND_NAMES: &[&str] = &["heartbeat"];

/// The SQL function (`questlog_beside_<kind>`) that keeps a heartbeat's last-seen time.
pub const SEEN: &str = "presence_seen";
/// The SQL function that takes a player's last-seen time away, if it is still the one the
/// presence reaper found stale (else the append conflicts with `presence: <player id>`).
pub const GONE: &str = "presence_gone";

/// The conflict an append reports when the presence reaper's claim on a player is stale.
pub const PRESENCE_CONFLICT: &str = "presence: ";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    // Required, and may be null: a client says explicitly that it is in no lab.
    /// The lab the player is in, or `null` (required).
    #[serde(deserialize_with = "present")]
    #[schema(required = true)]
    current_lab: Option<String>,
}

/// The bodies of the presence module's commands, for the API's document.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    vec![questlog_web::openapi::CommandDoc::of::<HeartbeatBody>(
        "heartbeat",
        "Say the player is online, and in which lab",
    )]
}

/// A field that must be present but may be `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

impl Command {
    /// Parses a command from its name and its raw JSON body, as `edge` sees it.
    ///
    /// # Errors
    /// `unknown_command` (not found) for a name presence does not take over HTTP, `bad_request`
    /// for a body of the wrong shape, `invalid_lab_id` for an invalid lab id.
    pub fn parse(name: &str, raw: &[u8], _edge: &Edge) -> Result<Self, Rejection> {
        match name {
            "heartbeat" => {
                let b: HeartbeatBody = body(raw)?;
                Ok(Self::Heartbeat {
                    current_lab: b.current_lab.as_deref().map(LabId::parse).transpose()?,
                })
            }
            other => Err(Rejection::not_found(
                "unknown_command",
                format!("there is no command {other:?}"),
            )),
        }
    }

    /// The kernel's parser for presence's names.
    pub(crate) fn parse_boxed(
        name: &str,
        raw: &[u8],
        edge: &Edge,
    ) -> Result<Box<dyn questlog_domain::Command>, Rejection> {
        Self::parse(name, raw, edge).map(|c| Box::new(c) as Box<dyn questlog_domain::Command>)
    }

    /// The player whose presence the command changes.
    fn player(&self, actor: &Actor) -> PlayerId {
        match self {
            Self::Heartbeat { .. } => actor.identity,
            Self::GoOffline { player_id, .. } => *player_id,
        }
    }
}

impl questlog_domain::Command for Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Heartbeat { .. } => "heartbeat",
            Self::GoOffline { .. } => "go_offline",
        }
    }

    fn admin_only(&self) -> bool {
        matches!(self, Self::GoOffline { .. })
    }

    fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        vec![AcademyStream::Player(self.player(actor)).id()]
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Erased)>, Rejection> {
        let on_player = |player: PlayerId, event: Event| {
            Ok(vec![(
                AcademyStream::Player(player).id(),
                Erased::new(event),
            )])
        };
        match self {
            Self::Heartbeat { current_lab } => {
                let player = ctx.registered_self()?;
                let event = if !player.online {
                    Event::CameOnline {
                        current_lab: current_lab.clone(),
                    }
                } else if player.current_lab != *current_lab {
                    Event::CurrentLabChanged {
                        current_lab: current_lab.clone(),
                    }
                } else {
                    return Ok(vec![]);
                };
                on_player(ctx.actor.identity, event)
            }
            Self::GoOffline {
                player_id,
                last_seen,
            } => {
                if !ctx.player(*player_id).online {
                    return Ok(vec![]);
                }
                on_player(
                    *player_id,
                    Event::WentOffline {
                        last_seen: *last_seen,
                    },
                )
            }
        }
    }

    fn beside(&self, actor: &Actor) -> Vec<Beside> {
        let item = match self {
            Self::Heartbeat { .. } => Beside {
                kind: SEEN,
                item: serde_json::json!({ "player_id": actor.identity }),
            },
            Self::GoOffline {
                player_id,
                last_seen,
            } => Beside {
                kind: GONE,
                item: serde_json::json!({ "player_id": player_id, "last_seen": last_seen }),
            },
        };
        vec![item]
    }

    fn conflict(&self, conflict: &str) -> Option<Rejection> {
        match self {
            Self::GoOffline { player_id, .. }
                if conflict.strip_prefix(PRESENCE_CONFLICT) == Some(&player_id.to_string()) =>
            {
                Some(Rejection::conflict(
                    "presence_changed",
                    "a heartbeat arrived after the reaper looked",
                ))
            }
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
