//! Profiles and the leaderboard (`rm_players`, `rm_leaderboard_history`): a row per registered
//! player, folded by [`PlayerRow::apply`] through the player stream's own `PlayerState::evolve`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::copy::CopyRows;
use questlog_projector::rows::{close_open_versions, RowSink, Rows};
use questlog_projector::{Bulk, Decoded, FoldMap, Projection};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::event::Event;
use crate::names::{LEADERBOARD_CHANGES, PLAYERS, PLAYER_TOPIC};
use crate::player::{PlayerState, Registration};
use crate::rules::Streak;
use crate::stream::StreamId;
use crate::values::{Achievement, LabId, PlayerId, Timezone, Username};

/// A player's row: the aggregate's own state plus the positions the read model needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerRow {
    pub state: PlayerState,
    /// Where the player reached the current XP (ties on the leaderboard go to the earlier).
    pub xp_position: i64,
    pub updated_position: i64,
}

impl PlayerRow {
    /// A player with no events yet, first seen at `position`.
    pub fn new(position: i64) -> Self {
        Self {
            state: PlayerState::default(),
            xp_position: position,
            updated_position: position,
        }
    }

    /// Folds one event of the player's stream at `position`, by the domain's own
    /// `PlayerState::evolve`: the read model's one rule, shared by the live projector, its
    /// rebuilds and any as-of read. Returns whether the leaderboard (XP or name) moved.
    pub fn apply(&mut self, event: &Event, position: i64) -> bool {
        let before = self.state.xp;
        let was_registered = self.state.is_registered();
        self.state.evolve(event);
        self.updated_position = position;
        let ranked = self.state.xp != before || (!was_registered && self.state.is_registered());
        if ranked {
            self.xp_position = position;
        }
        ranked
    }
}

/// The player whose stream `recorded` is on, with its academy event.
fn of_player(decoded: &Decoded) -> Option<(Uuid, &Event)> {
    let event = decoded.event.get::<Event>()?;
    match decoded.recorded.stream_id.parse::<StreamId>() {
        Ok(StreamId::Player(id)) => Some((id.0, event)),
        _ => None,
    }
}

/// Every registered player's row as a full replay of `events` (in log order) produces it.
pub fn fold_players<'a>(
    events: impl IntoIterator<Item = &'a Decoded>,
) -> BTreeMap<Uuid, PlayerRow> {
    let mut rows: BTreeMap<Uuid, PlayerRow> = BTreeMap::new();
    for decoded in events {
        if let Some((id, event)) = of_player(decoded) {
            rows.entry(id)
                .or_insert_with(|| PlayerRow::new(decoded.position()))
                .apply(event, decoded.position());
        }
    }
    rows.retain(|_, row| row.state.is_registered());
    rows
}

/// Profiles and the leaderboard (`rm_players`, `rm_leaderboard_history`).
pub struct Players;

