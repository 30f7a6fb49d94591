//! The topics a client can subscribe to: how each is named, who may see it, which announced
//! changes touch it, and how its snapshot and its changes are read — through the same code as
//! the matching read. A new topic (`channel:<name>`) is a new variant here; the hub and the
//! transport do not change.
//!
//! Labels. Every snapshot and change carries a position at which its data is exactly what the
//! matching read answers `as_of` that position: a read model in a REPEATABLE READ snapshot
//! reflects the log up to its checkpoint in that snapshot, which may be past the announcement
//! that prompted the read, so the label comes from the snapshot, not from the announcement.
//!
//! - A topic read from one projection (the leaderboard, a lab session) is exact at every
//!   position from the last event its data reflects up to the projection's checkpoint.
//! - A profile reads two projections (players and catalog) at two checkpoints. Its data is
//!   exact from the last event of either part it reflects up to just before the first event of
//!   either part its projection has not applied (see [`span`]); when a lagging projection has
//!   yet to apply an event older than one the other has, no position is exact: the hub sends
//!   nothing then (that event's own announcement brings the profile again), and a snapshot
//!   folds the profile from the log as of the lower checkpoint instead.
//! - Presence and a channel change one row per event, so each change is that row read as of its
//!   event's position (from the presence history, and by folding the message's stream), like the
//!   as-of reads: a client applying the changes in order holds the as-of answer at each one.
//!
//! A snapshot is labelled with the highest exact position it knows of (so that a resume from it
//! can be served from retention); a change with the last event it reflects where the rows say
//! which (a profile, a lab session; presence and a channel by construction), so that a change a
//! snapshot already holds is at or below the snapshot's label, and the leaderboard's window with
//! the players' checkpoint (the last change that moved it is not known). Since every label is
//! exact, a change at or below what a client holds is never news to it.

use questlog_academy::values::{Channel, LabId, PlayerId};
use questlog_academy::{Actor, Role};
use questlog_bus::{Change, ChangeOp};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::channels::{forbidden, messages_as_of, read_history, DEFAULT_MESSAGES};
use crate::error::ApiError;
use crate::lab_sessions::{lab_forbidden, read_session_at};
use crate::leaderboard::{read_page, Board};
use crate::players::{profile_as_of, read_profile_at, PROFILE};
use crate::presence::{online_as_of, read_presence};
use crate::projection::{CATALOG, CHAT, LABS, PLAYERS, PRESENCE};

/// A topic, parsed: what one subscription follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Topic {
    /// The top `limit` players (`leaderboard`, with `leaderboard_limit`).
    Leaderboard { limit: i64 },
    /// Who is online (`presence`).
    Presence,
    /// One player's profile (`player:<id>`, `player:me` for the caller).
    Player(Uuid),
    /// A chat channel's messages (`channel:<channel>`), canonical.
    Channel(Channel),
    /// A player's session of a lab (`lab:<player id or me>:<lab_id>`): its facts, with the working
    /// copy as it stands when they change.
    LabSession { player: Uuid, lab: LabId },
}

/// Where a topic's changes come from: every announced change on `topic` (with `key`, when set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Source {
    pub topic: String,
    pub key: Option<String>,
}

impl Source {
    fn all(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
        }
    }
}

/// One change of a topic, read once and sent to every subscriber of it.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    pub key: String,
    pub op: ChangeOp,
    /// Its label: a position as of which `data` is exactly the matching read (see the module
    /// docs for which).
    pub position: i64,
    pub data: Value,
}

fn invalid_topic(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_topic", detail)
}

