//! The leaderboards' decisions, given/when/then over a domain of this module alone.

use chrono::{DateTime, TimeZone as _, Utc};
use questlog_domain::testing::given;
use questlog_domain::values::PlayerId;
use questlog_domain::{Actor, App, Domain, Edge, Event as Erased, Role, StreamId};
use serde_json::json;
use uuid::Uuid;

use crate::board::Definition;
use crate::values::{BoardId, Operator, Order, Reset};
use crate::{board_stream, entry_stream, Command, Event, Leaderboards};

fn domain() -> std::sync::Arc<Domain> {
    let mut app = App::new();
    app.add_module(&Leaderboards::default());
    app.domain()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0)
        .single()
        .expect("a time")
}

const ADMIN: Actor = Actor {
    identity: PlayerId(Uuid::nil()),
    role: Role::Admin,
};

fn player() -> Actor {
    Actor {
        identity: PlayerId(Uuid::new_v4()),
        role: Role::Player,
    }
}

fn board() -> BoardId {
    BoardId::parse("high_scores").expect("valid")
}

fn defined(reset: Option<&str>, authoritative: bool) -> Vec<(StreamId, Erased)> {
    let b = board();
    vec![
        (
            board_stream(&b),
            Event::LeaderboardDefined {
                leaderboard: b.clone(),
                title: "High scores".into(),
                order: Order::Desc,
                operator: Operator::Best,
                reset: reset.map(|r| Reset::parse(r).expect("valid")),
                authoritative,
                at: at(10, 30),
            }
            .into(),
        ),
        (
            board_stream(&b),
            Event::LeaderboardSeasonStarted {
                leaderboard: b,
                season: 1,
                started_at: at(10, 30),
            }
            .into(),
        ),
    ]
}

fn submit(score: i64) -> Command {
    Command::Submit {
        board: board(),
        player_id: None,
        score,
        subscore: 0,
        metadata: None,
    }
}

#[test]
fn a_first_definition_starts_season_one() {
    let cmd = Command::Define {
        board: board(),
        definition: Definition {
            title: "High scores".into(),
            order: Order::Desc,
            operator: Operator::Best,
            reset: None,
            authoritative: false,
        },
    };
    given(&domain(), vec![])
        .when(ADMIN, at(10, 30), &cmd)
        .then(defined(None, false));
}

#[test]
fn the_same_definition_again_appends_nothing() {
    let cmd = Command::Define {
        board: board(),
        definition: Definition {
            title: "High scores".into(),
            order: Order::Desc,
            operator: Operator::Best,
            reset: None,
            authoritative: false,
        },
    };
    given(&domain(), defined(None, false))
        .when(ADMIN, at(11, 0), &cmd)
        .then(vec![]);
}

#[test]
fn a_player_cannot_define_a_board() {
    let cmd = Command::Define {
        board: board(),
        definition: Definition {
            title: "x".into(),
            order: Order::Asc,
            operator: Operator::Set,
            reset: None,
            authoritative: false,
        },
    };
    given(&domain(), vec![])
        .when(player(), at(10, 0), &cmd)
        .then_rejected("forbidden");
}

#[test]
fn a_score_for_an_unknown_board_is_refused() {
    given(&domain(), vec![])
        .when(player(), at(10, 0), &submit(5))
        .then_rejected("unknown_leaderboard");
}

#[test]
fn a_player_cannot_submit_to_an_authoritative_board_but_an_admin_can_for_it() {
    let me = player();
    given(&domain(), defined(None, true))
        .when(me, at(11, 0), &submit(5))
        .then_rejected("forbidden");
    let for_me = Command::Submit {
        board: board(),
        player_id: Some(me.identity),
        score: 5,
        subscore: 0,
        metadata: None,
    };
    given(&domain(), defined(None, true))
        .when(ADMIN, at(11, 0), &for_me)
        .then(vec![(
            entry_stream(&board(), me.identity),
            Event::ScoreSubmitted {
                leaderboard: board(),
                player_id: me.identity,
                season: 1,
                score: 5,
                subscore: 0,
                metadata: None,
            }
            .into(),
        )]);
}

#[test]
fn a_player_cannot_submit_for_another() {
    let cmd = Command::Submit {
        board: board(),
        player_id: Some(PlayerId(Uuid::new_v4())),
        score: 5,
        subscore: 0,
        metadata: None,
    };
    given(&domain(), defined(None, false))
        .when(player(), at(11, 0), &cmd)
        .then_rejected("forbidden");
}

#[test]
fn a_score_after_ticks_passed_starts_each_missed_season_at_its_tick_first() {
    let me = player();
    let b = board();
    let started = |season, h| {
        (
            board_stream(&b),
            Erased::from(Event::LeaderboardSeasonStarted {
                leaderboard: b.clone(),
                season,
                started_at: at(h, 0),
            }),
        )
    };
    given(&domain(), defined(Some("0 * * * *"), false))
        .when(me, at(12, 59), &submit(7))
        .then(vec![
            started(2, 11),
            started(3, 12),
            (
                entry_stream(&b, me.identity),
                Event::ScoreSubmitted {
                    leaderboard: b.clone(),
                    player_id: me.identity,
                    season: 3,
                    score: 7,
                    subscore: 0,
                    metadata: None,
                }
                .into(),
            ),
        ]);
}

