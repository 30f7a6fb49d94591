//! Players' lab sessions (`rm_lab_sessions`): started, furthest step, completed. A session's facts
//! are folded by the lab stream's own `LabSession::evolve`; the saved file system is the command
//! side's working copy (`lab_workspaces`), joined when read.

use std::borrow::Cow;
use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_academy::stream::StreamId as AcademyStream;
use questlog_academy::values::LabId;
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::rows::{RowSink, Rows};
use questlog_projector::{Bulk, Decoded, FoldMap, Projection};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::event::Event;
use crate::names::{LABS, LAB_TOPIC};
use crate::session::LabSession;
use crate::session_of;

/// What a session's row folds: an event of the session's own stream, or the academy's
/// completion of the lab on the player's stream.
#[derive(Debug, Clone, Copy)]
pub enum Fact<'a> {
    Session(&'a Event),
    Completed,
}

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
    /// Folds one fact recorded at `at` and `position`: the session itself by
    /// `LabSession::evolve`, the times from the log.
    pub fn apply(&mut self, fact: Fact<'_>, at: DateTime<Utc>, position: i64) {
        match fact {
            Fact::Session(event) => {
                match event {
                    Event::LabStarted { .. } => self.started_at = Some(at),
                    Event::LabProgressed { .. } => {}
                    Event::LabStateDeleted { .. } => self.started_at = None,
                }
                self.session.evolve(event);
            }
            Fact::Completed => self.completed_at = Some(at),
        }
        self.updated_position = position;
    }
}