impl Topic {
    /// A topic as a client names it. `leaderboard_limit` is the leaderboard's window.
    pub fn parse(raw: &str, caller: Uuid, leaderboard_limit: i64) -> Result<Self, ApiError> {
        match raw {
            "leaderboard" => Ok(Self::Leaderboard {
                limit: leaderboard_limit,
            }),
            "presence" => Ok(Self::Presence),
            _ => match raw.split_once(':') {
                // A canonical direct channel parses whoever names it; `authorize` refuses it to
                // anyone but its two players.
                Some(("channel", name)) => Channel::from_canonical(name)
                    .map_or_else(|| Channel::parse(name, PlayerId(caller)), Ok)
                    .map(Self::Channel)
                    .map_err(|r| invalid_topic(format!("{raw:?}: {}", r.detail))),
                Some(("lab", rest)) => {
                    let bad = || invalid_topic(format!("{raw:?}: a lab topic is lab:<player id or me>:<lab_id>"));
                    let (player, lab) = rest.split_once(':').ok_or_else(bad)?;
                    let player = if player == "me" {
                        caller
                    } else {
                        Uuid::parse_str(player).map_err(|_| bad())?
                    };
                    let lab = LabId::parse(lab).map_err(|_| bad())?;
                    Ok(Self::LabSession { player, lab })
                }
                Some(("player", "me")) => Ok(Self::Player(caller)),
                Some(("player", id)) => Uuid::parse_str(id).map(Self::Player).map_err(|_| {
                    invalid_topic(format!("{raw:?}: a player topic is player:<uuid>"))
                }),
                _ => Err(invalid_topic(format!(
                    "unknown topic {raw:?}; topics are leaderboard, presence, player:<id>, channel:<channel> and lab:<player>:<lab_id>"
                ))),
            },
        }
    }

    /// The topic's name in the events: as the client wrote it, with ids in canonical form.
    pub fn name(&self) -> String {
        match self {
            Self::Leaderboard { .. } => "leaderboard".to_owned(),
            Self::Presence => "presence".to_owned(),
            Self::Player(id) => format!("player:{id}"),
            Self::Channel(channel) => format!("channel:{channel}"),
            Self::LabSession { player, lab } => format!("lab:{player}:{lab}"),
        }
    }

    /// Whether `actor` may follow the topic: the same rules as the matching read (a direct
    /// channel only for its two players, a lab session for its player or an admin; everything
    /// else for any valid token).
    pub fn authorize(&self, actor: &Actor) -> Result<(), ApiError> {
        match self {
            Self::Channel(channel) if !channel.visible_to(actor.identity) => Err(forbidden()),
            Self::LabSession { player, .. }
                if *player != actor.identity.0 && actor.role != Role::Admin =>
            {
                Err(lab_forbidden())
            }
            Self::Leaderboard { .. }
            | Self::Presence
            | Self::Player(_)
            | Self::Channel(_)
            | Self::LabSession { .. } => Ok(()),
        }
    }