/// Loads the rows of `ids` that exist.
///
/// # Errors
/// When the database fails or a stored value does not parse.
pub async fn load_players(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> anyhow::Result<BTreeMap<Uuid, PlayerRow>> {
    PLAYER_ROWS.load(tx, ids, read_player).await
}

/// A stored player's row.
fn read_player(row: &PgRow) -> anyhow::Result<(Uuid, PlayerRow)> {
    let id: Uuid = row.try_get("player_id")?;
    let username: Option<String> = row.try_get("username")?;
    let labs: Vec<String> = row.try_get("completed_labs")?;
    let modules: Vec<i32> = row.try_get("completed_modules")?;
    let achievements: Vec<String> = row.try_get("achievements")?;
    let timezone: String = row.try_get("timezone")?;
    let state = PlayerState {
        registered: Some(Registration {
            player_id: PlayerId(id),
            username: username
                .as_deref()
                .map(Username::parse)
                .transpose()
                .context("stored username")?,
        }),
        timezone: Timezone::parse(&timezone).unwrap_or_default(),
        xp: u64::try_from(row.try_get::<i64, _>("xp")?).unwrap_or(0),
        level: u32::try_from(row.try_get::<i32, _>("level")?).unwrap_or(1),
        completed_labs: labs.iter().filter_map(|l| LabId::parse(l).ok()).collect(),
        completed_modules: modules
            .iter()
            .filter_map(|m| u32::try_from(*m).ok())
            .collect(),
        achievements: achievements
            .iter()
            .filter_map(|a| Achievement::parse(a).ok())
            .collect(),
        streak: Streak {
            current: u32::try_from(row.try_get::<i32, _>("streak")?).unwrap_or(0),
            longest: u32::try_from(row.try_get::<i32, _>("longest_streak")?).unwrap_or(0),
            last_day: row.try_get::<Option<NaiveDate>, _>("streak_day")?,
        },
        last_activity: row.try_get::<Option<DateTime<Utc>>, _>("last_activity")?,
        online: row.try_get("online")?,
        current_lab: row
            .try_get::<Option<String>, _>("current_lab")?
            .and_then(|l| LabId::parse(&l).ok()),
    };
    Ok((
        id,
        PlayerRow {
            state,
            xp_position: row.try_get("xp_position")?,
            updated_position: row.try_get("updated_position")?,
        },
    ))
}

/// `rm_players`: one row per registered player.
const PLAYER_ROWS: Rows = Rows {
    table: "rm_players",
    columns: &[
        "player_id",
        "username",
        "xp",
        "level",
        "xp_position",
        "streak",
        "longest_streak",
        "streak_day",
        "timezone",
        "last_activity",
        "completed_labs",
        "completed_modules",
        "achievements",
        "updated_position",
        "online",
        "current_lab",
    ],
    key: &["player_id"],
    update: &[
        "username",
        "xp",
        "level",
        "xp_position",
        "streak",
        "longest_streak",
        "streak_day",
        "timezone",
        "last_activity",
        "completed_labs",
        "completed_modules",
        "achievements",
        "updated_position",
        "online",
        "current_lab",
    ],
};

/// `rm_leaderboard_history`: every version of a player's standing, valid over its positions.
const LEADERBOARD_HISTORY: Rows = Rows {
    table: "rm_leaderboard_history",
    columns: &[
        "player_id",
        "username",
        "xp",
        "level",
        "xp_position",
        "valid_from",
        "valid_to",
    ],
    key: &[],
    update: &[],
};

fn int(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

async fn save_players(
    tx: &mut PgConnection,
    rows: &BTreeMap<Uuid, PlayerRow>,
) -> anyhow::Result<()> {
    let registered: Vec<(&Uuid, &PlayerRow)> = rows
        .iter()
        .filter(|(_, r)| r.state.is_registered())
        .collect();
    PLAYER_ROWS
        .upsert(tx, registered, |mut b, (id, row)| {
            put_player(&mut b, *id, row)
        })
        .await
}

/// A registered player's row, in [`PLAYER_ROWS`]' columns.
fn put_player(out: &mut impl RowSink, id: Uuid, row: &PlayerRow) {
    let s = &row.state;
    out.put(id)
        .put(
            s.registered
                .as_ref()
                .and_then(|reg| reg.username.as_ref())
                .map(|u| u.as_str().to_owned()),
        )
        .put(i64::try_from(s.xp).unwrap_or(i64::MAX))
        .put(int(s.level))
        .put(row.xp_position)
        .put(int(s.streak.current))
        .put(int(s.streak.longest))
        .put(s.streak.last_day)
        .put(s.timezone.name().to_owned())
        .put(s.last_activity)
        .put(
            s.completed_labs
                .iter()
                .map(|l| l.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .put(
            s.completed_modules
                .iter()
                .map(|m| int(*m))
                .collect::<Vec<_>>(),
        )
        .put(
            s.achievements
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .put(row.updated_position)
        .put(s.online)
        .put(s.current_lab.as_ref().map(|l| l.as_str().to_owned()));
}

fn upsert(topic: String, key: String, position: i64) -> Change {
    Change {
        topic,
        key,
        op: ChangeOp::Upsert,
        position,
    }
}

#[async_trait]
impl Projection for Players {
    fn name(&self) -> ProjectionName {
        PLAYERS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_players", "rm_leaderboard_history"]
    }

    fn bulk(&self) -> Option<Box<dyn Bulk>> {
        Some(Box::new(Rebuild {
            rows: FoldMap::default(),
            open: FoldMap::default(),
            closed: LEADERBOARD_HISTORY.copy(),
            erased: Vec::new(),
        }))
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let touched: Vec<(Uuid, &Event, i64)> = events
            .iter()
            .filter_map(|d| of_player(d).map(|(id, event)| (id, event, d.position())))
            .collect();
        let erased = questlog_projector::erasures(events);
        if touched.is_empty() && erased.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = touched
            .iter()
            .map(|(id, _, _)| *id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut rows = load_players(tx, &ids).await?;
        let mut changes = Vec::new();
        let mut versions = Vec::new();
        for (id, event, position) in touched {
            let row = rows.entry(id).or_insert_with(|| PlayerRow::new(position));
            let (ranked, version) = fold_event(row, id, event, position);
            versions.extend(version);
            changes.push(upsert(PLAYER_TOPIC.topic(id), id.to_string(), position));
            if ranked {
                changes.push(upsert(
                    LEADERBOARD_CHANGES.to_owned(),
                    id.to_string(),
                    position,
                ));
            }
        }
        save_players(tx, &rows).await?;
        save_leaderboard_history(tx, &versions).await?;
        // An erased player's name is gone from every version, as a replay (where it opens as
        // erased) has it; nothing after the erasure can bring it back.
        for (id, position) in erased {
            if erase(tx, id).await? {
                changes.push(upsert(PLAYER_TOPIC.topic(id), id.to_string(), position));
                changes.push(upsert(
                    LEADERBOARD_CHANGES.to_owned(),
                    id.to_string(),
                    position,
                ));
            }
        }
        Ok(changes)
    }
}

/// Drops an erased player's name from its row and every version of its standing; whether it had
/// a row.
async fn erase(tx: &mut PgConnection, id: Uuid) -> anyhow::Result<bool> {
    let found = sqlx::query(
        "WITH p AS (UPDATE rm_players SET username = NULL WHERE player_id = $1 RETURNING 1) \
         UPDATE rm_leaderboard_history SET username = NULL WHERE player_id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(found.rows_affected() > 0)
}

/// Folds one event of player `id`'s stream into its row: whether the leaderboard moved, and the
/// entry's new version if it did (for a registered player). The one fold of the live projector and
/// of its rebuilds.
fn fold_event(
    row: &mut PlayerRow,
    id: Uuid,
    event: &Event,
    position: i64,
) -> (bool, Option<EntryVersion>) {
    let ranked = row.apply(event, position);
    let version = ranked
        .then_some(row.state.registered.as_ref())
        .flatten()
        .map(|registration| EntryVersion::of(row, registration, id, position));
    (ranked, version)
}

/// One version of a leaderboard entry, valid from `valid_from` until the player's next one.
struct EntryVersion {
    player_id: Uuid,
    username: Option<String>,
    xp: i64,
    level: i32,
    xp_position: i64,
    valid_from: i64,
}

/// Closes each player's open version at its first new one, and adds the new versions (each valid
/// until the next of the same player, the last one open).
async fn save_leaderboard_history(
    tx: &mut PgConnection,
    versions: &[EntryVersion],
) -> anyhow::Result<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let mut first: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut until = vec![i64::MAX; versions.len()];
    let mut last_of: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (i, v) in versions.iter().enumerate() {
        first.entry(v.player_id).or_insert(v.valid_from);
        if let Some(previous) = last_of.insert(v.player_id, i) {
            until[previous] = v.valid_from;
        }
    }
    close_open_versions(tx, LEADERBOARD_HISTORY.table, "player_id", first).await?;
    LEADERBOARD_HISTORY
        .insert(tx, versions.iter().zip(until), |mut b, (v, to)| {
            v.put(&mut b, to);
        })
        .await
}

impl EntryVersion {
    /// The version of registered player `id`'s entry its row starts at `position`.
    fn of(row: &PlayerRow, registration: &Registration, id: Uuid, position: i64) -> Self {
        let mut version = Self {
            player_id: id,
            username: None,
            xp: 0,
            level: 0,
            xp_position: 0,
            valid_from: 0,
        };
        version.follow(row, registration, position);
        version
    }

    /// Becomes the next version of the same entry, the one `row` starts at `position` (as
    /// [`EntryVersion::of`] makes it), keeping its copy of the name when the name did not change.
    fn follow(&mut self, row: &PlayerRow, registration: &Registration, position: i64) {
        let name = registration.username.as_ref().map(Username::as_str);
        if self.username.as_deref() != name {
            self.username = name.map(str::to_owned);
        }
        self.xp = i64::try_from(row.state.xp).unwrap_or(i64::MAX);
        self.level = int(row.state.level);
        self.xp_position = row.xp_position;
        self.valid_from = position;
    }

    /// The version, valid until `to`, in [`LEADERBOARD_HISTORY`]'s columns.
    fn put(&self, out: &mut impl RowSink, to: i64) {
        out.put(self.player_id)
            .put_text(self.username.as_deref())
            .put(self.xp)
            .put(self.level)
            .put(self.xp_position)
            .put(self.valid_from)
            .put(to);
    }
}

/// A rebuild of the players' rows and the leaderboard's history, folded in memory by
/// [`fold_event`]'s fold (`PlayerRow::apply`, a version per ranked change): the rows and each
/// player's open version are held, closed versions are encoded for `COPY` as they close and sent
/// at each flush.
struct Rebuild {
    rows: FoldMap<Uuid, PlayerRow>,
    open: FoldMap<Uuid, EntryVersion>,
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
            let Some((id, event)) = of_player(decoded) else {
                continue;
            };
            let position = decoded.position();
            let row = self
                .rows
                .entry(id)
                .or_insert_with(|| PlayerRow::new(position));
            // `fold_event`'s fold, the new version made in place of the one it closes.
            if !row.apply(event, position) {
                continue;
            }
            let Some(registration) = row.state.registered.as_ref() else {
                continue;
            };
            match self.open.entry(id) {
                Entry::Occupied(mut open) => {
                    closed.row(|line| open.get().put(line, position));
                    open.get_mut().follow(row, registration, position);
                }
                Entry::Vacant(vacant) => {
                    vacant.insert(EntryVersion::of(row, registration, id, position));
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.closed.send(conn).await
    }

    async fn finish(mut self: Box<Self>, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.closed
            .send_all(conn, self.open.values(), |line, version| {
                version.put(line, i64::MAX);
            })
            .await?;
        let registered: Vec<(&Uuid, &PlayerRow)> = self
            .rows
            .iter()
            .filter(|(_, r)| r.state.is_registered())
            .collect();
        PLAYER_ROWS
            .copy()
            .send_all(conn, registered, |line, (id, row)| {
                put_player(line, *id, row)
            })
            .await?;
        for id in &self.erased {
            erase(conn, *id).await?;
        }
        Ok(())
    }
}
