//! The projections: how each read model folds events, through the domain's pure `evolve`.

use questlog_academy::DomainEvent as _;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use questlog_academy::player::{PlayerState, Registration};
use questlog_academy::rules::Streak;
use questlog_academy::values::{Achievement, LabId, PlayerId, Timezone, Username};
use questlog_academy::{Event, StreamId};
use questlog_bus::{Change, ChangeOp};
use questlog_store::RecordedEvent;
use sqlx::{PgConnection, QueryBuilder, Row};
use uuid::Uuid;

use crate::Projection;

fn decode(event: &RecordedEvent) -> anyhow::Result<Event> {
    Event::from_parts(&event.event_type, event.schema_version, event.data.clone())
        .with_context(|| format!("event at position {}", event.position))
}

fn upsert(topic: String, key: String, position: i64) -> Change {
    Change {
        topic,
        key,
        op: ChangeOp::Upsert,
        position,
    }
}

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

    /// Folds one event of the player's stream at `position`. Returns whether the leaderboard
    /// (XP or name) moved.
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

/// Profiles and the leaderboard (`rm_players`).
pub struct Players;

pub async fn load_players(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> anyhow::Result<BTreeMap<Uuid, PlayerRow>> {
    let rows = sqlx::query(
        "SELECT player_id, username, xp, level, xp_position, streak, longest_streak, streak_day, timezone, \
         last_activity, completed_labs, completed_modules, achievements, updated_position, online, current_lab \
         FROM rm_players WHERE player_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await
    .context("loading players")?;
    let mut out = BTreeMap::new();
    for row in rows {
        let id: Uuid = row.try_get("player_id")?;
        let username: String = row.try_get("username")?;
        let labs: Vec<String> = row.try_get("completed_labs")?;
        let modules: Vec<i32> = row.try_get("completed_modules")?;
        let achievements: Vec<String> = row.try_get("achievements")?;
        let timezone: String = row.try_get("timezone")?;
        let state = PlayerState {
            registered: Some(Registration {
                player_id: PlayerId(id),
                username: Username::parse(&username).context("stored username")?,
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
        out.insert(
            id,
            PlayerRow {
                state,
                xp_position: row.try_get("xp_position")?,
                updated_position: row.try_get("updated_position")?,
            },
        );
    }
    Ok(out)
}

fn int(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

async fn save_players(
    tx: &mut PgConnection,
    rows: &BTreeMap<Uuid, PlayerRow>,
) -> anyhow::Result<()> {
    let registered: Vec<(&Uuid, &PlayerRow, &Registration)> = rows
        .iter()
        .filter_map(|(id, r)| r.state.registered.as_ref().map(|reg| (id, r, reg)))
        .collect();
    if registered.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::new(
        "INSERT INTO rm_players (player_id, username, xp, level, xp_position, streak, longest_streak, streak_day, \
         timezone, last_activity, completed_labs, completed_modules, achievements, updated_position, online, current_lab) ",
    );
    query.push_values(registered, |mut b, (id, row, reg)| {
        let s = &row.state;
        b.push_bind(*id)
            .push_bind(reg.username.as_str().to_owned())
            .push_bind(i64::try_from(s.xp).unwrap_or(i64::MAX))
            .push_bind(int(s.level))
            .push_bind(row.xp_position)
            .push_bind(int(s.streak.current))
            .push_bind(int(s.streak.longest))
            .push_bind(s.streak.last_day)
            .push_bind(s.timezone.name())
            .push_bind(s.last_activity)
            .push_bind(
                s.completed_labs
                    .iter()
                    .map(|l| l.as_str().to_owned())
                    .collect::<Vec<_>>(),
            )
            .push_bind(
                s.completed_modules
                    .iter()
                    .map(|m| int(*m))
                    .collect::<Vec<_>>(),
            )
            .push_bind(
                s.achievements
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect::<Vec<_>>(),
            )
            .push_bind(row.updated_position)
            .push_bind(s.online)
            .push_bind(s.current_lab.as_ref().map(|l| l.as_str().to_owned()));
    });
    query.push(
        " ON CONFLICT (player_id) DO UPDATE SET username = EXCLUDED.username, xp = EXCLUDED.xp, \
         level = EXCLUDED.level, xp_position = EXCLUDED.xp_position, streak = EXCLUDED.streak, \
         longest_streak = EXCLUDED.longest_streak, streak_day = EXCLUDED.streak_day, timezone = EXCLUDED.timezone, \
         last_activity = EXCLUDED.last_activity, completed_labs = EXCLUDED.completed_labs, \
         completed_modules = EXCLUDED.completed_modules, achievements = EXCLUDED.achievements, \
         updated_position = EXCLUDED.updated_position, online = EXCLUDED.online, current_lab = EXCLUDED.current_lab",
    );
    query
        .build()
        .execute(&mut *tx)
        .await
        .context("saving players")?;
    Ok(())
}

#[async_trait]
impl Projection for Players {
    fn name(&self) -> &'static str {
        "players"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_players", "rm_leaderboard_history"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Change>> {
        let mut touched: Vec<(Uuid, &RecordedEvent)> = Vec::new();
        for e in events {
            if let Ok(StreamId::Player(id)) = e.stream_id.parse::<StreamId>() {
                touched.push((id.0, e));
            }
        }
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = touched
            .iter()
            .map(|(id, _)| *id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut rows = load_players(tx, &ids).await?;
        let mut changes = Vec::new();
        let mut versions = Vec::new();
        for (id, recorded) in touched {
            let event = decode(recorded)?;
            let row = rows
                .entry(id)
                .or_insert_with(|| PlayerRow::new(recorded.position));
            let ranked = row.apply(&event, recorded.position);
            if ranked {
                if let Some(reg) = &row.state.registered {
                    versions.push(EntryVersion {
                        player_id: id,
                        username: reg.username.as_str().to_owned(),
                        xp: i64::try_from(row.state.xp).unwrap_or(i64::MAX),
                        level: int(row.state.level),
                        xp_position: row.xp_position,
                        valid_from: recorded.position,
                    });
                }
            }
            changes.push(upsert(
                format!("player:{id}"),
                id.to_string(),
                recorded.position,
            ));
            if ranked {
                changes.push(upsert(
                    "leaderboard".to_owned(),
                    id.to_string(),
                    recorded.position,
                ));
            }
        }
        save_players(tx, &rows).await?;
        save_leaderboard_history(tx, &versions).await?;
        Ok(changes)
    }
}

/// One version of a leaderboard entry, valid from `valid_from` until the player's next one.
struct EntryVersion {
    player_id: Uuid,
    username: String,
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
    let (ids, froms): (Vec<Uuid>, Vec<i64>) = first.into_iter().unzip();
    sqlx::query(
        "UPDATE rm_leaderboard_history h SET valid_to = v.valid_from \
           FROM unnest($1::uuid[], $2::bigint[]) AS v(player_id, valid_from) \
          WHERE h.player_id = v.player_id AND h.valid_to = 9223372036854775807",
    )
    .bind(&ids)
    .bind(&froms)
    .execute(&mut *tx)
    .await
    .context("closing leaderboard versions")?;
    let mut query = QueryBuilder::new(
        "INSERT INTO rm_leaderboard_history (player_id, username, xp, level, xp_position, valid_from, valid_to) ",
    );
    query.push_values(versions.iter().zip(until), |mut b, (v, to)| {
        b.push_bind(v.player_id)
            .push_bind(v.username.clone())
            .push_bind(v.xp)
            .push_bind(v.level)
            .push_bind(v.xp_position)
            .push_bind(v.valid_from)
            .push_bind(to);
    });
    query
        .build()
        .execute(&mut *tx)
        .await
        .context("saving leaderboard versions")?;
    Ok(())
}

/// Modules and labs (`rm_modules`, `rm_labs`).
pub struct Catalog;

#[async_trait]
impl Projection for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_modules", "rm_labs"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for recorded in events.iter().filter(|e| e.stream_id == "catalog") {
            match decode(recorded)? {
                Event::ModuleDefined {
                    module,
                    title,
                    requires,
                } => {
                    sqlx::query(
                        "INSERT INTO rm_modules (module, title, requires) VALUES ($1, $2, $3) \
                         ON CONFLICT (module) DO UPDATE SET title = EXCLUDED.title, requires = EXCLUDED.requires",
                    )
                    .bind(int(module))
                    .bind(&title)
                    .bind(requires.iter().map(|m| int(*m)).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await
                    .context("saving a module")?;
                    changes.push(upsert(
                        "catalog".to_owned(),
                        format!("module:{module}"),
                        recorded.position,
                    ));
                }
                Event::LabDefined {
                    lab_id,
                    module,
                    title,
                    xp,
                } => {
                    sqlx::query(
                        "INSERT INTO rm_labs (lab_id, module, title, xp) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (lab_id) DO UPDATE SET module = EXCLUDED.module, title = EXCLUDED.title, xp = EXCLUDED.xp",
                    )
                    .bind(lab_id.as_str())
                    .bind(int(module))
                    .bind(&title)
                    .bind(int(xp))
                    .execute(&mut *tx)
                    .await
                    .context("saving a lab")?;
                    changes.push(upsert(
                        "catalog".to_owned(),
                        format!("lab:{lab_id}"),
                        recorded.position,
                    ));
                }
                _ => {}
            }
        }
        Ok(changes)
    }
}

fn delete(topic: String, key: String, position: i64) -> Change {
    Change {
        topic,
        key,
        op: ChangeOp::Delete,
        position,
    }
}

/// Who is online (`rm_presence`): a row per registered player, with the name it registered.
pub struct Presence;

#[async_trait]
impl Projection for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_presence", "rm_presence_history"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for recorded in events {
            let Ok(StreamId::Player(id)) = recorded.stream_id.parse::<StreamId>() else {
                continue;
            };
            let key = id.to_string();
            let at = recorded.recorded_at;
            let position = recorded.position;
            let query = match decode(recorded)? {
                Event::PlayerRegistered { username, .. } => sqlx::query(
                    "INSERT INTO rm_presence (player_id, username, online) VALUES ($1, $2, false) \
                     ON CONFLICT (player_id) DO NOTHING",
                )
                .bind(id.0)
                .bind(username.as_str().to_owned()),
                Event::CameOnline { current_lab } => {
                    changes.push(upsert("presence".to_owned(), key, position));
                    sqlx::query(
                        "UPDATE rm_presence SET online = true, since = $2, current_lab = $3 \
                         WHERE player_id = $1",
                    )
                    .bind(id.0)
                    .bind(at)
                    .bind(current_lab.map(|l| l.as_str().to_owned()))
                }
                Event::CurrentLabChanged { current_lab } => {
                    changes.push(upsert("presence".to_owned(), key, position));
                    sqlx::query("UPDATE rm_presence SET current_lab = $2 WHERE player_id = $1")
                        .bind(id.0)
                        .bind(current_lab.map(|l| l.as_str().to_owned()))
                }
                Event::WentOffline { .. } => {
                    changes.push(delete("presence".to_owned(), key, position));
                    sqlx::query(
                        "UPDATE rm_presence SET online = false, since = NULL, current_lab = NULL \
                         WHERE player_id = $1",
                    )
                    .bind(id.0)
                }
                _ => continue,
            };
            query.execute(&mut *tx).await.context("saving presence")?;
            // The history: the open version closes here, and an online player opens the next.
            sqlx::query(
                "UPDATE rm_presence_history SET valid_to = $2 \
                  WHERE player_id = $1 AND valid_to = 9223372036854775807",
            )
            .bind(id.0)
            .bind(position)
            .execute(&mut *tx)
            .await
            .context("closing a presence version")?;
            sqlx::query(
                "INSERT INTO rm_presence_history (player_id, username, current_lab, since, valid_from) \
                 SELECT player_id, username, current_lab, since, $2 FROM rm_presence \
                  WHERE player_id = $1 AND online",
            )
            .bind(id.0)
            .bind(position)
            .execute(&mut *tx)
            .await
            .context("saving a presence version")?;
        }
        Ok(changes)
    }
}

/// Players' lab sessions (`rm_lab_sessions`): started, furthest step, completed. The saved file
/// system is the command side's working copy (`lab_workspaces`), joined when read.
pub struct Labs;

#[async_trait]
impl Projection for Labs {
    fn name(&self) -> &'static str {
        "labs"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_lab_sessions"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Change>> {
        // Folded in memory and written once per batch: a course completes labs all day long.
        let mut touched: Vec<(Uuid, LabId, Event, &RecordedEvent)> = Vec::new();
        for recorded in events {
            let player = match recorded.stream_id.parse::<StreamId>() {
                Ok(StreamId::Lab(player, _)) => player,
                Ok(StreamId::Player(player)) if recorded.event_type == "lab_completed" => player,
                _ => continue,
            };
            let event = decode(recorded)?;
            let lab = match &event {
                Event::LabStarted { lab_id }
                | Event::LabProgressed { lab_id, .. }
                | Event::LabStateDeleted { lab_id }
                | Event::LabCompleted { lab_id, .. } => lab_id.clone(),
                _ => continue,
            };
            touched.push((player.0, lab, event, recorded));
        }
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let (players, labs): (Vec<Uuid>, Vec<String>) = touched
            .iter()
            .map(|(p, l, _, _)| (*p, l.as_str().to_owned()))
            .unzip();
        let mut rows: BTreeMap<(Uuid, String), SessionRow> = sqlx::query_as::<_, SessionRow>(
            "SELECT s.player_id, s.lab_id, s.active, s.started_at, s.furthest_step, s.completed_at, s.updated_position \
               FROM rm_lab_sessions s JOIN unnest($1::uuid[], $2::text[]) AS k(player_id, lab_id) \
                 ON s.player_id = k.player_id AND s.lab_id = k.lab_id",
        )
        .bind(&players)
        .bind(&labs)
        .fetch_all(&mut *tx)
        .await
        .context("loading lab sessions")?
        .into_iter()
        .map(|row| ((row.player_id, row.lab_id.clone()), row))
        .collect();
        let mut changes = Vec::with_capacity(touched.len());
        for (player, lab, event, recorded) in touched {
            let row = rows
                .entry((player, lab.as_str().to_owned()))
                .or_insert_with(|| SessionRow::new(player, &lab));
            row.apply(&event, recorded);
            changes.push(upsert(
                format!("lab:{player}:{lab}"),
                lab.as_str().to_owned(),
                recorded.position,
            ));
        }
        let mut query = QueryBuilder::new(
            "INSERT INTO rm_lab_sessions (player_id, lab_id, active, started_at, furthest_step, completed_at, updated_position) ",
        );
        query.push_values(rows.values(), |mut b, row| {
            b.push_bind(row.player_id)
                .push_bind(row.lab_id.clone())
                .push_bind(row.active)
                .push_bind(row.started_at)
                .push_bind(row.furthest_step)
                .push_bind(row.completed_at)
                .push_bind(row.updated_position);
        });
        query.push(
            " ON CONFLICT (player_id, lab_id) DO UPDATE SET active = EXCLUDED.active, \
             started_at = EXCLUDED.started_at, furthest_step = EXCLUDED.furthest_step, \
             completed_at = EXCLUDED.completed_at, updated_position = EXCLUDED.updated_position",
        );
        query
            .build()
            .execute(&mut *tx)
            .await
            .context("saving lab sessions")?;
        Ok(changes)
    }
}

