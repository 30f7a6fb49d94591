//! The achievements' read model (`rm_achievements`, `rm_player_achievements`).
//!
//! Besides this module's own events, the projection folds every event of the log through the
//! defined rules: a count rule counts the player's events of its type (whose data has every
//! `where` field), a score rule watches `score_submitted` for its board. A player's own history is
//! the events whose data names it as `player_id`, and the events of commands it sent itself (its
//! identity in the event's metadata, with the player role). The goal is met at the event that
//! reaches it: that event's position and time are the unlock's.
//!
//! Defining an achievement with a rule (or changing its rule or goal) derives its rows from the
//! log before the definition in one scan of the log (an index-free sequential scan of `events`,
//! in the projection's transaction: the writer and the other projections never wait for it),
//! then folds on from the definition like any other rule.
//!
//! A built-in achievement (a module's, defined in code from the log's start: [`crate::builtin`])
//! is folded from the log's first event like a rule of goal 1 whose step is the module's event
//! that awards it.
//!
//! Every change of a definition or of a player's line is also kept as a version valid from the
//! event that made it (`rm_achievement_versions`, `rm_player_achievement_versions`), which is
//! what an `as_of` read answers from.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::rows::{record_version, OPEN};
use questlog_projector::{Decoded, Projection};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::builtin::BuiltinAchievements;
use crate::event::Event;
use crate::names::{ACHIEVEMENTS, CHANGES};
use crate::values::Rule;

/// The achievements projection, with the built-in achievements it folds.
pub struct Achievements {
    pub(crate) builtins: BuiltinAchievements,
}

/// A rule as the projection evaluates it.
#[derive(Debug, Clone)]
struct Active {
    goal: i64,
    rule: Rule,
}

/// The player an event belongs to, if any: its data's `player_id`, else the identity of the
/// player whose command recorded it.
fn owner(data: &Value, metadata: &Value) -> Option<Uuid> {
    if let Some(id) = data.get("player_id").and_then(Value::as_str) {
        return Uuid::parse_str(id).ok();
    }
    if metadata.get("role").and_then(Value::as_str) == Some("player") {
        return metadata
            .get("identity")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok());
    }
    None
}

/// The same choice in SQL, over `events` columns.
const OWNER_SQL: &str = "CASE WHEN jsonb_typeof(data->'player_id') = 'string' \
       THEN CASE WHEN data->>'player_id' ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' \
            THEN (data->>'player_id')::uuid END \
     WHEN data ? 'player_id' THEN NULL \
     WHEN metadata->>'role' = 'player' THEN (metadata->>'identity')::uuid END";

