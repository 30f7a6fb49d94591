//! The achievements' decisions, given/when/then over a domain of this module alone.

use chrono::Utc;
use questlog_domain::testing::given;
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, App, Edge, Role};
use serde_json::json;
use uuid::Uuid;

use crate::{achievement_stream, progress_stream, AchievementId, Achievements, Event};

fn app() -> App {
    let mut app = App::new();
    app.add_module(&Achievements);
    app
}

fn parse(
    name: &str,
    body: serde_json::Value,
) -> Result<Box<dyn questlog_domain::Command>, &'static str> {
    let edge = Edge {
        caller: PlayerId(Uuid::new_v4()),
        new_id: Uuid::now_v7(),
        names: questlog_domain::testing::NAMES,
    };
    app()
        .domain()
        .parse(name, body.to_string().as_bytes(), &edge)
        .map_err(|r| r.code)
}

fn kills() -> AchievementId {
    AchievementId::parse("kill_100").expect("valid")
}

fn defined(authoritative: bool) -> Vec<(questlog_domain::StreamId, questlog_domain::Event)> {
    vec![(
        achievement_stream(&kills()),
        Event::AchievementDefined {
            achievement: kills(),
            title: "Kill 100".into(),
            description: String::new(),
            hidden: false,
            goal: 100,
            rule: None,
            authoritative,
        }
        .into(),
    )]
}

fn player() -> Actor {
    Actor {
        identity: PlayerId(Uuid::new_v4()),
        role: Role::Player,
    }
}

#[test]
fn progress_rises_and_reaching_the_goal_unlocks() {
    let me = player();
    let domain = app().domain();
    let set = |p: i64| {
        parse(
            "set_achievement_progress",
            json!({ "achievement": "kill_100", "progress": p }),
        )
        .expect("parses")
    };
    let mut history = defined(false);
    history.push((
        progress_stream(&kills(), me.identity),
        Event::AchievementProgressed {
            achievement: kills(),
            player_id: me.identity,
            progress: 45,
        }
        .into(),
    ));
    given(&domain, history.clone())
        .when(me, Utc::now(), set(44).as_ref())
        .then_rejected("progress_decreased");
    given(&domain, history.clone())
        .when(me, Utc::now(), set(45).as_ref())
        .then(vec![]);
    given(&domain, history)
        .when(me, Utc::now(), set(120).as_ref())
        .then(vec![
            (
                progress_stream(&kills(), me.identity),
                Event::AchievementProgressed {
                    achievement: kills(),
                    player_id: me.identity,
                    progress: 120,
                }
                .into(),
            ),
            (
                progress_stream(&kills(), me.identity),
                Event::AchievementAwarded {
                    achievement: kills(),
                    player_id: me.identity,
                }
                .into(),
            ),
        ]);
}

#[test]
fn a_player_cannot_set_an_authoritative_achievement() {
    let unlock = parse("unlock_achievement", json!({ "achievement": "kill_100" })).expect("parses");
    given(&app().domain(), defined(true))
        .when(player(), Utc::now(), unlock.as_ref())
        .then_rejected("forbidden");
}

#[test]
fn an_unknown_achievement_is_refused_and_a_grant_of_one_without_an_earlier_owner_too() {
    let unlock = parse("unlock_achievement", json!({ "achievement": "nope" })).expect("parses");
    given(&app().domain(), vec![])
        .when(player(), Utc::now(), unlock.as_ref())
        .then_rejected("unknown_achievement");
    let admin = Actor {
        identity: PlayerId(Uuid::nil()),
        role: Role::Admin,
    };
    let grant = parse(
        "grant_achievement",
        json!({ "achievement": "nope", "player_id": Uuid::new_v4() }),
    )
    .expect("parses");
    given(&app().domain(), vec![])
        .when(admin, Utc::now(), grant.as_ref())
        .then_rejected("unknown_achievement");
}

#[test]
fn bad_input_is_refused_with_its_code() {
    let code = |name, body| parse(name, body).err();
    assert_eq!(
        code(
            "set_achievement_progress",
            json!({ "achievement": "a", "progress": -1 })
        ),
        Some("invalid_progress")
    );
    assert_eq!(
        code(
            "define_achievement",
            json!({ "achievement": "a", "title": "A", "goal": 0 })
        ),
        Some("invalid_goal")
    );
    assert_eq!(
        code(
            "define_achievement",
            json!({ "achievement": "a", "title": "A", "rule": { "count": "x", "extra": 1 } })
        ),
        Some("invalid_rule")
    );
    assert_eq!(
        code(
            "define_achievement",
            json!({ "achievement": "a", "title": "A", "rule": { "score": "b" } })
        ),
        Some("invalid_rule")
    );
    assert_eq!(
        code(
            "define_achievement",
            json!({ "achievement": "a", "title": "A", "description": "x\u{0}" })
        ),
        Some("invalid_description")
    );
    assert_eq!(
        code(
            "grant_achievement",
            json!({ "achievement": "Bad Name", "player_id": Uuid::new_v4() })
        ),
        Some("invalid_achievement")
    );
    assert!(parse("define_achievement", json!({ "achievement": "a", "title": "A", "rule": { "count": "lab_completed", "where": { "module": 1 } } })).is_ok());
}

#[test]
fn defining_a_built_in_achievements_id_is_refused_after_the_admin_check() {
    use crate::{BuiltinAchievement, BuiltinAchievementsExt as _};
    let mut app = app();
    app.add_builtin_achievement(BuiltinAchievement {
        id: "first_lab",
        title: "First lab",
        description: "Complete a lab",
        awarded: |_, _| None,
    });
    let domain = app.domain();
    let edge = Edge {
        caller: PlayerId(Uuid::new_v4()),
        new_id: Uuid::now_v7(),
        names: questlog_domain::testing::NAMES,
    };
    let define = domain
        .parse(
            "define_achievement",
            json!({ "achievement": "first_lab", "title": "Mine" })
                .to_string()
                .as_bytes(),
            &edge,
        )
        .unwrap_or_else(|r| panic!("parses: {r}"));
    let admin = Actor {
        identity: PlayerId(Uuid::nil()),
        role: Role::Admin,
    };
    given(&domain, vec![])
        .when(admin, Utc::now(), define.as_ref())
        .then_rejected("builtin_achievement");
    given(&domain, vec![])
        .when(player(), Utc::now(), define.as_ref())
        .then_rejected("forbidden");
}