/// A row of `rm_lab_sessions`: a player's session of a lab, and whether the lab is completed.
#[derive(Debug, Clone, sqlx::FromRow)]
struct SessionRow {
    player_id: Uuid,
    lab_id: String,
    active: bool,
    started_at: Option<DateTime<Utc>>,
    furthest_step: i32,
    completed_at: Option<DateTime<Utc>>,
    updated_position: i64,
}

impl SessionRow {
    fn new(player_id: Uuid, lab: &LabId) -> Self {
        Self {
            player_id,
            lab_id: lab.as_str().to_owned(),
            active: false,
            started_at: None,
            furthest_step: 0,
            completed_at: None,
            updated_position: 0,
        }
    }

    /// Folds one event of the session's stream, or the player's completion of the lab.
    fn apply(&mut self, event: &Event, recorded: &RecordedEvent) {
        match event {
            Event::LabStarted { .. } => {
                self.active = true;
                self.started_at = Some(recorded.recorded_at);
                self.furthest_step = 0;
            }
            Event::LabProgressed { step, .. } => {
                self.furthest_step = self.furthest_step.max(int(*step));
            }
            Event::LabStateDeleted { .. } => {
                self.active = false;
                self.started_at = None;
                self.furthest_step = 0;
            }
            Event::LabCompleted { .. } => self.completed_at = Some(recorded.recorded_at),
            _ => return,
        }
        self.updated_position = recorded.position;
    }
}

