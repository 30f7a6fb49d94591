//! A player's public profile: `GET /v1/players/{id}` and the `player:<id>` live topic, both
//! answered by the reads here. The profile is assembled once ([`Profile::of`]) from the player's
//! folded state and the catalog's, whichever way they were read: from the players and catalog
//! read models (the row holds what the fold decided), or folded from the log as of a position.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_domain::Actor;
use questlog_query_api::as_of::{decode, events_until};
use questlog_query_api::live::{
    invalid_topic, span, to_value, Options, Part, Reading, Source, Span, Topic, TopicKindReads,
    Update,
};
use questlog_query_api::params::{query, Consistency, ReadParams};
use questlog_query_api::snapshot::{answer, begin, checkpoint};
use questlog_query_api::{ApiError, QueryState};
use questlog_web::{Authenticated, Problem};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{player_in_path, player_not_found};
use crate::catalog::{CatalogState, Module};
use crate::names::{CATALOG, PLAYERS, PLAYER_TOPIC};
use crate::player::{PlayerState, Registration};
use crate::rules::Streak;
use crate::stream::fold;
use crate::values::{Achievement, LabId, ModuleNo, PlayerId, Timezone, Username};
use crate::{Event, StreamId};

/// The projections a profile is read from.
pub(crate) const PROFILE: &[ProjectionName] = &[PLAYERS, CATALOG];

/// A profile as the contract shapes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Profile {
    player_id: Uuid,
    /// `null` once the player is erased.
    username: Option<String>,
    erased: bool,
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
    #[schema(value_type = Vec<u32>)]
    unlocked_modules: Vec<ModuleNo>,
    achievements: Vec<String>,
}

impl Profile {
    /// The profile of a player's folded state, with the modules the catalog unlocks for it
    /// (`None` before the registration). The one place a profile is assembled.
    pub fn of(state: &PlayerState, catalog: &CatalogState) -> Option<Self> {
        let registration = state.registered.as_ref()?;
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Some(Self {
            player_id: registration.player_id.0,
            username: registration
                .username
                .as_ref()
                .map(|u| u.as_str().to_owned()),
            erased: registration.username.is_none(),
            level: int(state.level),
            xp: i64::try_from(state.xp).unwrap_or(i64::MAX),
            streak: int(state.streak.current),
            longest_streak: int(state.streak.longest),
            timezone: state.timezone.name().to_owned(),
            last_activity: state.last_activity,
            online: state.online,
            current_lab: state.current_lab.as_ref().map(|l| l.as_str().to_owned()),
            // Sets, so in order.
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
        })
    }
}

/// `GET /v1/players/{id}`: any player's profile, for any valid token.
#[utoipa::path(get, path = "/v1/players/{id}", tag = "academy",
    params(("id" = String, Path, description = "A player id, or `me`"), ReadParams),
    summary = "A player's profile", responses((status = 200, body = Profile)))]
#[tracing::instrument(skip_all, fields(player = tracing::field::Empty))]
pub(crate) async fn route(
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
    let (_, profile) = read_profile_at(&mut tx, player_id)
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
        <Event as questlog_domain::DomainEvent>::LEGACY_PERSONAL,
    )
    .await?;
    let (mine, catalog): (Vec<_>, Vec<_>) = recorded
        .into_iter()
        .partition(|e| e.stream_id != StreamId::Catalog.to_string());
    let state = fold(PlayerState::evolve, &decode::<Event>(&mine)?);
    let catalog = fold(CatalogState::evolve, &decode::<Event>(&catalog)?);
    Ok(Profile::of(&state, &catalog))
}

/// A player's row of the players read model: the state the fold decided, and where it stands.
#[derive(sqlx::FromRow)]
struct PlayerRow {
    player_id: Uuid,
    username: Option<String>,
    level: i32,
    xp: i64,
    streak: i32,
    longest_streak: i32,
    streak_day: Option<NaiveDate>,
    timezone: String,
    last_activity: Option<DateTime<Utc>>,
    completed_labs: Vec<String>,
    completed_modules: Vec<i32>,
    achievements: Vec<String>,
    online: bool,
    current_lab: Option<String>,
    updated_position: i64,
}