#[test]
fn rolling_before_the_tick_starts_nothing() {
    given(&domain(), defined(Some("0 * * * *"), false))
        .when(ADMIN, at(10, 59), &Command::RollSeasons { board: board() })
        .then(vec![]);
}

fn parse(name: &str, body: serde_json::Value) -> Result<Command, &'static str> {
    let edge = Edge {
        caller: PlayerId(Uuid::new_v4()),
        new_id: Uuid::now_v7(),
        names: questlog_domain::testing::NAMES,
    };
    Command::parse(name, body.to_string().as_bytes(), &edge).map_err(|r| r.code)
}

#[test]
fn bad_definitions_are_refused_with_their_codes() {
    let def = |extra: serde_json::Value| {
        let mut body = json!({ "leaderboard": "b", "title": "B" });
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        parse("define_leaderboard", body)
    };
    assert_eq!(
        def(json!({ "leaderboard": "Bad-Id" })).err(),
        Some("invalid_leaderboard")
    );
    assert_eq!(def(json!({ "order": "up" })).err(), Some("invalid_order"));
    assert_eq!(
        def(json!({ "operator": "max" })).err(),
        Some("invalid_operator")
    );
    assert_eq!(
        def(json!({ "reset": "0 0 * *" })).err(),
        Some("invalid_reset")
    );
    assert_eq!(
        def(json!({ "reset": "0 0 * * * *" })).err(),
        Some("invalid_reset")
    );
    assert_eq!(
        def(json!({ "reset": "61 0 * * *" })).err(),
        Some("invalid_reset")
    );
    assert_eq!(
        def(json!({ "reset": "0 0 30 2 *" })).err(),
        Some("invalid_reset")
    );
    assert_eq!(
        def(json!({ "title": "a\u{0}b" })).err(),
        Some("invalid_title")
    );
    assert_eq!(def(json!({ "extra": 1 })).err(), Some("bad_request"));
    assert!(def(json!({ "reset": "0 0 * * 1" })).is_ok());
}

#[test]
fn bad_scores_are_refused_with_their_codes() {
    let sub = |extra: serde_json::Value| {
        let mut body = json!({ "leaderboard": "b", "score": 1 });
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        parse("submit_score", body)
    };
    let huge: serde_json::Value = serde_json::from_str("9223372036854775808").expect("number");
    assert_eq!(sub(json!({ "score": huge })).err(), Some("invalid_score"));
    assert_eq!(sub(json!({ "score": 1.5 })).err(), Some("invalid_score"));
    assert_eq!(sub(json!({ "score": "1" })).err(), Some("bad_request"));
    assert_eq!(
        sub(json!({ "subscore": 0.5 })).err(),
        Some("invalid_subscore")
    );
    assert_eq!(
        sub(json!({ "metadata": [1] })).err(),
        Some("invalid_metadata")
    );
    assert_eq!(
        sub(json!({ "metadata": { "k": "a\u{0}" } })).err(),
        Some("invalid_metadata")
    );
    let big = "x".repeat(1100);
    assert_eq!(
        sub(json!({ "metadata": { "k": big } })).err(),
        Some("metadata_too_large")
    );
    assert!(sub(json!({ "score": i64::MIN, "metadata": { "k": "v" } })).is_ok());
}

/// A domain of this module with a built-in board `xp`, registered after the module is built (as a
/// module added later would).
fn domain_with_builtin() -> std::sync::Arc<Domain> {
    use crate::{BuiltinBoard, BuiltinBoardsExt as _};
    let mut app = App::new();
    app.add_module(&Leaderboards::default());
    app.add_builtin_leaderboard(BuiltinBoard {
        id: "xp",
        title: "XP",
        order: Order::Desc,
        operator: Operator::Incr,
        projections: &[],
        changes: "xp",
        rows: |_| String::new(),
    });
    app.domain()
}

#[test]
fn a_command_naming_a_built_in_board_is_refused_after_the_admin_check() {
    let domain = domain_with_builtin();
    let edge = Edge {
        caller: PlayerId(Uuid::new_v4()),
        new_id: Uuid::now_v7(),
        names: questlog_domain::testing::NAMES,
    };
    let parse = |name: &str, body: serde_json::Value| {
        domain
            .parse(name, body.to_string().as_bytes(), &edge)
            .unwrap_or_else(|r| panic!("{name} parses: {r}"))
    };
    let define = parse(
        "define_leaderboard",
        json!({ "leaderboard": "xp", "title": "Mine" }),
    );
    given(&domain, vec![])
        .when(ADMIN, at(10, 0), define.as_ref())
        .then_rejected("builtin_leaderboard");
    given(&domain, vec![])
        .when(player(), at(10, 0), define.as_ref())
        .then_rejected("forbidden");
    let score = parse("submit_score", json!({ "leaderboard": "xp", "score": 5 }));
    given(&domain, vec![])
        .when(player(), at(10, 0), score.as_ref())
        .then_rejected("builtin_leaderboard");
    // Any other board is decided as before.
    let other = parse(
        "define_leaderboard",
        json!({ "leaderboard": "high_scores", "title": "High scores" }),
    );
    assert!(other.as_any().downcast_ref::<Command>().is_some());
}
