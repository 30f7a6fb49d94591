//! Players' lab sessions (`rm_lab_sessions`): started, furthest step, completed. A session's facts
//! are folded by the lab stream's own `LabSession::evolve`; the saved file system is the command
//! side's working copy (`lab_workspaces`), joined when read.

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::{Decoded, Projection};
use sqlx::{PgConnection, QueryBuilder, Row};
use uuid::Uuid;

use crate::event::Event;
use crate::lab::LabSession;
use crate::names::{LABS, LAB_TOPIC};
use crate::stream::StreamId;
use crate::values::LabId;

/// A row of `rm_lab_sessions`: a player's session of a lab, and whether the lab is completed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRow {
    /// What the session's stream says (active, furthest step).
    pub session: LabSession,
    /// When the session (re)started; `None` once deleted.
    pub started_at: Option<DateTime<Utc>>,
    /// When the player completed the lab (from the player's stream); outlives deletions.
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_position: i64,
}

impl SessionRow {
    /// Folds one event of the session's stream, or the player's completion of the lab, recorded at
    /// `at` and `position`: the session itself by `LabSession::evolve`, the times from the log.
    /// Returns whether the row changed.
    pub fn apply(&mut self, event: &Event, at: DateTime<Utc>, position: i64) -> bool {
        match event {
            Event::LabStarted { .. } => self.started_at = Some(at),
            Event::LabProgressed { .. } => {}
            Event::LabStateDeleted { .. } => self.started_at = None,
            Event::LabCompleted { .. } => self.completed_at = Some(at),
            _ => return false,
        }
        self.session.evolve(event);
        self.updated_position = position;
        true
    }
}

/// The (player, lab) row `decoded` folds into, with its academy event.
fn of_session(decoded: &Decoded) -> Option<((Uuid, LabId), &Event)> {
    let event = decoded.event.get::<Event>()?;
    let lab = match event {
        Event::LabStarted { lab_id }
        | Event::LabProgressed { lab_id, .. }
        | Event::LabStateDeleted { lab_id }
        | Event::LabCompleted { lab_id, .. } => lab_id,
        _ => return None,
    };
    let player = match decoded.recorded.stream_id.parse::<StreamId>().ok()? {
        StreamId::Lab(player, _) => player,
        StreamId::Player(player) if matches!(event, Event::LabCompleted { .. }) => player,
        _ => return None,
    };
    Some(((player.0, lab.clone()), event))
}

fn int(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// Players' lab sessions (`rm_lab_sessions`).
pub struct Labs;

#[async_trait]
impl Projection for Labs {
    fn name(&self) -> ProjectionName {
        LABS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_lab_sessions"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        // Folded in memory and written once per batch: a course completes labs all day long.
        let touched: Vec<((Uuid, LabId), &Event, &Decoded)> = events
            .iter()
            .filter_map(|d| of_session(d).map(|(key, event)| (key, event, *d)))
            .collect();
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = load(tx, touched.iter().map(|(key, _, _)| key)).await?;
        let mut changes = Vec::with_capacity(touched.len());
        for ((player, lab), event, decoded) in touched {
            let row = rows.entry((player, lab.clone())).or_default();
            row.apply(event, decoded.recorded.recorded_at, decoded.position());
            changes.push(Change {
                topic: LAB_TOPIC.topic(format_args!("{player}:{lab}")),
                key: lab.as_str().to_owned(),
                op: ChangeOp::Upsert,
                position: decoded.position(),
            });
        }
        save(tx, &rows).await?;
        Ok(changes)
    }
}

async fn load<'a>(
    tx: &mut PgConnection,
    keys: impl Iterator<Item = &'a (Uuid, LabId)>,
) -> anyhow::Result<BTreeMap<(Uuid, LabId), SessionRow>> {
    let (players, labs): (Vec<Uuid>, Vec<String>) =
        keys.map(|(p, l)| (*p, l.as_str().to_owned())).unzip();
    let found = sqlx::query(
        "SELECT s.player_id, s.lab_id, s.active, s.started_at, s.furthest_step, s.completed_at, s.updated_position \
           FROM rm_lab_sessions s JOIN (SELECT DISTINCT * FROM unnest($1::uuid[], $2::text[])) AS k(player_id, lab_id) \
             ON s.player_id = k.player_id AND s.lab_id = k.lab_id",
    )
    .bind(&players)
    .bind(&labs)
    .fetch_all(&mut *tx)
    .await
    .context("loading lab sessions")?;
    let mut rows = BTreeMap::new();
    for row in found {
        let lab: String = row.try_get("lab_id")?;
        let lab = LabId::parse(&lab).context("a stored lab id")?;
        rows.insert(
            (row.try_get("player_id")?, lab),
            SessionRow {
                session: LabSession {
                    active: row.try_get("active")?,
                    furthest_step: u32::try_from(row.try_get::<i32, _>("furthest_step")?)
                        .unwrap_or(0),
                },
                started_at: row.try_get("started_at")?,
                completed_at: row.try_get("completed_at")?,
                updated_position: row.try_get("updated_position")?,
            },
        );
    }
    Ok(rows)
}

async fn save(
    tx: &mut PgConnection,
    rows: &BTreeMap<(Uuid, LabId), SessionRow>,
) -> anyhow::Result<()> {
    let mut query = QueryBuilder::new(
        "INSERT INTO rm_lab_sessions (player_id, lab_id, active, started_at, furthest_step, completed_at, updated_position) ",
    );
    query.push_values(rows, |mut b, ((player, lab), row)| {
        b.push_bind(*player)
            .push_bind(lab.as_str().to_owned())
            .push_bind(row.session.active)
            .push_bind(row.started_at)
            .push_bind(int(row.session.furthest_step))
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("a time")
    }

    #[test]
    fn a_session_row_follows_the_lab_session_and_keeps_completion_past_a_deletion() {
        let lab_id = LabId::parse("intro").expect("lab");
        let mut row = SessionRow::default();
        assert!(row.apply(
            &Event::LabStarted {
                lab_id: lab_id.clone()
            },
            at(1),
            10
        ));
        for (step, position) in [(3, 11), (2, 12)] {
            row.apply(
                &Event::LabProgressed {
                    lab_id: lab_id.clone(),
                    step,
                },
                at(2),
                position,
            );
        }
        assert_eq!(
            row.session,
            LabSession {
                active: true,
                furthest_step: 3
            }
        );
        assert_eq!(row.started_at, Some(at(1)));
        row.apply(
            &Event::LabCompleted {
                lab_id: lab_id.clone(),
                module: 1,
                xp: 10,
            },
            at(3),
            13,
        );
        row.apply(&Event::LabStateDeleted { lab_id }, at(4), 14);
        assert_eq!(
            row,
            SessionRow {
                session: LabSession::default(),
                started_at: None,
                completed_at: Some(at(3)),
                updated_position: 14,
            }
        );
        assert!(!row.apply(&Event::LeveledUp { level: 2 }, at(5), 15));
        assert_eq!(row.updated_position, 14);
    }
}