#[async_trait]
impl Projection for Achievements {
    fn name(&self) -> ProjectionName {
        ACHIEVEMENTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_achievements",
            "rm_player_achievements",
            "rm_achievement_versions",
            "rm_player_achievement_versions",
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let mut rules = active_rules(tx).await?;
        let builtins = self.builtins.all();
        let mut changes = Vec::new();
        for decoded in events {
            let position = decoded.position();
            let at = decoded.recorded.recorded_at;
            let mut touched: Vec<(String, Uuid)> = Vec::new();
            if let Some(event) = decoded.event.get::<Event>() {
                match event {
                    Event::AchievementDefined {
                        achievement,
                        title,
                        description,
                        hidden,
                        goal,
                        rule,
                        authoritative,
                    } => {
                        let id = achievement.as_str();
                        let rule_json = rule.as_ref().map(serde_json::to_value).transpose()?;
                        let before: Option<(i64, Option<Value>)> = sqlx::query_as(
                            "SELECT goal, rule FROM rm_achievements WHERE achievement = $1",
                        )
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        sqlx::query(
                            "INSERT INTO rm_achievements (achievement, title, description, \
                             hidden, goal, rule, authoritative, defined_position) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (achievement) DO UPDATE SET title = $2, \
                             description = $3, hidden = $4, goal = $5, rule = $6, \
                             authoritative = $7",
                        )
                        .bind(id)
                        .bind(title)
                        .bind(description)
                        .bind(hidden)
                        .bind(goal)
                        .bind(&rule_json)
                        .bind(authoritative)
                        .bind(position)
                        .execute(&mut *tx)
                        .await?;
                        record_version(
                            tx,
                            "rm_achievements",
                            "rm_achievement_versions",
                            DEFINITION,
                            "achievement",
                            id,
                            position,
                        )
                        .await?;
                        let rederive =
                            rule.is_some() && before.as_ref() != Some(&(*goal, rule_json.clone()));
                        if let Some(rule) = rule.as_ref().filter(|_| rederive) {
                            retroactive(tx, id, *goal, rule, position).await?;
                        }
                        match rule {
                            Some(rule) => {
                                rules.insert(
                                    id.to_owned(),
                                    Active {
                                        goal: *goal,
                                        rule: rule.clone(),
                                    },
                                );
                            }
                            None => {
                                rules.remove(id);
                            }
                        }
                        changes.push(Change {
                            topic: CHANGES.to_owned(),
                            key: id.to_owned(),
                            op: ChangeOp::Upsert,
                            position,
                        });
                    }
                    Event::AchievementProgressed {
                        achievement,
                        player_id,
                        progress,
                    } => {
                        sqlx::query(
                            "INSERT INTO rm_player_achievements (achievement, player_id, \
                             progress, updated_position) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (achievement, player_id) DO UPDATE \
                             SET progress = $3, updated_position = $4",
                        )
                        .bind(achievement.as_str())
                        .bind(player_id.0)
                        .bind(progress)
                        .bind(position)
                        .execute(&mut *tx)
                        .await?;
                        touched.push((achievement.to_string(), player_id.0));
                    }
                    Event::AchievementAwarded {
                        achievement,
                        player_id,
                    } => {
                        sqlx::query(
                            "INSERT INTO rm_player_achievements (achievement, player_id, \
                             unlocked_at, unlocked_position, updated_position) \
                             VALUES ($1, $2, $3, $4, $4) \
                             ON CONFLICT (achievement, player_id) DO UPDATE \
                             SET unlocked_at = coalesce(rm_player_achievements.unlocked_at, $3), \
                                 unlocked_position = coalesce(\
                                   rm_player_achievements.unlocked_position, $4), \
                                 revoked = false, updated_position = $4",
                        )
                        .bind(achievement.as_str())
                        .bind(player_id.0)
                        .bind(at)
                        .bind(position)
                        .execute(&mut *tx)
                        .await?;
                        touched.push((achievement.to_string(), player_id.0));
                    }
                    Event::AchievementRevoked {
                        achievement,
                        player_id,
                        ..
                    } => {
                        sqlx::query(
                            "INSERT INTO rm_player_achievements (achievement, player_id, \
                             revoked, updated_position) VALUES ($1, $2, true, $3) \
                             ON CONFLICT (achievement, player_id) DO UPDATE \
                             SET unlocked_at = NULL, unlocked_position = NULL, revoked = true, \
                                 updated_position = $3",
                        )
                        .bind(achievement.as_str())
                        .bind(player_id.0)
                        .bind(position)
                        .execute(&mut *tx)
                        .await?;
                        touched.push((achievement.to_string(), player_id.0));
                    }
                }
            }
            if !rules.is_empty() {
                let event_type = decoded.recorded.event_type.as_str();
                let data = &decoded.recorded.data;
                for (id, active) in &rules {
                    if let Some(player) =
                        matches(active, event_type, data, &decoded.recorded.metadata)
                    {
                        count(tx, id, player, active, position, at).await?;
                        touched.push((id.clone(), player));
                    }
                }
            }
            for builtin in &builtins {
                if let Some(player) = (builtin.awarded)(decoded, builtin.id) {
                    step(tx, builtin.id, player, 1, 1, position, at).await?;
                    touched.push((builtin.id.to_owned(), player));
                }
            }
            record_lines(tx, &touched, position).await?;
            for (achievement, player) in touched {
                changes.push(Change {
                    topic: CHANGES.to_owned(),
                    key: format!("{achievement}:{player}"),
                    op: ChangeOp::Upsert,
                    position,
                });
            }
        }
        Ok(changes)
    }
}