impl PlayerRow {
    /// The folded state the row persists. A value the domain would not have folded is a stored
    /// row this build cannot read.
    fn state(self) -> Result<PlayerState, ApiError> {
        let bad = |what: &str| ApiError::stored(format!("rm_players holds an invalid {what}"));
        let count = |n: i32, what: &str| u32::try_from(n).map_err(|_| bad(what));
        Ok(PlayerState {
            registered: Some(Registration {
                player_id: PlayerId(self.player_id),
                username: self
                    .username
                    .as_deref()
                    .map(|u| Username::parse(u).map_err(|_| bad("username")))
                    .transpose()?,
            }),
            timezone: Timezone::parse(&self.timezone).map_err(|_| bad("timezone"))?,
            xp: u64::try_from(self.xp).map_err(|_| bad("xp"))?,
            level: count(self.level, "level")?,
            completed_labs: self
                .completed_labs
                .iter()
                .map(|l| LabId::parse(l).map_err(|_| bad("lab id")))
                .collect::<Result<_, _>>()?,
            completed_modules: self
                .completed_modules
                .iter()
                .map(|m| count(*m, "module"))
                .collect::<Result<_, _>>()?,
            achievements: self
                .achievements
                .iter()
                .map(|a| Achievement::parse(a).map_err(|_| bad("achievement")))
                .collect::<Result<_, _>>()?,
            streak: Streak {
                current: count(self.streak, "streak")?,
                longest: count(self.longest_streak, "streak")?,
                last_day: self.streak_day,
            },
            last_activity: self.last_activity,
            online: self.online,
            current_lab: self
                .current_lab
                .as_deref()
                .map(|l| LabId::parse(l).map_err(|_| bad("lab id")))
                .transpose()?,
        })
    }
}

/// The catalog as the catalog read model holds it, for what it unlocks (its labs play no part).
pub(crate) async fn read_catalog_modules(
    conn: &mut PgConnection,
) -> Result<CatalogState, ApiError> {
    let rows: Vec<(i32, String, Vec<i32>)> =
        sqlx::query_as("SELECT module, title, requires FROM rm_modules")
            .fetch_all(&mut *conn)
            .await?;
    Ok(catalog_of(rows))
}

fn catalog_of(rows: Vec<(i32, String, Vec<i32>)>) -> CatalogState {
    let module_no = |n: &i32| ModuleNo::try_from(*n).ok();
    CatalogState {
        modules: rows
            .into_iter()
            .filter_map(|(module, title, requires)| {
                let module = module_no(&module)?;
                let requires = requires.iter().filter_map(module_no).collect();
                Some((module, Module { title, requires }))
            })
            .collect::<BTreeMap<_, _>>(),
        labs: BTreeMap::new(),
    }
}

/// A player's profile as this snapshot holds it (`None` for a player never registered), with the
/// position of the last event of the player's stream it reflects: the read behind
/// `GET /v1/players/{id}` and the `player:<id>` topic.
pub(crate) async fn read_profile_at(
    conn: &mut PgConnection,
    player_id: Uuid,
) -> Result<Option<(i64, Profile)>, ApiError> {
    let row: Option<PlayerRow> = sqlx::query_as(
        "SELECT player_id, username, level, xp, streak, longest_streak, streak_day, timezone,
                last_activity, completed_labs, completed_modules, achievements, online,
                current_lab, updated_position
           FROM rm_players WHERE player_id = $1",
    )
    .bind(player_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let position = row.updated_position;
    let state = row.state()?;
    let catalog = read_catalog_modules(conn).await?;
    Ok(Profile::of(&state, &catalog).map(|profile| (position, profile)))
}

/// The `player` topic kind: `player:<id>`, `player:me` for the caller.
pub(crate) struct PlayerTopics;

impl TopicKindReads for PlayerTopics {
    fn kind(&self) -> questlog_bus::TopicKind {
        PLAYER_TOPIC
    }

    fn form(&self) -> &'static str {
        "player:<id>"
    }

    fn parse(
        &self,
        raw: &str,
        rest: Option<&str>,
        caller: &Actor,
        _options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        let Some(id) = rest else {
            return Ok(None);
        };
        let player = if id == "me" {
            caller.identity.0
        } else {
            Uuid::parse_str(id)
                .map_err(|_| invalid_topic(format!("{raw:?}: a player topic is player:<uuid>")))?
        };
        Ok(Some(Arc::new(PlayerTopic(player))))
    }
}

