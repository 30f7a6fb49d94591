//! The topics a client can subscribe to: how each is named, who may see it, which announced
//! changes touch it, and how its snapshot and its changes are read — through the same code as
//! the matching read. A new topic (`channel:<name>`) is a new variant here; the hub and the
//! transport do not change.

use questlog_bus::{Change, ChangeOp};
use questlog_domain::values::{Channel, LabId, PlayerId};
use questlog_domain::{Actor, Role};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::channels::{forbidden, read_history, read_message, DEFAULT_MESSAGES};
use crate::error::ApiError;
use crate::lab_sessions::{lab_forbidden, read_session};
use crate::leaderboard::{read_page, Board};
use crate::players::{read_profile, PROFILE};
use crate::presence::{read_online, read_presence};
use crate::projection::{CHAT, LABS, PLAYERS, PRESENCE};

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
    /// The position of the last event this change reflects.
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

    /// The topic's data in this snapshot, which reflects `position`: `null` for a player not
    /// (yet) registered, whose registration then arrives as a change.
    pub async fn snapshot(
        &self,
        conn: &mut PgConnection,
        position: i64,
    ) -> Result<Value, sqlx::Error> {
        Ok(match self {
            Self::Leaderboard { limit } => {
                to_value(&read_page(conn, Board::Live, position, None, *limit).await?)
            }
            Self::Presence => to_value(&read_presence(conn, position).await?),
            Self::Player(id) => read_profile(conn, *id)
                .await?
                .map_or(Value::Null, |profile| to_value(&profile)),
            Self::Channel(channel) => read_history(conn, channel, position, None, DEFAULT_MESSAGES)
                .await?
                .map_or(Value::Null, |history| to_value(&history)),
            Self::LabSession { player, lab } => read_session(conn, *player, lab)
                .await?
                .map_or(Value::Null, |session| to_value(&session)),
        })
    }

    /// What `changes` (all touching this topic, from one announcement) made of it, read in this
    /// snapshot: one update per key, in position order.
    pub async fn changed(
        &self,
        conn: &mut PgConnection,
        changes: &[Change],
    ) -> Result<Vec<Update>, sqlx::Error> {
        let Some(last) = changes.iter().max_by_key(|c| c.position) else {
            return Ok(Vec::new());
        };
        match self {
            // The whole new window, once per announcement.
            Self::Leaderboard { limit } => {
                let page = read_page(conn, Board::Live, last.position, None, *limit).await?;
                Ok(vec![Update {
                    key: last.key.clone(),
                    op: ChangeOp::Upsert,
                    position: last.position,
                    data: to_value(&page),
                }])
            }
            Self::Player(id) => {
                let profile = read_profile(conn, *id).await?;
                Ok(vec![update(id.to_string(), last.position, profile)])
            }
            Self::LabSession { player, lab } => {
                let session = read_session(conn, *player, lab).await?;
                Ok(vec![update(lab.to_string(), last.position, session)])
            }
            // One update per changed row, keyed by its id.
            Self::Channel(_) | Self::Presence => {
                let mut updates = Vec::new();
                for (key, position) in latest_per_key(changes) {
                    let data = match Uuid::parse_str(&key) {
                        Ok(id) if matches!(self, Self::Channel(_)) => {
                            read_message(conn, id).await?.map(|m| to_value(&m))
                        }
                        Ok(id) => read_online(conn, id).await?.map(|o| to_value(&o)),
                        Err(_) => None,
                    };
                    updates.push(update(key, position, data));
                }
                Ok(updates)
            }
        }
    }
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

/// Each changed key once, with the position of its last change, in position order.
fn latest_per_key(changes: &[Change]) -> Vec<(String, i64)> {
    let mut latest: Vec<(String, i64)> = Vec::new();
    for change in changes {
        match latest.iter_mut().find(|(key, _)| *key == change.key) {
            Some((_, position)) => *position = (*position).max(change.position),
            None => latest.push((change.key.clone(), change.position)),
        }
    }
    latest.sort_by_key(|(_, position)| *position);
    latest
}

/// A read's answer as JSON. Serialising these plain structs cannot fail.
fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, position: i64) -> Change {
        Change {
            topic: "presence".to_owned(),
            key: key.to_owned(),
            op: ChangeOp::Upsert,
            position,
        }
    }

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
            role: questlog_domain::Role::Admin,
        };
        assert!(canonical.authorize(&actor(ada)).is_ok());
        assert!(matches!(
            canonical.authorize(&actor(eve)),
            Err(ApiError::Client(p)) if p.code == "forbidden"
        ));
    }

    #[test]
    fn several_changes_of_one_key_coalesce_into_its_last() {
        let changes = [change("a", 5), change("b", 6), change("a", 9)];
        assert_eq!(
            latest_per_key(&changes),
            vec![("b".to_owned(), 6), ("a".to_owned(), 9)]
        );
    }
}
