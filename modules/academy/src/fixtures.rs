//! The academy's test fixtures: actors, instants, values and the events its commands leave, for
//! its own tests and (behind the `fixtures` feature) for the modules built on it, with a
//! [`Domain`] of the academy and those modules to decide against.

use chrono::{DateTime, NaiveDate, Utc};
use questlog_domain::{Domain, Module};
use uuid::Uuid;

use crate::values::{Achievement, LabId, ModuleNo, PlayerId, Timezone, Username};
use crate::{Actor, Command, Event, Role, StreamId};

pub fn player(n: u128) -> Actor {
    Actor {
        identity: PlayerId(Uuid::from_u128(n)),
        role: Role::Player,
    }
}

pub fn admin() -> Actor {
    Actor {
        identity: PlayerId(Uuid::from_u128(0xad)),
        role: Role::Admin,
    }
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("a test instant is RFC 3339")
        .with_timezone(&Utc)
}

pub fn day(iso: &str) -> NaiveDate {
    iso.parse().expect("a test day is YYYY-MM-DD")
}

pub fn username(raw: &str) -> Username {
    Username::parse(raw).expect("a test username is valid")
}

pub fn lab_id(raw: &str) -> LabId {
    LabId::parse(raw).expect("a test lab id is valid")
}

pub fn tz(name: &str) -> Timezone {
    Timezone::parse(name).expect("a test time zone is valid")
}

pub fn achievement(name: &str) -> Achievement {
    Achievement::parse(name).expect("a test achievement is valid")
}

pub fn on_player(actor: Actor, event: Event) -> (StreamId, Event) {
    (StreamId::Player(actor.identity), event)
}

pub fn on_catalog(event: Event) -> (StreamId, Event) {
    (StreamId::Catalog, event)
}

/// The events `register_player` leaves for `actor` under `name` (its claim keyed under the tests'
/// name key, `questlog_domain::testing::NAMES`).
pub fn registered(actor: Actor, name: &str) -> Vec<(StreamId, Event)> {
    let username = username(name);
    let claim = crate::stream::claim_key(&username, &questlog_domain::testing::NAMES);
    registered_on(actor, username, claim)
}

/// The events an earlier build's `register_player` left for `actor` under `name`: its claim on the
/// stream of the lowercase name.
pub fn registered_before_digests(actor: Actor, name: &str) -> Vec<(StreamId, Event)> {
    let username = username(name);
    let claim = username.key();
    registered_on(actor, username, claim)
}

fn registered_on(actor: Actor, username: Username, claim: String) -> Vec<(StreamId, Event)> {
    vec![
        (
            StreamId::Username(claim),
            Event::UsernameClaimed {
                player_id: actor.identity,
                username: questlog_domain::Personal::new(actor.identity, username.clone()),
            },
        ),
        on_player(
            actor,
            Event::PlayerRegistered {
                player_id: actor.identity,
                username: questlog_domain::Personal::new(actor.identity, username),
            },
        ),
    ]
}

pub fn module_defined(module: ModuleNo, requires: &[ModuleNo]) -> (StreamId, Event) {
    on_catalog(Event::ModuleDefined {
        module,
        title: format!("Module {module}"),
        requires: requires.to_vec(),
    })
}

pub fn lab_defined(id: &str, module: ModuleNo, xp: u32) -> (StreamId, Event) {
    on_catalog(Event::LabDefined {
        lab_id: lab_id(id),
        module,
        title: format!("Lab {id}"),
        xp,
    })
}

pub fn lab_completed(actor: Actor, id: &str, module: ModuleNo, xp: u32) -> (StreamId, Event) {
    on_player(
        actor,
        Event::LabCompleted {
            lab_id: lab_id(id),
            module,
            xp,
        },
    )
}

pub fn unlocked(actor: Actor, name: &str) -> (StreamId, Event) {
    on_player(
        actor,
        Event::AchievementUnlocked {
            achievement: achievement(name),
        },
    )
}

pub fn streak_updated(
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

pub fn complete(id: &str) -> Command {
    Command::CompleteLab { lab_id: lab_id(id) }
}

/// Concatenates event lists, to write `given` histories in parts.
pub fn history<T, const N: usize>(parts: [Vec<T>; N]) -> Vec<T> {
    parts.into_iter().flatten().collect()
}

/// The kernel's domain of the academy and `modules` (registered after it, as the binary does).
pub fn domain(modules: &[&dyn Module]) -> Domain {
    let mut app = questlog_domain::App::new();
    app.add_module(&crate::Academy);
    for module in modules {
        app.add_module(*module);
    }
    app.domain().as_ref().clone()
}

/// The academy's events as the kernel's log holds them.
pub fn erased(
    events: Vec<(StreamId, Event)>,
) -> Vec<(questlog_domain::StreamId, questlog_domain::Event)> {
    events
        .into_iter()
        .map(|(s, e)| (s.id(), questlog_domain::Event::new(e)))
        .collect()
}

/// One event of the log, as the kernel holds it.
pub type Logged = (questlog_domain::StreamId, questlog_domain::Event);

/// The history a decision of a module built on the academy is made against.
pub struct Given {
    domain: Domain,
    events: Vec<Logged>,
}

/// The log so far, in order, folded by the views of the academy and `modules`.
pub fn given(modules: &[&dyn Module], events: Vec<Logged>) -> Given {
    Given {
        domain: domain(modules),
        events,
    }
}

impl Given {
    /// Decides `command`, sent by `actor` at `now`, as the writer would.
    #[track_caller]
    pub fn when(
        self,
        actor: Actor,
        now: DateTime<Utc>,
        command: &dyn questlog_domain::Command,
    ) -> questlog_domain::testing::Then {
        questlog_domain::testing::given(&self.domain, self.events).when(actor, now, command)
    }
}
