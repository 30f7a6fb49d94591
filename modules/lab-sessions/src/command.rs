//! The lab sessions' commands as clients send them (`start_lab`, `save_lab_state`,
//! `delete_lab_state`), parsed at the edge into domain values, their decisions against the
//! session's stream (and, to start one, what the academy knows of the player and the catalog),
//! and the working copy a save keeps beside the log.

use std::any::Any;

use questlog_academy::context::AcademyContext as _;
use questlog_academy::stream::StreamId as AcademyStream;
use questlog_academy::values::{storable, storable_json, LabId, PlayerId};
use questlog_domain::{
    body, Actor, Beside, Context, Edge, Event as Erased, Rejection, Role, StreamId,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::event::Event;
use crate::session::LabSession;
use crate::{lab_stream, MAX_STEP, MAX_VFS_BYTES};

/// A lab session command that passed parsing: every value in it is valid on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    StartLab {
        lab_id: LabId,
    },
    /// The file system is not part of the decision: it is the working copy the writer stores
    /// beside the events (see [`crate::session`]).
    SaveLabState {
        lab_id: LabId,
        vfs_snapshot: serde_json::Map<String, serde_json::Value>,
        current_step: u32,
    },
    DeleteLabState {
        lab_id: LabId,
        /// Whose state: the sender's own unless an admin names another player.
        player_id: Option<PlayerId>,
    },
}

/// The names `POST /v1/commands/{name}` accepts for lab sessions.
pub const COMMAND_NAMES: &[&str] = &["start_lab", "save_lab_state", "delete_lab_state"];