/// The columns of a definition, live and versioned.
const DEFINITION: &[&str] = &[
    "achievement",
    "title",
    "description",
    "hidden",
    "goal",
    "rule",
    "authoritative",
    "defined_position",
];

/// Records the lines of `touched` (achievement, player) as they stand after the event at
/// `position` as their versions from there on.
async fn record_lines(
    tx: &mut PgConnection,
    touched: &[(String, Uuid)],
    position: i64,
) -> anyhow::Result<()> {
    if touched.is_empty() {
        return Ok(());
    }
    let (achievements, players): (Vec<&str>, Vec<Uuid>) =
        touched.iter().map(|(a, p)| (a.as_str(), *p)).unzip();
    sqlx::query(&format!(
        "WITH k AS (SELECT DISTINCT * FROM unnest($1::text[], $2::uuid[]) AS k(achievement, player_id)), \
              closed AS (UPDATE rm_player_achievement_versions v SET valid_to = $3 FROM k \
                          WHERE v.achievement = k.achievement AND v.player_id = k.player_id \
                            AND v.valid_to = {OPEN} AND v.valid_from < $3) \
         INSERT INTO rm_player_achievement_versions (achievement, player_id, progress, \
                unlocked_at, unlocked_position, revoked, valid_from) \
         SELECT a.achievement, a.player_id, a.progress, a.unlocked_at, a.unlocked_position, \
                a.revoked, $3 \
           FROM rm_player_achievements a JOIN k USING (achievement, player_id) \
         ON CONFLICT (achievement, player_id, valid_from) DO UPDATE SET \
           progress = EXCLUDED.progress, unlocked_at = EXCLUDED.unlocked_at, \
           unlocked_position = EXCLUDED.unlocked_position, revoked = EXCLUDED.revoked"
    ))
    .bind(&achievements)
    .bind(&players)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The rules defined so far.
async fn active_rules(tx: &mut PgConnection) -> anyhow::Result<HashMap<String, Active>> {
    let rows: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT achievement, goal, rule FROM rm_achievements WHERE rule IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut rules = HashMap::new();
    for (id, goal, rule) in rows {
        rules.insert(
            id,
            Active {
                goal,
                rule: serde_json::from_value(rule)?,
            },
        );
    }
    Ok(rules)
}

/// The player whose step toward `active` this event is, if it is one.
fn matches(active: &Active, event_type: &str, data: &Value, metadata: &Value) -> Option<Uuid> {
    match &active.rule {
        Rule::Count { count, filter } => {
            if event_type != count {
                return None;
            }
            if let Some(filter) = filter {
                if !filter.iter().all(|(k, v)| data.get(k) == Some(v)) {
                    return None;
                }
            }
            owner(data, metadata)
        }
        Rule::Score { score, at_least } => {
            if event_type != "score_submitted"
                || data.get("leaderboard").and_then(Value::as_str) != Some(score)
                || data
                    .get("score")
                    .and_then(Value::as_i64)
                    .is_none_or(|s| s < *at_least)
            {
                return None;
            }
            owner(data, metadata)
        }
    }
}

/// One step of a rule for a player: a count rises by one (a score rule is met at once); the
/// step that reaches the goal unlocks, unless an admin revoked it.
async fn count(
    tx: &mut PgConnection,
    achievement: &str,
    player: Uuid,
    active: &Active,
    position: i64,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let (by, goal) = match active.rule {
        Rule::Count { .. } => (1, active.goal),
        Rule::Score { .. } => (active.goal, active.goal),
    };
    step(tx, achievement, player, by, goal, position, at).await
}

/// A player's progress toward `goal` rises by `by` (to the goal at most); the step that reaches
/// the goal unlocks, unless an admin revoked it.
async fn step(
    tx: &mut PgConnection,
    achievement: &str,
    player: Uuid,
    by: i64,
    goal: i64,
    position: i64,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO rm_player_achievements AS a (achievement, player_id, progress, unlocked_at, \
         unlocked_position, updated_position) \
         VALUES ($1, $2, least($3, $4), CASE WHEN $3 >= $4 THEN $5 END, \
                 CASE WHEN $3 >= $4 THEN $6 END, $6) \
         ON CONFLICT (achievement, player_id) DO UPDATE SET \
           progress = least(a.progress + $3, $4), \
           unlocked_at = CASE WHEN a.unlocked_at IS NULL AND NOT a.revoked \
                               AND a.progress + $3 >= $4 THEN $5 ELSE a.unlocked_at END, \
           unlocked_position = CASE WHEN a.unlocked_at IS NULL AND NOT a.revoked \
                               AND a.progress + $3 >= $4 THEN $6 ELSE a.unlocked_position END, \
           updated_position = $6",
    )
    .bind(achievement)
    .bind(player)
    .bind(by)
    .bind(goal)
    .bind(at)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Derives an achievement's rows from the log before `position` (its definition): every
/// player's progress toward the goal, and where and when it was met.
async fn retroactive(
    tx: &mut PgConnection,
    achievement: &str,
    goal: i64,
    rule: &Rule,
    position: i64,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    sqlx::query("DELETE FROM rm_player_achievements WHERE achievement = $1")
        .bind(achievement)
        .execute(&mut *tx)
        .await?;
    let awarded = match rule {
        Rule::Count { count, filter } => {
            let filter = Value::Object(filter.clone().unwrap_or_default());
            sqlx::query(&format!(
                "WITH m AS (
                   SELECT {OWNER_SQL} AS player_id, position, recorded_at FROM events
                    WHERE event_type = $2 AND position < $3 AND data @> $4
                 ), n AS (
                   SELECT player_id, position, recorded_at,
                          row_number() OVER (PARTITION BY player_id ORDER BY position) AS k
                     FROM m WHERE player_id IS NOT NULL
                 )
                 INSERT INTO rm_player_achievements (achievement, player_id, progress,
                        unlocked_at, unlocked_position, updated_position)
                 SELECT $1, player_id, least(count(*), $5),
                        min(recorded_at) FILTER (WHERE k = $5),
                        min(position) FILTER (WHERE k = $5), $3
                   FROM n GROUP BY player_id"
            ))
            .bind(achievement)
            .bind(count)
            .bind(position)
            .bind(filter)
            .bind(goal)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        }
        Rule::Score { score, at_least } => sqlx::query(&format!(
            "INSERT INTO rm_player_achievements (achievement, player_id, progress, unlocked_at,
                    unlocked_position, updated_position)
             SELECT DISTINCT ON (player_id) $1, player_id, $5, recorded_at, position, $3
               FROM (SELECT {OWNER_SQL} AS player_id, position, recorded_at FROM events
                      WHERE event_type = 'score_submitted' AND position < $3
                        AND data->>'leaderboard' = $2
                        AND jsonb_typeof(data->'score') = 'number'
                        AND (data->>'score')::numeric >= $4) m
              WHERE player_id IS NOT NULL
              ORDER BY player_id, position"
        ))
        .bind(achievement)
        .bind(score)
        .bind(position)
        .bind(at_least)
        .bind(goal)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
    };
    sqlx::query(&format!(
        "UPDATE rm_player_achievement_versions SET valid_to = $2 \
          WHERE achievement = $1 AND valid_to = {OPEN} AND valid_from < $2"
    ))
    .bind(achievement)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO rm_player_achievement_versions (achievement, player_id, progress, \
                unlocked_at, unlocked_position, revoked, valid_from) \
         SELECT achievement, player_id, progress, unlocked_at, unlocked_position, revoked, $2 \
           FROM rm_player_achievements WHERE achievement = $1",
    )
    .bind(achievement)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    tracing::info!(
        achievement,
        players = awarded,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "derived an achievement's rule from the log"
    );
    Ok(())
}