    /// The projections the topic is read from.
    pub fn projections(&self) -> &'static [&'static str] {
        match self {
            Self::Leaderboard { .. } => &[PLAYERS],
            Self::Presence => &[PRESENCE],
            Self::Player(_) => PROFILE,
            Self::Channel(_) => &[CHAT],
            Self::LabSession { .. } => &[LABS],
        }
    }

    /// The announced changes that touch the topic.
    pub fn sources(&self) -> Vec<Source> {
        match self {
            Self::Leaderboard { .. } => vec![Source::all("leaderboard")],
            Self::Presence => vec![Source::all("presence")],
            Self::Player(id) => vec![
                Source::all(format!("player:{id}")),
                // The unlocked modules follow the catalog.
                Source::all("catalog"),
            ],
            Self::Channel(_) | Self::LabSession { .. } => vec![Source::all(self.name())],
        }
    }

    /// The topic's data in this snapshot, and the highest position as of which it is exactly the
    /// matching read: `null` for a player not (yet) registered, whose registration then arrives
    /// as a change.
    pub async fn snapshot(
        &self,
        conn: &mut PgConnection,
        reading: &mut Reading,
    ) -> Result<(i64, Value), ApiError> {
        Ok(match self {
            Self::Leaderboard { limit } => {
                let position = reading.checkpoint(PLAYERS);
                let page = read_page(conn, Board::Live, position, None, *limit).await?;
                (position, to_value(&page))
            }
            Self::Presence => {
                let position = reading.checkpoint(PRESENCE);
                (position, to_value(&read_presence(conn, position).await?))
            }
            Self::Player(id) => {
                let (span, profile) = read_player(conn, reading, *id, Label::Highest).await?;
                match span {
                    Some(span) => (span.until, profile),
                    None => {
                        // No position is exact for these rows: the profile as of the lagging
                        // projection's checkpoint, folded from the log.
                        let position = PROFILE
                            .iter()
                            .map(|p| reading.checkpoint(p))
                            .min()
                            .unwrap_or(0);
                        let profile = profile_as_of(conn, *id, position).await?;
                        (position, profile.map_or(Value::Null, |p| to_value(&p)))
                    }
                }
            }
            Self::Channel(channel) => {
                let position = reading.checkpoint(CHAT);
                let history = read_history(conn, channel, position, None, DEFAULT_MESSAGES).await?;
                (position, history.map_or(Value::Null, |h| to_value(&h)))
            }
            Self::LabSession { player, lab } => {
                let (_, session) = read_session_at(conn, *player, lab).await?;
                (
                    reading.checkpoint(LABS),
                    session.map_or(Value::Null, |session| to_value(&session)),
                )
            }
        })
    }

    /// What `changes` (all touching this topic, from one announcement) made of it, read in this
    /// snapshot, in label order: one update for a whole-value topic (none when no position is
    /// exact for what the snapshot holds), one per change for presence and a channel.
    pub async fn changed(
        &self,
        conn: &mut PgConnection,
        reading: &mut Reading,
        changes: &[Change],
    ) -> Result<Vec<Update>, ApiError> {
        let Some(last) = changes.iter().max_by_key(|c| c.position) else {
            return Ok(Vec::new());
        };
        match self {
            // The whole new window, once per announcement, exact up to the checkpoint (the last
            // change that moved it is not known here; the checkpoint is as exact).
            Self::Leaderboard { limit } => {
                let position = reading.checkpoint(PLAYERS);
                let page = read_page(conn, Board::Live, position, None, *limit).await?;
                Ok(vec![Update {
                    key: last.key.clone(),
                    op: ChangeOp::Upsert,
                    position,
                    data: to_value(&page),
                }])
            }
            Self::Player(id) => {
                let (span, profile) = read_player(conn, reading, *id, Label::Lowest).await?;
                Ok(span
                    .map(|span| Update {
                        key: id.to_string(),
                        op: if profile.is_null() {
                            ChangeOp::Delete
                        } else {
                            ChangeOp::Upsert
                        },
                        position: span.from,
                        data: profile,
                    })
                    .into_iter()
                    .collect())
            }
            Self::LabSession { player, lab } => {
                let (position, session) = read_session_at(conn, *player, lab).await?;
                Ok(vec![update(lab.to_string(), position, session)])
            }
            // One update per changed row, keyed by its id, as of its change.
            Self::Channel(_) | Self::Presence => {
                let mut at: Vec<(Uuid, i64)> = changes
                    .iter()
                    .filter_map(|c| Some((Uuid::parse_str(&c.key).ok()?, c.position)))
                    .collect();
                at.sort_by_key(|(_, position)| *position);
                at.dedup();
                let rows: Vec<Option<Value>> = if matches!(self, Self::Channel(_)) {
                    messages_as_of(conn, &at)
                        .await?
                        .into_iter()
                        .map(|m| m.map(|m| to_value(&m)))
                        .collect()
                } else {
                    online_as_of(conn, &at)
                        .await?
                        .into_iter()
                        .map(|o| o.map(|o| to_value(&o)))
                        .collect()
                };
                Ok(at
                    .into_iter()
                    .zip(rows)
                    .map(|((key, position), data)| update(key.to_string(), position, data))
                    .collect())
            }
        }
    }
}

/// Where the projections stand in one REPEATABLE READ snapshot, and what the topics read in it
/// share (the catalog's part of every profile).
pub(crate) struct Reading {
    checkpoints: Vec<(String, i64)>,
    catalog: Option<CatalogPart>,
}

/// The catalog's events around its checkpoint: the last it has applied, and the first it has
/// not (up to the players' checkpoint, when that is further).
#[derive(Debug, Clone, Copy)]
struct CatalogPart {
    last: i64,
    next: Option<i64>,
}