/// The SQL function (`questlog_beside_<kind>`) that keeps the latest working copy of a lab
/// session (or removes it).
pub const WORKSPACE: &str = "lab_workspace";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartLabBody {
    lab_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SaveLabStateBody {
    lab_id: String,
    /// The lab's virtual file system: a JSON object of at most 32 KiB as compact JSON.
    #[schema(value_type = Object)]
    vfs_snapshot: serde_json::Value,
    /// 0..1000.
    current_step: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteLabStateBody {
    lab_id: String,
    #[serde(default)]
    player_id: Option<Uuid>,
}

/// The bodies of the lab sessions' commands, for the API's document.
pub(crate) fn docs() -> Vec<questlog_web::openapi::CommandDoc> {
    use questlog_web::openapi::CommandDoc;
    vec![
        CommandDoc::of::<StartLabBody>("start_lab", "Start (or resume) a session of a lab"),
        CommandDoc::of::<SaveLabStateBody>("save_lab_state", "Save the session's working copy"),
        CommandDoc::of::<DeleteLabStateBody>(
            "delete_lab_state",
            "Delete a session (an admin may name any player)",
        ),
    ]
}

impl Command {
    /// Parses a command from its name and its raw JSON body, as `edge` sees it.
    ///
    /// # Errors
    /// `unknown_command` (not found) for a name lab sessions do not know, `bad_request` for a
    /// body of the wrong shape, and a value's own code (`invalid_lab_id`, `invalid_vfs`,
    /// `vfs_too_large`, `invalid_step`) for an invalid value.
    pub fn parse(name: &str, raw: &[u8], _edge: &Edge) -> Result<Self, Rejection> {
        Ok(match name {
            "start_lab" => {
                let b: StartLabBody = body(raw)?;
                Self::StartLab {
                    lab_id: LabId::parse(&b.lab_id)?,
                }
            }
            "save_lab_state" => {
                let b: SaveLabStateBody = body(raw)?;
                let lab_id = LabId::parse(&b.lab_id)?;
                let serde_json::Value::Object(vfs_snapshot) = b.vfs_snapshot else {
                    return Err(Rejection::invalid(
                        "invalid_vfs",
                        "vfs_snapshot is a JSON object",
                    ));
                };
                if !vfs_snapshot
                    .iter()
                    .all(|(path, file)| storable(path) && storable_json(file))
                {
                    return Err(Rejection::invalid(
                        "invalid_vfs",
                        "vfs_snapshot cannot hold a NUL character (U+0000) in a key or a string",
                    ));
                }
                let size = serde_json::to_vec(&vfs_snapshot).map_or(usize::MAX, |v| v.len());
                if size > MAX_VFS_BYTES {
                    return Err(Rejection::invalid(
                        "vfs_too_large",
                        format!(
                            "vfs_snapshot is {size} bytes as compact JSON; the limit is {MAX_VFS_BYTES}"
                        ),
                    ));
                }
                let current_step = u32::try_from(b.current_step)
                    .ok()
                    .filter(|s| *s <= MAX_STEP)
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "invalid_step",
                            format!("current_step is a whole number from 0 to {MAX_STEP}"),
                        )
                    })?;
                Self::SaveLabState {
                    lab_id,
                    vfs_snapshot,
                    current_step,
                }
            }
            "delete_lab_state" => {
                let b: DeleteLabStateBody = body(raw)?;
                Self::DeleteLabState {
                    lab_id: LabId::parse(&b.lab_id)?,
                    player_id: b.player_id.map(PlayerId),
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

    /// The kernel's parser for the lab sessions' names.
    pub(crate) fn parse_boxed(
        name: &str,
        raw: &[u8],
        edge: &Edge,
    ) -> Result<Box<dyn questlog_domain::Command>, Rejection> {
        Self::parse(name, raw, edge).map(|c| Box::new(c) as Box<dyn questlog_domain::Command>)
    }

    /// The session the command is about: whose, and which lab.
    fn session(&self, actor: &Actor) -> (PlayerId, &LabId) {
        match self {
            Self::StartLab { lab_id } | Self::SaveLabState { lab_id, .. } => {
                (actor.identity, lab_id)
            }
            Self::DeleteLabState { lab_id, player_id } => {
                (player_id.unwrap_or(actor.identity), lab_id)
            }
        }
    }
}

/// An active lab session of `player`, or `lab_not_started`.
fn active_session<'c>(
    ctx: &'c Context<'_>,
    stream: &StreamId,
    lab: &LabId,
) -> Result<&'c LabSession, Rejection> {
    let session = ctx.view::<LabSession>(stream);
    if session.active {
        Ok(session)
    } else {
        Err(Rejection::not_found(
            "lab_not_started",
            format!("there is no saved state of lab {lab}: send start_lab first"),
        ))
    }
}

impl questlog_domain::Command for Command {
    fn name(&self) -> &'static str {
        match self {
            Self::StartLab { .. } => "start_lab",
            Self::SaveLabState { .. } => "save_lab_state",
            Self::DeleteLabState { .. } => "delete_lab_state",
        }
    }

    fn streams(&self, actor: &Actor) -> Vec<StreamId> {
        let (owner, lab_id) = self.session(actor);
        let session = lab_stream(owner, lab_id);
        match self {
            Self::StartLab { .. } => vec![
                AcademyStream::Player(actor.identity).id(),
                AcademyStream::Catalog.id(),
                session,
            ],
            Self::SaveLabState { .. } | Self::DeleteLabState { .. } => vec![session],
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Erased)>, Rejection> {
        let (owner, lab_id) = self.session(&ctx.actor);
        let stream = lab_stream(owner, lab_id);
        let event = match self {
            Self::StartLab { .. } => {
                let player = ctx.registered_self()?;
                ctx.unlocked_lab(player, lab_id)?;
                if ctx.view::<LabSession>(&stream).active {
                    // Starting a lab already started resumes it: nothing to record.
                    return Ok(vec![]);
                }
                Event::LabStarted {
                    lab_id: lab_id.clone(),
                }
            }
            Self::SaveLabState { current_step, .. } => {
                let session = active_session(ctx, &stream, lab_id)?;
                if *current_step <= session.furthest_step {
                    return Ok(vec![]);
                }
                Event::LabProgressed {
                    lab_id: lab_id.clone(),
                    step: *current_step,
                }
            }
            Self::DeleteLabState { .. } => {
                if owner != ctx.actor.identity && ctx.actor.role != Role::Admin {
                    return Err(Rejection::forbidden(
                        "forbidden",
                        "only the player or an admin may delete a lab's state",
                    ));
                }
                active_session(ctx, &stream, lab_id)?;
                Event::LabStateDeleted {
                    lab_id: lab_id.clone(),
                }
            }
        };
        Ok(vec![(stream, Erased::new(event))])
    }

    /// A save keeps its file system and step as the session's working copy; a deletion removes
    /// it, so starting afresh starts from an empty copy.
    fn beside(&self, actor: &Actor) -> Vec<Beside> {
        let (owner, lab_id) = self.session(actor);
        let item = match self {
            Self::StartLab { .. } => return Vec::new(),
            Self::SaveLabState {
                vfs_snapshot,
                current_step,
                ..
            } => serde_json::json!({
                "player_id": owner,
                "lab_id": lab_id,
                "vfs_snapshot": vfs_snapshot,
                "current_step": current_step,
            }),
            Self::DeleteLabState { .. } => serde_json::json!({
                "player_id": owner,
                "lab_id": lab_id,
                "vfs_snapshot": null,
                "current_step": 0,
            }),
        };
        vec![Beside {
            kind: WORKSPACE,
            item,
        }]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
