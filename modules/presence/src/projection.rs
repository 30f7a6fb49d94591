//! Who is online (`rm_presence`, `rm_presence_history`): a row per registered player, with the
//! name it registered, folded by [`PresenceRow::apply`]; and a version per online stretch and lab
//! change, so that "who was online as of a position" is a lookup.

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::copy::CopyRows;
use questlog_projector::rows::{close_open_versions, RowSink, Rows};
use questlog_projector::{Bulk, Decoded, FoldMap, Projection};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use questlog_academy::player::PlayerState;
use questlog_academy::values::{LabId, Username};
use questlog_academy::{Event, StreamId};

use crate::names::{PRESENCE, PRESENCE_TOPIC};

/// A row of `rm_presence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    /// The name the player registered (`None` once the player is erased).
    pub username: Option<Username>,
    pub online: bool,
    /// When the player came online; `None` while offline.
    pub since: Option<DateTime<Utc>>,
    /// The lab the last heartbeat named, while online.
    pub current_lab: Option<LabId>,
}

impl PresenceRow {
    /// Folds one event of a player's stream, recorded at `at`, into the player's row (`None`
    /// before registration). Who is online and in which lab follow the player stream's own
    /// `PlayerState::evolve`, so the profile (`rm_players`) and presence never disagree; `since`
    /// is the log's time of coming online. Returns whether the event is one presence records.
    pub fn apply(row: &mut Option<Self>, event: &Event, at: DateTime<Utc>) -> bool {
        match event {
            Event::PlayerRegistered { username, .. } => {
                row.get_or_insert_with(|| Self {
                    username: username.value().cloned(),
                    online: false,
                    since: None,
                    current_lab: None,
                });
            }
            Event::CameOnline { .. }
            | Event::CurrentLabChanged { .. }
            | Event::WentOffline { .. } => {
                let Some(row) = row else {
                    return true; // not registered: nobody to show
                };
                let mut state = PlayerState {
                    online: row.online,
                    current_lab: row.current_lab.take(),
                    ..PlayerState::default()
                };
                state.evolve(event);
                row.online = state.online;
                row.current_lab = state.current_lab;
                row.since = match event {
                    Event::CameOnline { .. } => Some(at),
                    _ if !row.online => None,
                    _ => row.since,
                };
            }
            _ => return false,
        }
        true
    }

