//! The JSON an admin sees for a stream's folded state (`GET /v1/admin/streams/{stream}`,
//! `questlog state`), one rendering per view the academy folds. The domain's state types stay
//! free of serialisation concerns; this is the admin's view of them.

use chrono::{DateTime, NaiveDate, Utc};

use crate::catalog::CatalogState;
use crate::player::PlayerState;
use crate::stream::UsernameHolder;
use crate::values::{ModuleNo, PlayerId};
use serde::Serialize;
use serde_json::Value;

/// The catalog's state as JSON (`kind`: `catalog`).
pub fn catalog(catalog: &CatalogState) -> Value {
    to_json(&CatalogJson::from(catalog))
}

/// A player's state as JSON (`kind`: `player`).
pub fn player(player: &PlayerState) -> Value {
    to_json(&PlayerJson::from(player))
}

/// A username's holder as JSON (`kind`: `username`).
pub fn username(holder: &UsernameHolder) -> Value {
    to_json(&UsernameJson {
        kind: "username",
        holder: holder.0,
    })
}

fn to_json(json: &impl Serialize) -> Value {
    // Plain structs of strings and numbers: serialisation cannot fail.
    serde_json::to_value(json).unwrap_or(Value::Null)
}

#[derive(Serialize)]
struct CatalogJson<'a> {
    kind: &'static str,
    modules: Vec<ModuleJson<'a>>,
    labs: Vec<LabJson<'a>>,
}

#[derive(Serialize)]
struct ModuleJson<'a> {
    module: ModuleNo,
    title: &'a str,
    requires: &'a [ModuleNo],
}

#[derive(Serialize)]
struct LabJson<'a> {
    lab_id: &'a str,
    module: ModuleNo,
    title: &'a str,
    xp: u32,
}

impl<'a> From<&'a CatalogState> for CatalogJson<'a> {
    fn from(catalog: &'a CatalogState) -> Self {
        Self {
            kind: "catalog",
            modules: catalog
                .modules
                .iter()
                .map(|(module, m)| ModuleJson {
                    module: *module,
                    title: &m.title,
                    requires: &m.requires,
                })
                .collect(),
            labs: catalog
                .labs
                .iter()
                .map(|(lab_id, lab)| LabJson {
                    lab_id: lab_id.as_str(),
                    module: lab.module,
                    title: &lab.title,
                    xp: lab.xp,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct PlayerJson<'a> {
    kind: &'static str,
    registered: bool,
    player_id: Option<PlayerId>,
    username: Option<&'a str>,
    timezone: &'static str,
    xp: u64,
    level: u32,
    streak: u32,
    longest_streak: u32,
    streak_day: Option<NaiveDate>,
    last_activity: Option<DateTime<Utc>>,
    completed_labs: Vec<&'a str>,
    completed_modules: Vec<ModuleNo>,
    achievements: Vec<&'a str>,
    online: bool,
    current_lab: Option<&'a str>,
}

impl<'a> From<&'a PlayerState> for PlayerJson<'a> {
    fn from(player: &'a PlayerState) -> Self {
        Self {
            kind: "player",
            registered: player.is_registered(),
            player_id: player.registered.as_ref().map(|r| r.player_id),
            username: player
                .registered
                .as_ref()
                .and_then(|r| r.username.as_ref())
                .map(crate::values::Username::as_str),
            timezone: player.timezone.name(),
            xp: player.xp,
            level: player.level,
            streak: player.streak.current,
            longest_streak: player.streak.longest,
            streak_day: player.streak.last_day,
            last_activity: player.last_activity,
            completed_labs: player.completed_labs.iter().map(|l| l.as_str()).collect(),
            completed_modules: player.completed_modules.iter().copied().collect(),
            achievements: player.achievements.iter().map(|a| a.as_str()).collect(),
            online: player.online,
            current_lab: player.current_lab.as_ref().map(|l| l.as_str()),
        }
    }
}

#[derive(Serialize)]
struct UsernameJson {
    kind: &'static str,
    holder: Option<PlayerId>,
}

#[cfg(test)]
mod tests {
    use crate::event::Event;
    use crate::values::{LabId, Username};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_player_state_shows_its_progress() {
        let id = PlayerId(Uuid::nil());
        let events = [
            Event::PlayerRegistered {
                player_id: id,
                username: questlog_domain::Personal::new(
                    id,
                    Username::parse("Ada").expect("valid"),
                ),
            },
            Event::LabCompleted {
                lab_id: LabId::parse("intro").expect("valid"),
                module: 1,
                xp: 250,
            },
        ];
        let mut state = PlayerState::default();
        for event in &events {
            state.evolve(event);
        }
        let json = player(&state);
        assert_eq!(json["kind"], "player");
        assert_eq!(json["username"], "Ada");
        assert_eq!(json["xp"], 250);
        assert_eq!(json["level"], 2);
        assert_eq!(json["completed_labs"], json!(["intro"]));
        assert_eq!(json["timezone"], "UTC");
    }

    #[test]
    fn an_unclaimed_username_has_no_holder() {
        let json = username(&UsernameHolder::default());
        assert_eq!(json, json!({"kind": "username", "holder": null}));
    }
}
