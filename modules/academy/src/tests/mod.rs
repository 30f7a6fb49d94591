//! The domain's tests: given events, when a command, then events or a rejection; proptest for the
//! arithmetic. This module holds the fixtures they share.

mod admin;
mod catalog;
mod chat;
mod complete_lab;
mod lab_session;
mod parse;
mod presence;
mod register_player;
mod rules;
mod serde_round_trip;
mod set_timezone;
mod update_streak;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::values::{Achievement, LabId, ModuleNo, PlayerId, Timezone, Username};
use crate::{Actor, Command, Event, Role, StreamId};

pub(crate) fn player(n: u128) -> Actor {
    Actor {
        identity: PlayerId(Uuid::from_u128(n)),
        role: Role::Player,
    }
}

pub(crate) fn admin() -> Actor {
    Actor {
        identity: PlayerId(Uuid::from_u128(0xad)),
        role: Role::Admin,
    }
}

pub(crate) fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("a test instant is RFC 3339")
        .with_timezone(&Utc)
}

pub(crate) fn day(iso: &str) -> NaiveDate {
    iso.parse().expect("a test day is YYYY-MM-DD")
}

pub(crate) fn username(raw: &str) -> Username {
    Username::parse(raw).expect("a test username is valid")
}

pub(crate) fn lab_id(raw: &str) -> LabId {
    LabId::parse(raw).expect("a test lab id is valid")
}

pub(crate) fn tz(name: &str) -> Timezone {
    Timezone::parse(name).expect("a test time zone is valid")
}

pub(crate) fn achievement(name: &str) -> Achievement {
    Achievement::parse(name).expect("a test achievement is valid")
}

pub(crate) fn on_player(actor: Actor, event: Event) -> (StreamId, Event) {
    (StreamId::Player(actor.identity), event)
}

pub(crate) fn on_catalog(event: Event) -> (StreamId, Event) {
    (StreamId::Catalog, event)
}

/// The events `register_player` leaves for `actor` under `name`.
pub(crate) fn registered(actor: Actor, name: &str) -> Vec<(StreamId, Event)> {
    let username = username(name);
    vec![
        (
            StreamId::Username(username.key()),
            Event::UsernameClaimed {
                player_id: actor.identity,
                username: username.clone(),
            },
        ),
        on_player(
            actor,
            Event::PlayerRegistered {
                player_id: actor.identity,
                username,
            },
        ),
    ]
}

pub(crate) fn module_defined(module: ModuleNo, requires: &[ModuleNo]) -> (StreamId, Event) {
    on_catalog(Event::ModuleDefined {
        module,
        title: format!("Module {module}"),
        requires: requires.to_vec(),
    })
}

pub(crate) fn lab_defined(id: &str, module: ModuleNo, xp: u32) -> (StreamId, Event) {
    on_catalog(Event::LabDefined {
        lab_id: lab_id(id),
        module,
        title: format!("Lab {id}"),
        xp,
    })
}

pub(crate) fn lab_completed(
    actor: Actor,
    id: &str,
    module: ModuleNo,
    xp: u32,
) -> (StreamId, Event) {
    on_player(
        actor,
        Event::LabCompleted {
            lab_id: lab_id(id),
            module,
            xp,
        },
    )
}

pub(crate) fn unlocked(actor: Actor, name: &str) -> (StreamId, Event) {
    on_player(
        actor,
        Event::AchievementUnlocked {
            achievement: achievement(name),
        },
    )
}

pub(crate) fn streak_updated(
    actor: Actor,
    on: &str,
    streak: u32,
    longest: u32,
    when: &str,
) -> (StreamId, Event) {
    on_player(
        actor,
        Event::StreakUpdated {
            day: day(on),
            streak,
            longest,
            at: at(when),
        },
    )
}

pub(crate) fn complete(id: &str) -> Command {
    Command::CompleteLab { lab_id: lab_id(id) }
}

/// Concatenates event lists, to write `given` histories in parts.
pub(crate) fn history<const N: usize>(
    parts: [Vec<(StreamId, Event)>; N],
) -> Vec<(StreamId, Event)> {
    parts.into_iter().flatten().collect()
}