    /// The announcement of `event`'s change, keyed by player: online players are upserts, a player
    /// going offline is a delete, a registration is not announced.
    fn change(event: &Event) -> Option<ChangeOp> {
        match event {
            Event::CameOnline { .. } | Event::CurrentLabChanged { .. } => Some(ChangeOp::Upsert),
            Event::WentOffline { .. } => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// One version of a player's presence, valid from `valid_from` until the player's next presence
/// event.
struct Version {
    player_id: Uuid,
    username: Option<String>,
    current_lab: Option<String>,
    since: Option<DateTime<Utc>>,
    valid_from: i64,
    valid_to: i64,
}

impl Version {
    /// The version an online player's row opens at `position`; none while offline.
    fn of(player_id: Uuid, row: Option<&PresenceRow>, position: i64) -> Option<Self> {
        let row = row.filter(|r| r.online)?;
        Some(Self {
            player_id,
            username: row.username.as_ref().map(|u| u.as_str().to_owned()),
            current_lab: row.current_lab.as_ref().map(|l| l.as_str().to_owned()),
            since: row.since,
            valid_from: position,
            valid_to: i64::MAX,
        })
    }

    /// The version in [`PRESENCE_HISTORY`]'s columns.
    fn put(&self, out: &mut impl RowSink) {
        out.put(self.player_id)
            .put(self.username.clone())
            .put(self.current_lab.clone())
            .put(self.since)
            .put(self.valid_from)
            .put(self.valid_to);
    }
}

/// The player whose row a presence event (or registration) of a player's stream folds into.
fn of_presence(decoded: &Decoded) -> Option<(Uuid, &Event)> {
    let event = decoded.event.get::<Event>()?;
    if !matches!(
        event,
        Event::PlayerRegistered { .. }
            | Event::CameOnline { .. }
            | Event::CurrentLabChanged { .. }
            | Event::WentOffline { .. }
    ) {
        return None;
    }
    match decoded.recorded.stream_id.parse::<StreamId>() {
        Ok(StreamId::Player(id)) => Some((id.0, event)),
        _ => None,
    }
}

/// Who is online (`rm_presence`, `rm_presence_history`).
pub struct Presence;

#[async_trait]
impl Projection for Presence {
    fn name(&self) -> ProjectionName {
        PRESENCE
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_presence", "rm_presence_history"]
    }

    fn bulk(&self) -> Option<Box<dyn Bulk>> {
        Some(Box::new(Rebuild {
            rows: FoldMap::default(),
            open: FoldMap::default(),
            closed: PRESENCE_HISTORY.copy(),
            erased: Vec::new(),
        }))
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let (touched, ids) = questlog_projector::touched(events, of_presence);
        let erased = questlog_projector::erasures(events);
        if touched.is_empty() && erased.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = load(tx, &ids).await?;
        let mut changes = Vec::new();
        // Every presence event ends the player's open version; an online player opens the next.
        let mut first_boundary: BTreeMap<Uuid, i64> = BTreeMap::new();
        let mut versions: Vec<Version> = Vec::new();
        let mut open: BTreeMap<Uuid, usize> = BTreeMap::new();
        for (id, event, decoded) in touched {
            let position = decoded.position();
            let row = rows.entry(id).or_default();
            PresenceRow::apply(row, event, decoded.recorded.recorded_at);
            if let Some(op) = PresenceRow::change(event) {
                changes.push(Change {
                    topic: PRESENCE_TOPIC.as_str().to_owned(),
                    key: id.to_string(),
                    op,
                    position,
                });
            }
            first_boundary.entry(id).or_insert(position);
            if let Some(previous) = open.remove(&id) {
                versions[previous].valid_to = position;
            }
            if let Some(version) = Version::of(id, row.as_ref(), position) {
                open.insert(id, versions.len());
                versions.push(version);
            }
        }
        save(tx, &rows).await?;
        save_history(tx, &first_boundary, &versions).await?;
        // An erased player's name is gone from its row and every version of its history.
        for (id, position) in erased {
            if erase(tx, id).await? == Some(true) {
                changes.push(Change {
                    topic: PRESENCE_TOPIC.as_str().to_owned(),
                    key: id.to_string(),
                    op: ChangeOp::Upsert,
                    position,
                });
            }
        }
        Ok(changes)
    }
}

/// `rm_presence`: one row per registered player.
const PRESENCE_ROWS: Rows = Rows {
    table: "rm_presence",
    columns: &["player_id", "username", "online", "since", "current_lab"],
    key: &["player_id"],
    update: &["online", "since", "current_lab"],
};

/// `rm_presence_history`: every version of a player's presence, valid over its positions.
const PRESENCE_HISTORY: Rows = Rows {
    table: "rm_presence_history",
    columns: &[
        "player_id",
        "username",
        "current_lab",
        "since",
        "valid_from",
        "valid_to",
    ],
    key: &[],
    update: &[],
};

async fn load(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> anyhow::Result<BTreeMap<Uuid, Option<PresenceRow>>> {
    PRESENCE_ROWS
        .load(tx, ids, |row| {
            let username: Option<String> = row.try_get("username")?;
            Ok((
                row.try_get("player_id")?,
                Some(PresenceRow {
                    username: username
                        .as_deref()
                        .map(Username::parse)
                        .transpose()
                        .context("a stored username")?,
                    online: row.try_get("online")?,
                    since: row.try_get("since")?,
                    current_lab: row
                        .try_get::<Option<String>, _>("current_lab")?
                        .map(|l| LabId::parse(&l).context("a stored lab id"))
                        .transpose()?,
                }),
            ))
        })
        .await
}

async fn save(
    tx: &mut PgConnection,
    rows: &BTreeMap<Uuid, Option<PresenceRow>>,
) -> anyhow::Result<()> {
    let present: Vec<(&Uuid, &PresenceRow)> = rows
        .iter()
        .filter_map(|(id, row)| row.as_ref().map(|r| (id, r)))
        .collect();
    PRESENCE_ROWS
        .upsert(tx, present, |mut b, (id, row)| row.put(&mut b, *id))
        .await
}

impl PresenceRow {
    /// Player `id`'s row in [`PRESENCE_ROWS`]' columns.
    fn put(&self, out: &mut impl RowSink, id: Uuid) {
        out.put(id)
            .put(self.username.as_ref().map(|u| u.as_str().to_owned()))
            .put(self.online)
            .put(self.since)
            .put(self.current_lab.as_ref().map(|l| l.as_str().to_owned()));
    }
}

/// Closes each player's open version at the batch's first presence event of the player, and adds
/// the batch's versions.
async fn save_history(
    tx: &mut PgConnection,
    first_boundary: &BTreeMap<Uuid, i64>,
    versions: &[Version],
) -> anyhow::Result<()> {
    close_open_versions(
        tx,
        PRESENCE_HISTORY.table,
        "player_id",
        first_boundary.iter().map(|(k, v)| (*k, *v)),
    )
    .await?;
    PRESENCE_HISTORY
        .insert(tx, versions, |mut b, v| v.put(&mut b))
        .await
}

/// A rebuild of presence and its history, folded in memory by [`PresenceRow::apply`] as the live
/// projector folds it: every presence event closes the player's open version, an online player
/// opens the next; closed versions are encoded as they close and sent at each flush.
/// Drops an erased player's name from its row and every version of its history; whether it is
/// online (`None` without a row).
async fn erase(tx: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<bool>> {
    Ok(sqlx::query_scalar(
        "WITH h AS (UPDATE rm_presence_history SET username = NULL WHERE player_id = $1) \
         UPDATE rm_presence SET username = NULL WHERE player_id = $1 RETURNING online",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?)
}

struct Rebuild {
    rows: FoldMap<Uuid, Option<PresenceRow>>,
    open: FoldMap<Uuid, Version>,
    closed: CopyRows,
    /// The players erased, whose names are dropped once every row is written.
    erased: Vec<Uuid>,
}

#[async_trait]
impl Bulk for Rebuild {
    fn fold(&mut self, events: &[&Decoded]) -> anyhow::Result<()> {
        self.erased.extend(
            questlog_projector::erasures(events)
                .into_iter()
                .map(|(id, _)| id),
        );
        let closed = &mut self.closed;
        for decoded in events {
            let Some((id, event)) = of_presence(decoded) else {
                continue;
            };
            let position = decoded.position();
            let row = self.rows.entry(id).or_default();
            PresenceRow::apply(row, event, decoded.recorded.recorded_at);
            if let Some(mut previous) = self.open.remove(&id) {
                previous.valid_to = position;
                closed.row(|line| previous.put(line));
            }
            if let Some(version) = Version::of(id, row.as_ref(), position) {
                self.open.insert(id, version);
            }
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.closed.send(conn).await
    }

    async fn finish(mut self: Box<Self>, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.closed
            .send_all(conn, self.open.values(), |line, v| v.put(line))
            .await?;
        let present: Vec<(&Uuid, &PresenceRow)> = self
            .rows
            .iter()
            .filter_map(|(id, row)| row.as_ref().map(|r| (id, r)))
            .collect();
        PRESENCE_ROWS
            .copy()
            .send_all(conn, present, |line, (id, row)| row.put(line, *id))
            .await?;
        for id in &self.erased {
            erase(conn, *id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use questlog_academy::values::PlayerId;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("a time")
    }

    #[test]
    fn presence_rows_exist_from_registration_and_keep_since_while_online() {
        let lab = LabId::parse("intro").expect("lab");
        let mut row = None;
        let online = Event::CameOnline {
            current_lab: Some(lab.clone()),
        };
        PresenceRow::apply(&mut row, &online, at(1));
        assert_eq!(row, None, "nobody to show before registration");
        let username = Username::parse("ada").expect("name");
        let registered = Event::PlayerRegistered {
            player_id: PlayerId(Uuid::from_u128(1)),
            username: questlog_domain::Personal::new(
                PlayerId(Uuid::from_u128(1)),
                username.clone(),
            ),
        };
        PresenceRow::apply(&mut row, &registered, at(2));
        PresenceRow::apply(&mut row, &online, at(3));
        PresenceRow::apply(
            &mut row,
            &Event::CurrentLabChanged { current_lab: None },
            at(4),
        );
        assert_eq!(
            row,
            Some(PresenceRow {
                username: Some(username.clone()),
                online: true,
                since: Some(at(3)),
                current_lab: None,
            })
        );
        PresenceRow::apply(&mut row, &Event::WentOffline { last_seen: at(4) }, at(9));
        PresenceRow::apply(&mut row, &registered, at(10));
        assert_eq!(
            row,
            Some(PresenceRow {
                username: Some(username),
                online: false,
                since: None,
                current_lab: None,
            })
        );
    }
}