impl Reading {
    /// Reads the checkpoints: the first thing a snapshot's transaction reads.
    pub async fn new(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let checkpoints = sqlx::query_as("SELECT projection, position FROM projection_checkpoints")
            .fetch_all(conn)
            .await?;
        Ok(Self {
            checkpoints,
            catalog: None,
        })
    }

    /// `projection`'s checkpoint in this snapshot (0 before its first).
    pub fn checkpoint(&self, projection: &str) -> i64 {
        self.checkpoints
            .iter()
            .find(|(name, _)| name == projection)
            .map_or(0, |(_, position)| *position)
    }

    async fn catalog(&mut self, conn: &mut PgConnection) -> Result<CatalogPart, sqlx::Error> {
        if let Some(part) = self.catalog {
            return Ok(part);
        }
        // The catalog's stream is small (a definition per module and lab).
        let (last, next): (i64, Option<i64>) = sqlx::query_as(
            "SELECT coalesce(max(position) FILTER (WHERE position <= $1), 0)::bigint,
                    min(position) FILTER (WHERE position > $1 AND position <= $2)
               FROM events WHERE stream_id = 'catalog'",
        )
        .bind(self.checkpoint(CATALOG))
        .bind(self.checkpoint(PLAYERS))
        .fetch_one(&mut *conn)
        .await?;
        let part = CatalogPart { last, next };
        self.catalog = Some(part);
        Ok(part)
    }
}

/// The positions as of which data read in one snapshot is exactly the as-of read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// The last event the data reflects.
    pub from: i64,
    /// The highest position known to be exact.
    pub until: i64,
}

/// One projection's part of a topic's data, read in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    /// The projection's checkpoint in the snapshot.
    checkpoint: i64,
    /// The last event of the part that the projection has applied (0: none).
    last: i64,
    /// The first event of the part that it has not applied, when one is in the snapshot's log
    /// below the furthest checkpoint of the parts.
    next: Option<i64>,
}

/// The positions at which parts read at different checkpoints are together exactly the as-of
/// answer: from the last event any part reflects, to just before the first event of a part its
/// projection has not applied, and no further than the furthest checkpoint (the snapshot knows
/// nothing beyond). `None` when there is none: a lagging projection has yet to apply an event
/// older than one another part reflects.
fn span(parts: &[Part]) -> Option<Span> {
    let from = parts.iter().map(|p| p.last).max().unwrap_or(0);
    let furthest = parts.iter().map(|p| p.checkpoint).max().unwrap_or(0);
    let until = parts
        .iter()
        .filter_map(|p| p.next)
        .map(|next| next - 1)
        .fold(furthest, i64::min);
    (from <= until).then_some(Span { from, until })
}

/// Which end of its span a label is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// A change: the last event it reflects.
    Lowest,
    /// A snapshot: as far as it is known to hold.
    Highest,
}

/// A profile in this snapshot (`null` before the registration), with its span (see [`span`]).
/// For a change only whether the span exists matters, so the player's stream is looked at beyond
/// the players' checkpoint only up to the span's start.
async fn read_player(
    conn: &mut PgConnection,
    reading: &mut Reading,
    id: Uuid,
    label: Label,
) -> Result<(Option<Span>, Value), ApiError> {
    let read = read_profile_at(conn, id).await?;
    let catalog = reading.catalog(conn).await?;
    let (players_at, catalog_at) = (reading.checkpoint(PLAYERS), reading.checkpoint(CATALOG));
    let last = read.as_ref().map_or(0, |(position, _)| *position);
    let end = match label {
        Label::Lowest => last.max(catalog.last),
        Label::Highest => catalog_at,
    };
    let next = if players_at < end {
        sqlx::query_scalar(
            "SELECT min(position) FROM events
              WHERE position > $1 AND position <= $2 AND stream_id = $3",
        )
        .bind(players_at)
        .bind(end)
        .bind(format!("player-{id}"))
        .fetch_one(&mut *conn)
        .await?
    } else {
        None
    };
    let parts = [
        Part {
            checkpoint: players_at,
            last,
            next,
        },
        Part {
            checkpoint: catalog_at,
            last: catalog.last,
            next: catalog.next,
        },
    ];
    let profile = read.map_or(Value::Null, |(_, profile)| to_value(&profile));
    Ok((span(&parts), profile))
}