/// One player's profile. Its data reads two projections (players and catalog) at two
/// checkpoints: it is exact over their [`span`]; when there is none, the hub sends nothing (the
/// lagging event's own announcement brings the profile again), and a snapshot folds the profile
/// from the log as of the lower checkpoint instead. A player not (yet) in the read model has
/// `null` data, and its registration arrives as a change.
#[derive(Debug)]
pub(crate) struct PlayerTopic(pub Uuid);

impl Topic for PlayerTopic {
    fn name(&self) -> String {
        PLAYER_TOPIC.topic(self.0)
    }

    fn projections(&self) -> &'static [ProjectionName] {
        PROFILE
    }

    fn sources(&self) -> Vec<Source> {
        vec![
            Source::all(self.name()),
            // The unlocked modules follow the catalog.
            Source::all(crate::names::CATALOG_TOPIC.as_str()),
        ]
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let (span, profile) = read_player(conn, reading, self.0, Label::Highest).await?;
            Ok(match span {
                Some(span) => (span.until, profile),
                None => {
                    // No position is exact for these rows: the profile as of the lagging
                    // projection's checkpoint, folded from the log.
                    let position = PROFILE
                        .iter()
                        .map(|p| reading.checkpoint(*p))
                        .min()
                        .unwrap_or(0);
                    let profile = profile_as_of(conn, self.0, position).await?;
                    (position, profile.map_or(Value::Null, |p| to_value(&p)))
                }
            })
        }
        .boxed()
    }

    fn changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<Vec<Update>, ApiError>> {
        async move {
            if changes.is_empty() {
                return Ok(Vec::new());
            }
            let (span, profile) = read_player(conn, reading, self.0, Label::Lowest).await?;
            Ok(span
                .map(|span| Update {
                    key: self.0.to_string(),
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
        .boxed()
    }
}

/// The catalog's events around its checkpoint in one snapshot: the last it has applied, and the
/// first it has not (up to the players' checkpoint, when that is further). Read once per
/// snapshot, for every profile in it.
#[derive(Debug, Clone, Copy)]
struct CatalogPart {
    last: i64,
    next: Option<i64>,
}

async fn catalog_part(
    conn: &mut PgConnection,
    reading: &mut Reading,
) -> Result<CatalogPart, sqlx::Error> {
    if let Some(part) = reading.shared::<CatalogPart>() {
        return Ok(part);
    }
    // The catalog's stream is small (a definition per module and lab).
    let (last, next): (i64, Option<i64>) = sqlx::query_as(
        "SELECT coalesce(max(position) FILTER (WHERE position <= $1), 0)::bigint,
                min(position) FILTER (WHERE position > $1 AND position <= $2)
           FROM events WHERE stream_id = $3",
    )
    .bind(reading.checkpoint(CATALOG))
    .bind(reading.checkpoint(PLAYERS))
    .bind(StreamId::Catalog.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let part = CatalogPart { last, next };
    reading.share(part);
    Ok(part)
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
    let catalog = catalog_part(conn, reading).await?;
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
        .bind(StreamId::Player(PlayerId(id)).to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn module(n: i32, requires: &[i32]) -> (i32, String, Vec<i32>) {
        (n, format!("Module {n}"), requires.to_vec())
    }

    #[test]
    fn a_module_unlocks_when_every_module_it_requires_is_complete() {
        let catalog = catalog_of(vec![
            module(1, &[]),
            module(2, &[1]),
            module(3, &[1, 2]),
            module(4, &[]),
        ]);
        let unlocked = |done: &[u32]| catalog.unlocked_modules(&done.iter().copied().collect());
        assert_eq!(unlocked(&[]), vec![1, 4]);
        assert_eq!(unlocked(&[1]), vec![1, 2, 4]);
        assert_eq!(unlocked(&[1, 2]), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_profile_is_its_registered_players_state() {
        let id = PlayerId(Uuid::nil());
        let catalog = CatalogState::default();
        let unregistered = PlayerState::default();
        assert!(Profile::of(&unregistered, &catalog).is_none());
        let events = [Event::PlayerRegistered {
            player_id: id,
            username: questlog_domain::Personal::new(id, Username::parse("Ada").expect("valid")),
        }];
        let state = fold(PlayerState::evolve, &events);
        let json = to_value(&Profile::of(&state, &catalog));
        assert_eq!(json["username"], "Ada");
        assert_eq!(json["level"], 1);
        assert_eq!(json["timezone"], "UTC");
    }
}
