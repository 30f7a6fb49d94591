//! `GET /v1/players/{id}`: a player's public profile, joined from the players and catalog read
//! models.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use questlog_academy::catalog::{CatalogState, Module};
use questlog_academy::values::{ModuleNo, PlayerId};
use questlog_academy::{StreamId, StreamState};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::as_of::{decode, events_until};
use crate::error::ApiError;
use crate::params::{query, Consistency, ReadParams};
use crate::projection::{CATALOG, PLAYERS};
use crate::snapshot::{answer, begin, checkpoint};
use crate::QueryState;

/// The projections a profile is read from.
pub(crate) const PROFILE: &[&str] = &[PLAYERS, CATALOG];

/// A profile as the contract shapes it.
#[derive(Debug, Serialize)]
pub(crate) struct Profile {
    player_id: Uuid,
    username: String,
    level: i32,
    xp: i64,
    streak: i32,
    longest_streak: i32,
    timezone: String,
    last_activity: Option<DateTime<Utc>>,
    online: bool,
    current_lab: Option<String>,
    completed_labs: Vec<String>,
    completed_modules: Vec<i32>,
    unlocked_modules: Vec<ModuleNo>,
    achievements: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct PlayerRow {
    player_id: Uuid,
    username: String,
    level: i32,
    xp: i64,
    streak: i32,
    longest_streak: i32,
    timezone: String,
    last_activity: Option<DateTime<Utc>>,
    completed_labs: Vec<String>,
    completed_modules: Vec<i32>,
    achievements: Vec<String>,
    online: bool,
    current_lab: Option<String>,
    updated_position: i64,
}

/// The player a path names: `me` is the caller. Anything that is not a UUID names no player.
pub(crate) fn player_in_path(
    raw: Result<Path<String>, PathRejection>,
    caller: Uuid,
) -> Result<Uuid, ApiError> {
    let Path(raw) = raw?;
    if raw == "me" {
        return Ok(caller);
    }
    Uuid::parse_str(&raw).map_err(|_| player_not_found())
}

pub(crate) fn player_not_found() -> ApiError {
    ApiError::not_found("player_not_found", "there is no such player")
}

/// `GET /v1/players/{id}`: any player's profile, for any valid token.
#[tracing::instrument(skip_all, fields(player = tracing::field::Empty))]
pub(crate) async fn profile(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    id: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let player_id = player_in_path(id, actor.identity.0)?;
    tracing::Span::current().record("player", tracing::field::display(player_id));
    if let Some(as_of) = consistency.as_of {
        let mut tx = begin(&state.pool).await?;
        let position = as_of.resolve(&mut tx).await?;
        let profile = profile_as_of(&mut tx, player_id, position)
            .await?
            .ok_or_else(player_not_found)?;
        tx.commit().await?;
        return Ok(answer(position, &profile));
    }
    consistency.wait(&state.positions, PROFILE).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, PROFILE).await?;
    let profile = read_profile(&mut tx, player_id)
        .await?
        .ok_or_else(player_not_found)?;
    tx.commit().await?;
    Ok(answer(position, &profile))
}

/// A player's profile as of `position`: its stream and the catalog's folded by the domain up to
/// there (`None` for a player not registered by then).
pub(crate) async fn profile_as_of(
    conn: &mut PgConnection,
    player_id: Uuid,
    position: i64,
) -> Result<Option<Profile>, ApiError> {
    let player = StreamId::Player(PlayerId(player_id));
    let recorded = events_until(
        conn,
        &[player.to_string(), StreamId::Catalog.to_string()],
        position,
    )
    .await?;
    let (mine, catalog): (Vec<_>, Vec<_>) = recorded
        .into_iter()
        .partition(|e| e.stream_id != StreamId::Catalog.to_string());
    let StreamState::Player(state) = StreamState::fold(&player, &decode(&mine)?) else {
        return Ok(None);
    };
    let StreamState::Catalog(catalog) = StreamState::fold(&StreamId::Catalog, &decode(&catalog)?)
    else {
        return Ok(None);
    };
    let Some(registration) = &state.registered else {
        return Ok(None);
    };
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(Some(Profile {
        player_id,
        username: registration.username.as_str().to_owned(),
        level: int(state.level),
        xp: i64::try_from(state.xp).unwrap_or(i64::MAX),
        streak: int(state.streak.current),
        longest_streak: int(state.streak.longest),
        timezone: state.timezone.name().to_owned(),
        last_activity: state.last_activity,
        online: state.online,
        current_lab: state.current_lab.as_ref().map(|l| l.as_str().to_owned()),
        // Sets, so already in order, as the live read sorts them.
        completed_labs: state
            .completed_labs
            .iter()
            .map(|l| l.as_str().to_owned())
            .collect(),
        completed_modules: state.completed_modules.iter().map(|m| int(*m)).collect(),
        unlocked_modules: catalog.unlocked_modules(&state.completed_modules),
        achievements: state
            .achievements
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
    }))
}