/// The (player, lab) row `decoded` folds into, with what it folds.
fn of_session(decoded: &Decoded) -> Option<((Uuid, Cow<'_, LabId>), Fact<'_>)> {
    if let Some(event) = decoded.event.get::<Event>() {
        let (player, lab) = session_of(&decoded.recorded.stream_id)?;
        return Some(((player.0, Cow::Owned(lab)), Fact::Session(event)));
    }
    match decoded.event.get::<questlog_academy::Event>()? {
        questlog_academy::Event::LabCompleted { lab_id, .. } => {
            match decoded.recorded.stream_id.parse::<AcademyStream>().ok()? {
                AcademyStream::Player(player) => {
                    Some(((player.0, Cow::Borrowed(lab_id)), Fact::Completed))
                }
                _ => None,
            }
        }
        _ => None,
    }
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

    fn bulk(&self) -> Option<Box<dyn Bulk>> {
        Some(Box::<Rebuild>::default())
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        // Folded in memory and written once per batch: a course completes labs all day long.
        let touched: Vec<((Uuid, Cow<'_, LabId>), Fact<'_>, &Decoded)> = events
            .iter()
            .filter_map(|d| of_session(d).map(|(key, fact)| (key, fact, *d)))
            .collect();
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = load(
            tx,
            touched
                .iter()
                .map(|((player, lab), _, _)| (*player, &**lab)),
        )
        .await?;
        let mut changes = Vec::with_capacity(touched.len());
        for ((player, lab), fact, decoded) in touched {
            let row = rows.entry((player, lab.as_ref().clone())).or_default();
            row.apply(fact, decoded.recorded.recorded_at, decoded.position());
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
    keys: impl Iterator<Item = (Uuid, &'a LabId)>,
) -> anyhow::Result<BTreeMap<(Uuid, LabId), SessionRow>> {
    let (players, labs): (Vec<Uuid>, Vec<&str>) = keys.map(|(p, l)| (p, l.as_str())).unzip();
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
    SESSION_ROWS
        .upsert(tx, rows, |mut b, ((player, lab), row)| {
            row.put(&mut b, *player, lab)
        })
        .await
}

impl SessionRow {
    /// The row of `(player, lab)`, in [`SESSION_ROWS`]' columns.
    fn put(&self, out: &mut impl RowSink, player: Uuid, lab: &LabId) {
        out.put(player)
            .put_text(Some(lab.as_str()))
            .put(self.session.active)
            .put(self.started_at)
            .put(int(self.session.furthest_step))
            .put(self.completed_at)
            .put(self.updated_position);
    }
}

/// A rebuild of every session's row, folded in memory by [`SessionRow::apply`] and written once.
/// A course has a few hundred labs and its players a session of each: a player's sessions are
/// one small vector, kept in the order of the labs' numbers in `labs` (each lab id held once,
/// numbered on first sight), so that a session is found by the player's entry in a map as large
/// as the players, then a binary search among that player's own — never one entry per session
/// in a map that, at a million sessions, is rebuilt whole each time it doubles.
#[derive(Default)]
struct Rebuild {
    players: FoldMap<Uuid, Vec<(u32, SessionRow)>>,
    labs: Vec<LabId>,
    numbers: FoldMap<LabId, u32>,
}

impl Rebuild {
    /// The number of `lab`, given on first sight.
    fn number(&mut self, lab: &LabId) -> u32 {
        if let Some(n) = self.numbers.get(lab) {
            return *n;
        }
        let n = u32::try_from(self.labs.len()).unwrap_or(u32::MAX);
        self.labs.push(lab.clone());
        self.numbers.insert(lab.clone(), n);
        n
    }

    /// `player`'s session of lab number `lab`, added (empty) on first sight. A player's events
    /// mostly concern the last lab they reached (started, progressed, completed), whose session
    /// is looked at first: the binary search only for an earlier lab.
    fn session(&mut self, player: Uuid, lab: u32) -> &mut SessionRow {
        let sessions = self.players.entry(player).or_default();
        let at = match sessions.last() {
            Some((last, _)) if *last == lab => sessions.len() - 1,
            Some((last, _)) if *last > lab => {
                match sessions.binary_search_by_key(&lab, |(n, _)| *n) {
                    Ok(at) => at,
                    Err(at) => {
                        sessions.insert(at, (lab, SessionRow::default()));
                        at
                    }
                }
            }
            _ => {
                sessions.push((lab, SessionRow::default()));
                sessions.len() - 1
            }
        };
        &mut sessions[at].1
    }
}

#[async_trait]
impl Bulk for Rebuild {
    fn fold(&mut self, events: &[&Decoded]) -> anyhow::Result<()> {
        for decoded in events {
            if let Some(((player, lab), fact)) = of_session(decoded) {
                let lab = self.number(&lab);
                self.session(player, lab).apply(
                    fact,
                    decoded.recorded.recorded_at,
                    decoded.position(),
                );
            }
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, conn: &mut PgConnection) -> anyhow::Result<()> {
        let Self { players, labs, .. } = *self;
        let lab = |n: u32| &labs[n as usize];
        // In the primary key's order (a UUID's bytes, then the lab id's, which is the key's
        // order under a bytewise collation such as `C`): its index is then built from rows
        // already sorted, in about half the time.
        let mut players: Vec<(Uuid, Vec<(u32, SessionRow)>)> = players.into_iter().collect();
        players.sort_unstable_by_key(|(player, _)| *player);
        for (_, sessions) in &mut players {
            sessions.sort_unstable_by(|(m, _), (n, _)| lab(*m).as_str().cmp(lab(*n).as_str()));
        }
        let rows: Vec<(Uuid, u32, &SessionRow)> = players
            .iter()
            .flat_map(|(player, sessions)| sessions.iter().map(|(n, row)| (*player, *n, row)))
            .collect();
        SESSION_ROWS
            .copy()
            .send_all(conn, rows, |line, (player, n, row)| {
                row.put(line, player, lab(n));
            })
            .await
    }
}

/// `rm_lab_sessions`: one row per player and lab started or completed.
const SESSION_ROWS: Rows = Rows {
    table: "rm_lab_sessions",
    columns: &[
        "player_id",
        "lab_id",
        "active",
        "started_at",
        "furthest_step",
        "completed_at",
        "updated_position",
    ],
    key: &["player_id", "lab_id"],
    update: &[
        "active",
        "started_at",
        "furthest_step",
        "completed_at",
        "updated_position",
    ],
};

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
        row.apply(
            Fact::Session(&Event::LabStarted {
                lab_id: lab_id.clone(),
            }),
            at(1),
            10,
        );
        for (step, position) in [(3, 11), (2, 12)] {
            row.apply(
                Fact::Session(&Event::LabProgressed {
                    lab_id: lab_id.clone(),
                    step,
                }),
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
        row.apply(Fact::Completed, at(3), 13);
        row.apply(Fact::Session(&Event::LabStateDeleted { lab_id }), at(4), 14);
        assert_eq!(
            row,
            SessionRow {
                session: LabSession::default(),
                started_at: None,
                completed_at: Some(at(3)),
                updated_position: 14,
            }
        );
    }

    #[test]
    fn a_rebuild_finds_each_players_session_of_a_lab_whatever_order_the_labs_come_in() {
        let mut rebuild = Rebuild::default();
        let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
        // Labs reached in order, then an earlier one again, one in between, and another player's.
        for (position, (player, lab)) in
            [(ada, 2), (ada, 5), (ada, 2), (bob, 5), (ada, 3), (ada, 5)]
                .into_iter()
                .enumerate()
        {
            rebuild.session(player, lab).apply(
                Fact::Completed,
                at(1),
                i64::try_from(position).expect("small"),
            );
        }
        let sessions = |player| -> Vec<(u32, i64)> {
            rebuild.players[&player]
                .iter()
                .map(|(n, row)| (*n, row.updated_position))
                .collect()
        };
        assert_eq!(sessions(ada), [(2, 2), (3, 4), (5, 5)]);
        assert_eq!(sessions(bob), [(5, 3)]);
    }
}