/// Chat messages (`rm_messages`), announced on `channel:<canonical channel>`.
pub struct Chat;

#[async_trait]
impl Projection for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_messages"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for recorded in events
            .iter()
            .filter(|e| e.stream_id.starts_with("message-"))
        {
            let at = recorded.recorded_at;
            let position = recorded.position;
            let (id, channel): (Uuid, Option<String>) = match decode(recorded)? {
                Event::MessageSent {
                    message_id,
                    channel,
                    sender,
                    content,
                } => {
                    sqlx::query(
                        "INSERT INTO rm_messages (message_id, channel, sender, content, sent_at, position) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
                    )
                    .bind(message_id.0)
                    .bind(channel.to_string())
                    .bind(sender.0)
                    .bind(content.as_str())
                    .bind(at)
                    .bind(position)
                    .execute(&mut *tx)
                    .await
                    .context("saving a message")?;
                    (message_id.0, Some(channel.to_string()))
                }
                Event::MessageEdited {
                    message_id,
                    content,
                } => {
                    let channel = sqlx::query_scalar(
                        "UPDATE rm_messages SET content = $2, edited_at = $3 WHERE message_id = $1 \
                         RETURNING channel",
                    )
                    .bind(message_id.0)
                    .bind(content.as_str())
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("editing a message")?;
                    (message_id.0, channel)
                }
                Event::MessageDeleted { message_id, .. } => {
                    let channel = sqlx::query_scalar(
                        "UPDATE rm_messages SET content = NULL, deleted = true WHERE message_id = $1 \
                         RETURNING channel",
                    )
                    .bind(message_id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("deleting a message")?;
                    (message_id.0, channel)
                }
                _ => continue,
            };
            if let Some(channel) = channel {
                changes.push(upsert(
                    format!("channel:{channel}"),
                    id.to_string(),
                    position,
                ));
            }
        }
        Ok(changes)
    }
}