/// A player's profile as this snapshot holds it (`None` for a player never registered). The read
/// behind `GET /v1/players/{id}`.
pub(crate) async fn read_profile(
    conn: &mut PgConnection,
    player_id: Uuid,
) -> Result<Option<Profile>, sqlx::Error> {
    Ok(read_profile_at(conn, player_id)
        .await?
        .map(|(_, profile)| profile))
}

/// [`read_profile`], with the position of the last event of the player's stream it reflects: the
/// `player:<id>` live topic's read.
pub(crate) async fn read_profile_at(
    conn: &mut PgConnection,
    player_id: Uuid,
) -> Result<Option<(i64, Profile)>, sqlx::Error> {
    let row: Option<PlayerRow> = sqlx::query_as(
        "SELECT player_id, username, level, xp, streak, longest_streak, timezone, last_activity,
                completed_labs, completed_modules, achievements, online, current_lab,
                updated_position
           FROM rm_players WHERE player_id = $1",
    )
    .bind(player_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let modules: Vec<(i32, String, Vec<i32>)> =
        sqlx::query_as("SELECT module, title, requires FROM rm_modules")
            .fetch_all(&mut *conn)
            .await?;

    let mut completed_labs = row.completed_labs;
    completed_labs.sort();
    let mut completed_modules = row.completed_modules;
    completed_modules.sort_unstable();
    let mut achievements = row.achievements;
    achievements.sort();
    let unlocked_modules = unlocked(&modules, &completed_modules);
    let profile = Profile {
        player_id: row.player_id,
        username: row.username,
        level: row.level,
        xp: row.xp,
        streak: row.streak,
        longest_streak: row.longest_streak,
        timezone: row.timezone,
        last_activity: row.last_activity,
        online: row.online,
        current_lab: row.current_lab,
        completed_labs,
        completed_modules,
        unlocked_modules,
        achievements,
    };
    Ok(Some((row.updated_position, profile)))
}

/// The modules unlocked for a player, by the domain's own rule.
fn unlocked(modules: &[(i32, String, Vec<i32>)], completed: &[i32]) -> Vec<ModuleNo> {
    let module_no = |n: &i32| ModuleNo::try_from(*n).ok();
    let catalog = CatalogState {
        modules: modules
            .iter()
            .filter_map(|(module, title, requires)| {
                let module = module_no(module)?;
                let requires = requires.iter().filter_map(module_no).collect();
                Some((
                    module,
                    Module {
                        title: title.clone(),
                        requires,
                    },
                ))
            })
            .collect::<BTreeMap<_, _>>(),
        // Labs play no part in what is unlocked.
        labs: BTreeMap::new(),
    };
    let completed: BTreeSet<ModuleNo> = completed.iter().filter_map(module_no).collect();
    catalog.unlocked_modules(&completed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(n: i32, requires: &[i32]) -> (i32, String, Vec<i32>) {
        (n, format!("Module {n}"), requires.to_vec())
    }

    #[test]
    fn a_module_unlocks_when_every_module_it_requires_is_complete() {
        let modules = [
            module(1, &[]),
            module(2, &[1]),
            module(3, &[1, 2]),
            module(4, &[]),
        ];
        assert_eq!(unlocked(&modules, &[]), vec![1, 4]);
        assert_eq!(unlocked(&modules, &[1]), vec![1, 2, 4]);
        assert_eq!(unlocked(&modules, &[1, 2]), vec![1, 2, 3, 4]);
    }
}