/// An upsert of `data`, or a delete when there is none any more.
fn update<T: serde::Serialize>(key: String, position: i64, data: Option<T>) -> Update {
    Update {
        key,
        op: if data.is_some() {
            ChangeOp::Upsert
        } else {
            ChangeOp::Delete
        },
        position,
        data: data.map_or(Value::Null, |d| to_value(&d)),
    }
}

/// A read's answer as JSON. Serialising these plain structs cannot fail.
fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_as_the_contract_names_them() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        assert_eq!(
            Topic::parse("leaderboard", me, 25).ok(),
            Some(Topic::Leaderboard { limit: 25 })
        );
        assert_eq!(Topic::parse("presence", me, 10).ok(), Some(Topic::Presence));
        assert_eq!(
            Topic::parse(&format!("player:{other}"), me, 10).ok(),
            Some(Topic::Player(other))
        );
        assert_eq!(
            Topic::parse("player:me", me, 10).ok(),
            Some(Topic::Player(me))
        );
    }

    #[test]
    fn an_unknown_or_malformed_topic_is_refused() {
        for raw in [
            "",
            "leaderboards",
            "player:",
            "player:42",
            "channel",
            "channel:",
            "channel:room",
            "channel:dm:42",
            ":",
        ] {
            assert!(
                matches!(Topic::parse(raw, Uuid::nil(), 10), Err(ApiError::Client(p)) if p.code == "invalid_topic"),
                "{raw:?} must be refused"
            );
        }
    }

    #[test]
    fn a_direct_channel_topic_is_the_pairs_whoever_names_it_and_only_theirs() {
        let (ada, bob, eve) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let dm = Channel::direct(PlayerId(ada), PlayerId(bob));
        let from_ada = Topic::parse(&format!("channel:dm:{bob}"), ada, 10).ok();
        let from_bob = Topic::parse(&format!("channel:dm:{ada}"), bob, 10).ok();
        assert_eq!(from_ada, Some(Topic::Channel(dm.clone())));
        assert_eq!(from_bob, Some(Topic::Channel(dm.clone())));
        let canonical = Topic::parse(&format!("channel:{dm}"), eve, 10).expect("parses");
        let actor = |id| Actor {
            identity: PlayerId(id),
            role: questlog_academy::Role::Admin,
        };
        assert!(canonical.authorize(&actor(ada)).is_ok());
        assert!(matches!(
            canonical.authorize(&actor(eve)),
            Err(ApiError::Client(p)) if p.code == "forbidden"
        ));
    }

    fn part(checkpoint: i64, last: i64, next: Option<i64>) -> Part {
        Part {
            checkpoint,
            last,
            next,
        }
    }

    #[test]
    fn parts_read_at_one_checkpoint_are_exact_from_their_last_event_to_it() {
        assert_eq!(
            span(&[part(12, 9, None), part(12, 3, None)]),
            Some(Span { from: 9, until: 12 })
        );
    }

    #[test]
    fn a_lagging_part_with_nothing_left_to_apply_holds_up_to_the_furthest_checkpoint() {
        // The players at 12 reflect their event 11; the catalog at 8 has no event in 9..=12.
        assert_eq!(
            span(&[part(12, 11, None), part(8, 3, None)]),
            Some(Span {
                from: 11,
                until: 12
            })
        );
    }

    #[test]
    fn the_span_ends_before_the_first_event_a_lagging_projection_has_not_applied() {
        // The catalog at 8 has yet to apply its event 10; the player's last event is 9.
        assert_eq!(
            span(&[part(12, 9, None), part(8, 3, Some(10))]),
            Some(Span { from: 9, until: 9 })
        );
    }

    #[test]
    fn parts_that_never_stood_together_in_the_log_have_no_exact_position() {
        // The player's event 11 is in, the catalog's 10 before it is not.
        assert_eq!(span(&[part(12, 11, None), part(8, 3, Some(10))]), None);
        // The other way round: the catalog's 13 is in, the player's 12 is not.
        assert_eq!(span(&[part(11, 9, Some(12)), part(14, 13, None)]), None);
    }
}
