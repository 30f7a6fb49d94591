//! Leaderboards as data, spoken to like a game: boards defined by an admin, scores submitted by
//! players and the server, pages, neighbours, friends boards, seasons that roll over on a
//! simulated clock (across restarts and replicas), recomputation on redefinition, time travel and
//! the live topic.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use questlog_command_api::Clock;
use questlog_tests::{event_count, event_types, position, store_args, Player, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::subscribe::Sub;

/// A clock a test moves by hand.
#[derive(Clone)]
struct Manual(Arc<AtomicI64>);

impl Manual {
    /// A clock at `start`.
    fn at(start: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(start.timestamp_micros())))
    }
    fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).expect("small");
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
    fn clock(&self) -> Clock {
        let at = self.0.clone();
        Clock::new(move || {
            DateTime::from_timestamp_micros(at.load(Ordering::SeqCst)).expect("in range")
        })
    }
}

/// 10:30 UTC on a day in the past (as-of reads by time refuse the future).
fn half_past_ten() -> DateTime<Utc> {
    "2026-01-05T10:30:00Z".parse().expect("a time")
}

async fn spawn_with_clock(db: TestDb, clock: &Manual) -> TestApp {
    let store = store_args(&db);
    let hooks = questlog::app::Hooks {
        clock: Some(clock.clock()),
        job_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    TestApp::spawn_custom(db, store, hooks).await
}

async fn define(app: &TestApp, body: Value) -> i64 {
    position(&app.ok(&app.admin_token(), "define_leaderboard", body).await)
}

async fn board(app: &TestApp, id: &str, order: &str, operator: &str) -> i64 {
    define(
        app,
        json!({ "leaderboard": id, "title": id, "order": order, "operator": operator }),
    )
    .await
}

async fn submit(app: &TestApp, player: &Player, board: &str, score: i64) -> i64 {
    position(
        &app.ok(
            &player.token,
            "submit_score",
            json!({ "leaderboard": board, "score": score }),
        )
        .await,
    )
}

/// `(player, score, rank)` of a read's entries.
fn lines(read: &Value) -> Vec<(String, i64, i64)> {
    read["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["player_id"].as_str().expect("id").to_owned(),
                e["score"].as_i64().expect("score"),
                e["rank"].as_i64().expect("rank"),
            )
        })
        .collect()
}

fn id(p: &Player) -> String {
    p.id.to_string()
}

#[tokio::test]
async fn each_operator_and_order_makes_the_record_a_game_expects() {
    let app = TestApp::spawn().await;
    for (b, order, op) in [
        ("best_desc", "desc", "best"),
        ("best_asc", "asc", "best"),
        ("last", "desc", "set"),
        ("total", "desc", "incr"),
        ("lives", "asc", "decr"),
    ] {
        board(&app, b, order, op).await;
    }
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let mut last = 0;
    for b in ["best_desc", "best_asc", "last", "total", "lives"] {
        for (p, s) in [(&ada, 50), (&bob, 40), (&ada, 30), (&bob, 70), (&ada, 60)] {
            last = submit(&app, p, b, s).await;
        }
    }
    let read = |b: &'static str| {
        let app = &app;
        let token = ada.token.clone();
        async move {
            lines(
                &app.read_at(&token, &format!("/v1/leaderboards/{b}"), last)
                    .await,
            )
        }
    };
    // ada: 50, 30, 60; bob: 40, 70.
    assert_eq!(
        read("best_desc").await,
        [(id(&bob), 70, 1), (id(&ada), 60, 2)]
    );
    assert_eq!(
        read("best_asc").await,
        [(id(&ada), 30, 1), (id(&bob), 40, 2)]
    );
    assert_eq!(read("last").await, [(id(&bob), 70, 1), (id(&ada), 60, 2)]);
    assert_eq!(
        read("total").await,
        [(id(&ada), 140, 1), (id(&bob), 110, 2)]
    );
    assert_eq!(
        read("lives").await,
        [(id(&ada), -140, 1), (id(&bob), -110, 2)]
    );

    let page = app
        .read_at(&ada.token, "/v1/leaderboards/best_desc", last)
        .await;
    assert_eq!(page["leaderboard"], "best_desc");
    assert_eq!(page["season"], 1);
    assert_eq!(page["entries"][0]["username"], "bob");
    assert_eq!(page["next"], Value::Null);
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
}

#[tokio::test]
async fn ties_go_to_whoever_reached_the_score_first() {
    let app = TestApp::spawn().await;
    board(&app, "tied", "desc", "best").await;
    let a = app.player("first").await;
    let b = app.player("second").await;
    let c = app.player("third").await;
    submit(&app, &a, "tied", 100).await;
    submit(&app, &b, "tied", 100).await;
    submit(&app, &c, "tied", 90).await;
    // The same score again, and a subscore-less worse one: nobody overtakes the first to reach it.
    submit(&app, &a, "tied", 100).await;
    let last = submit(&app, &c, "tied", 100).await;
    let read = app.read_at(&a.token, "/v1/leaderboards/tied", last).await;
    assert_eq!(
        lines(&read),
        [(id(&a), 100, 1), (id(&b), 100, 2), (id(&c), 100, 3)]
    );
    // A subscore breaks a tie of scores before time does.
    let last = position(
        &app.ok(
            &c.token,
            "submit_score",
            json!({ "leaderboard": "tied", "score": 100, "subscore": 5, "metadata": { "car": "red" } }),
        )
        .await,
    );
    let read = app.read_at(&a.token, "/v1/leaderboards/tied", last).await;
    assert_eq!(lines(&read)[0], (id(&c), 100, 1));
    assert_eq!(read["entries"][0]["subscore"], 5);
    assert_eq!(read["entries"][0]["metadata"], json!({ "car": "red" }));
}

#[tokio::test]
async fn pages_continue_through_cursors_and_a_player_sees_its_neighbours() {
    let app = TestApp::spawn().await;
    board(&app, "many", "desc", "best").await;
    let mut players = Vec::new();
    let mut last = 0;
    for i in 0..25 {
        let p = app.identity().await;
        last = submit(&app, &p, "many", 1000 - i * 10).await;
        players.push(p);
    }
    let viewer = &players[0];
    let mut seen = Vec::new();
    let mut path = "/v1/leaderboards/many?limit=10".to_owned();
    loop {
        let page = app.read_at(&viewer.token, &path, last).await;
        seen.extend(lines(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/leaderboards/many?limit=10&after={next}"),
            None => break,
        }
    }
    let expected: Vec<(String, i64, i64)> = players
        .iter()
        .enumerate()
        .map(|(i, p)| (id(p), 1000 - i as i64 * 10, i as i64 + 1))
        .collect();
    assert_eq!(seen, expected);

    let around = app
        .read_at(
            &players[12].token,
            "/v1/leaderboards/many/players/me?radius=2",
            last,
        )
        .await;
    assert_eq!(lines(&around), expected[10..15].to_vec());
    let top = app
        .read_at(
            &viewer.token,
            &format!("/v1/leaderboards/many/players/{}?radius=3", players[0].id),
            last,
        )
        .await;
    assert_eq!(lines(&top), expected[0..4].to_vec());

    for (path, status, code) in [
        ("/v1/leaderboards/many?limit=0", 422, "invalid_limit"),
        ("/v1/leaderboards/many?after=nope", 400, "invalid_cursor"),
        (
            "/v1/leaderboards/many/players/me?radius=51",
            422,
            "invalid_radius",
        ),
        ("/v1/leaderboards/nope", 404, "unknown_leaderboard"),
        ("/v1/leaderboards/many?season=2", 404, "unknown_season"),
        ("/v1/leaderboards/many?season=x", 400, "invalid_season"),
    ] {
        let (s, _, body) = app.get(&viewer.token, path).await;
        assert_eq!(
            (s.as_u16(), body["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
    let stranger = app.identity().await;
    let (s, _, body) = app
        .get(&stranger.token, "/v1/leaderboards/many/players/me")
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("entry_not_found"))
    );
}

#[tokio::test]
async fn a_friends_board_ranks_a_set_of_players_among_themselves() {
    let app = TestApp::spawn().await;
    board(&app, "friends", "desc", "best").await;
    let mut players = Vec::new();
    let mut last = 0;
    for i in 0..6 {
        let p = app.identity().await;
        last = submit(&app, &p, "friends", 100 - i).await;
        players.push(p);
    }
    let me = &players[5];
    let set = [&players[1], &players[3], me];
    let ids = set.iter().map(|p| id(p)).collect::<Vec<_>>().join(",");
    let read = app
        .read_at(
            &me.token,
            &format!("/v1/leaderboards/friends?players={ids}&limit=2"),
            last,
        )
        .await;
    assert_eq!(
        lines(&read),
        [(id(&players[1]), 99, 1), (id(&players[3]), 97, 2)]
    );
    let next = read["next"].as_str().expect("a next page");
    let rest = app
        .read_at(
            &me.token,
            &format!("/v1/leaderboards/friends?players={ids}&limit=2&after={next}"),
            last,
        )
        .await;
    assert_eq!(lines(&rest), [(id(me), 95, 3)]);
    let around = app
        .read_at(
            &me.token,
            &format!("/v1/leaderboards/friends/players/me?players={ids}&radius=1"),
            last,
        )
        .await;
    assert_eq!(lines(&around), [(id(&players[3]), 97, 2), (id(me), 95, 3)]);

    let many = (0..101)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (s, _, body) = app
        .get(
            &me.token,
            &format!("/v1/leaderboards/friends?players={many}"),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_many_players"))
    );
    let (s, _, body) = app
        .get(&me.token, "/v1/leaderboards/friends?players=not-an-id")
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_players"))
    );
}

#[tokio::test]
async fn an_authoritative_board_takes_scores_only_from_the_server() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({ "leaderboard": "ranked", "title": "Ranked", "authoritative": true }),
    )
    .await;
    let p = app.identity().await;
    let before = event_count(&app.db).await;
    let (s, body) = app
        .command(
            &p.token,
            "submit_score",
            &json!({ "leaderboard": "ranked", "score": 5 }),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert_eq!(event_count(&app.db).await, before);
    let out = app
        .ok(
            &app.admin_token(),
            "submit_score",
            json!({ "leaderboard": "ranked", "score": 5, "player_id": p.id }),
        )
        .await;
    assert_eq!(event_types(&out), ["score_submitted"]);
    let read = app
        .read_at(&p.token, "/v1/leaderboards/ranked", position(&out))
        .await;
    assert_eq!(lines(&read), [(id(&p), 5, 1)]);
}

#[tokio::test]
async fn bad_input_is_refused_with_its_code_and_appends_nothing() {
    let app = TestApp::spawn().await;
    board(&app, "b", "desc", "best").await;
    let p = app.identity().await;
    let admin = app.admin_token();
    let before = event_count(&app.db).await;
    let huge = "9223372036854775808";
    let big = "x".repeat(1100);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            &p.token,
            "submit_score",
            r#"{"leaderboard":"nope","score":1}"#.into(),
            404,
            "unknown_leaderboard",
        ),
        (
            &p.token,
            "submit_score",
            format!(r#"{{"leaderboard":"b","score":{huge}}}"#),
            422,
            "invalid_score",
        ),
        (
            &p.token,
            "submit_score",
            r#"{"leaderboard":"b","score":-9223372036854775809}"#.into(),
            422,
            "invalid_score",
        ),
        (
            &p.token,
            "submit_score",
            r#"{"leaderboard":"b","score":1,"metadata":[1]}"#.into(),
            422,
            "invalid_metadata",
        ),
        (
            &p.token,
            "submit_score",
            format!(r#"{{"leaderboard":"b","score":1,"metadata":{{"k":"{big}"}}}}"#),
            422,
            "metadata_too_large",
        ),
        (
            &p.token,
            "submit_score",
            r#"{"leaderboard":"b","score":1,"metadata":{"k":"a\u0000"}}"#.into(),
            422,
            "invalid_metadata",
        ),
        (
            &p.token,
            "submit_score",
            format!(
                r#"{{"leaderboard":"b","score":1,"player_id":"{}"}}"#,
                uuid::Uuid::new_v4()
            ),
            403,
            "forbidden",
        ),
        (
            &admin,
            "submit_score",
            r#"{"leaderboard":"b","score":1}"#.into(),
            422,
            "missing_player_id",
        ),
        (
            &p.token,
            "define_leaderboard",
            r#"{"leaderboard":"c","title":"C"}"#.into(),
            403,
            "forbidden",
        ),
        (
            &admin,
            "define_leaderboard",
            r#"{"leaderboard":"c","title":"C","reset":"every day"}"#.into(),
            422,
            "invalid_reset",
        ),
        (
            &admin,
            "define_leaderboard",
            r#"{"leaderboard":"c","title":"C","reset":"0 0 * * * *"}"#.into(),
            422,
            "invalid_reset",
        ),
        (
            &admin,
            "define_leaderboard",
            r#"{"leaderboard":"c","title":"C\u0000"}"#.into(),
            422,
            "invalid_title",
        ),
        (
            &admin,
            "define_leaderboard",
            r#"{"leaderboard":"C!","title":"C"}"#.into(),
            422,
            "invalid_leaderboard",
        ),
        (
            &admin,
            "define_leaderboard",
            r#"{"leaderboard":"c","title":"C","order":"up"}"#.into(),
            422,
            "invalid_order",
        ),
        (
            &admin,
            "define_leaderboard",
            r#"{"leaderboard":"c","title":"C","operator":"max"}"#.into(),
            422,
            "invalid_operator",
        ),
    ];
    for (token, name, body, status, code) in cases {
        let response = app
            .client
            .post(app.url(&format!("/v1/commands/{name}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        let s = response.status().as_u16();
        let answer: Value = response.json().await.expect("problem");
        assert_eq!(
            (s, answer["code"].as_str()),
            (status, Some(code)),
            "{name} {body}"
        );
    }
    assert_eq!(event_count(&app.db).await, before, "nothing appended");
}

#[tokio::test]
async fn a_read_as_of_a_position_is_the_board_as_it_stood_then() {
    let app = TestApp::spawn().await;
    board(&app, "tt", "desc", "best").await;
    let a = app.identity().await;
    let b = app.identity().await;
    submit(&app, &a, "tt", 10).await;
    let then = submit(&app, &b, "tt", 20).await;
    submit(&app, &a, "tt", 30).await;
    let now = submit(&app, &b, "tt", 5).await;
    let live = app.read_at(&a.token, "/v1/leaderboards/tt", now).await;
    assert_eq!(lines(&live), [(id(&a), 30, 1), (id(&b), 20, 2)]);
    let past = app.read_as_of(&a.token, "/v1/leaderboards/tt", then).await;
    assert_eq!(lines(&past), [(id(&b), 20, 1), (id(&a), 10, 2)]);
    assert_eq!(past["position"], then);
    let around = app
        .read_as_of(&a.token, "/v1/leaderboards/tt/players/me", then)
        .await;
    assert_eq!(lines(&around), [(id(&b), 20, 1), (id(&a), 10, 2)]);
    let (s, _, body) = app
        .get(&a.token, &format!("/v1/leaderboards/tt?as_of={}", then - 3))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_leaderboard"))
    );
}

/// Polls `path` until `done` holds, failing after 30 s.
async fn until(app: &TestApp, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = app.get(token, path).await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn season_count(seasons: &Value) -> usize {
    seasons.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_season_rolls_over_at_its_tick_and_its_final_standings_stay_readable() {
    let clock = Manual::at(half_past_ten());
    let app = spawn_with_clock(TestDb::create().await, &clock).await;
    define(
        &app,
        json!({ "leaderboard": "hourly", "title": "Hourly", "reset": "0 * * * *" }),
    )
    .await;
    let a = app.identity().await;
    let b = app.identity().await;
    submit(&app, &a, "hourly", 10).await;
    let last = submit(&app, &b, "hourly", 20).await;
    app.read_at(&a.token, "/v1/leaderboards/hourly", last).await;
    // Nothing rolls before the tick.
    clock.advance(Duration::from_secs(29 * 60));
    let seasons = app
        .read_at(&a.token, "/v1/leaderboards/hourly/seasons", last)
        .await;
    assert_eq!(season_count(&seasons), 1, "{seasons}");

    clock.advance(Duration::from_secs(60));
    let seasons = until(&app, &a.token, "/v1/leaderboards/hourly/seasons", |s| {
        season_count(s) == 2
    })
    .await;
    assert_eq!(
        seasons,
        json!([
            { "season": 1, "started_at": "2026-01-05T10:30:00Z", "ended_at": "2026-01-05T11:00:00Z" },
            { "season": 2, "started_at": "2026-01-05T11:00:00Z", "ended_at": null },
        ])
    );
    let fresh = app.read_at(&a.token, "/v1/leaderboards/hourly", 0).await;
    assert_eq!((fresh["season"].as_i64(), lines(&fresh)), (Some(2), vec![]));
    let now = submit(&app, &a, "hourly", 3).await;
    let current = app.read_at(&a.token, "/v1/leaderboards/hourly", now).await;
    assert_eq!(lines(&current), [(id(&a), 3, 1)]);
    let final_standings = app
        .read_at(&a.token, "/v1/leaderboards/hourly?season=1", now)
        .await;
    assert_eq!(lines(&final_standings), [(id(&b), 20, 1), (id(&a), 10, 2)]);
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
}

#[tokio::test]
async fn ticks_missed_while_everything_was_down_roll_with_their_own_times_after_a_restart() {
    let clock = Manual::at(half_past_ten());
    let app = spawn_with_clock(TestDb::create().await, &clock).await;
    define(
        &app,
        json!({ "leaderboard": "hourly", "title": "Hourly", "reset": "0 * * * *" }),
    )
    .await;
    let a = app.identity().await;
    let last = submit(&app, &a, "hourly", 10).await;
    app.read_at(&a.token, "/v1/leaderboards/hourly", last).await;
    let db = app.stop().await;
    // Down from 10:30 to 12:59: the 11:00 and 12:00 ticks pass with nobody running.
    clock.advance(Duration::from_secs(149 * 60));
    let app = spawn_with_clock(db, &clock).await;
    let seasons = until(&app, &a.token, "/v1/leaderboards/hourly/seasons", |s| {
        season_count(s) == 3
    })
    .await;
    assert_eq!(
        seasons,
        json!([
            { "season": 1, "started_at": "2026-01-05T10:30:00Z", "ended_at": "2026-01-05T11:00:00Z" },
            { "season": 2, "started_at": "2026-01-05T11:00:00Z", "ended_at": "2026-01-05T12:00:00Z" },
            { "season": 3, "started_at": "2026-01-05T12:00:00Z", "ended_at": null },
        ])
    );
    let first = app
        .read_at(&a.token, "/v1/leaderboards/hourly?season=1", 0)
        .await;
    assert_eq!(lines(&first), [(id(&a), 10, 1)]);
}

#[tokio::test]
async fn two_replicas_start_each_season_exactly_once() {
    let clock = Manual::at(half_past_ten());
    let db = TestDb::create().await;
    let one = spawn_with_clock(db.share(), &clock).await;
    let two = spawn_with_clock(db, &clock).await;
    define(
        &one,
        json!({ "leaderboard": "hourly", "title": "Hourly", "reset": "0 * * * *" }),
    )
    .await;
    let a = one.identity().await;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(3600));
        // Both replicas race to roll; each season starts once.
        let _ = submit(&two, &a, "hourly", 1).await;
    }
    let seasons = until(&one, &a.token, "/v1/leaderboards/hourly/seasons", |s| {
        season_count(s) == 4
    })
    .await;
    let starts: Vec<&str> = seasons
        .as_array()
        .expect("seasons")
        .iter()
        .filter_map(|s| s["started_at"].as_str())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-01-05T10:30:00Z",
            "2026-01-05T11:00:00Z",
            "2026-01-05T12:00:00Z",
            "2026-01-05T13:00:00Z"
        ]
    );
    let started: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'leaderboard_season_started'",
    )
    .fetch_one(&one.db.pool(1))
    .await
    .expect("count");
    assert_eq!(started, 4);
}

#[tokio::test]
async fn redefining_the_operator_recomputes_every_season_and_says_how_many_entries_moved() {
    let clock = Manual::at(half_past_ten());
    let app = spawn_with_clock(TestDb::create().await, &clock).await;
    let def = |operator: &str, order: &str| {
        json!({ "leaderboard": "re", "title": "Re", "order": order, "operator": operator,
                "reset": "0 * * * *" })
    };
    define(&app, def("best", "desc")).await;
    let a = app.identity().await;
    let b = app.identity().await;
    let c = app.identity().await;
    // Season 1 — a: 10, 50; b: 40; c: 20, 20.
    for (p, s) in [(&a, 10), (&b, 40), (&c, 20), (&a, 50), (&c, 20)] {
        submit(&app, p, "re", s).await;
    }
    clock.advance(Duration::from_secs(3600));
    // Season 2 (the submission starts it) — b: 5, 1; a: 3.
    for (p, s) in [(&b, 5), (&a, 3), (&b, 1)] {
        submit(&app, p, "re", s).await;
    }
    let before = submit(&app, &c, "re", 2).await;
    let old1 = app
        .read_at(&a.token, "/v1/leaderboards/re?season=1", before)
        .await;
    assert_eq!(
        lines(&old1),
        [(id(&a), 50, 1), (id(&b), 40, 2), (id(&c), 20, 3)]
    );

    // incr: season 1 — a 60, c 40, b 40 (c reached 40 after b); season 2 — b 6, a 3, c 2.
    let at = define(&app, def("incr", "desc")).await;
    let s1 = app
        .read_at(&a.token, "/v1/leaderboards/re?season=1", at)
        .await;
    assert_eq!(
        lines(&s1),
        [(id(&a), 60, 1), (id(&b), 40, 2), (id(&c), 40, 3)]
    );
    let s2 = app
        .read_at(&a.token, "/v1/leaderboards/re?season=2", at)
        .await;
    assert_eq!(lines(&s2), [(id(&b), 6, 1), (id(&a), 3, 2), (id(&c), 2, 3)]);
    let boards = app.read_at(&a.token, "/v1/leaderboards", at).await;
    let re = &boards["leaderboards"][0];
    assert_eq!(
        (re["operator"].as_str(), re["season"].as_i64()),
        (Some("incr"), Some(2))
    );
    // Season 2 under best was b 5, a 3, c 2: nobody moved there, nor in season 1.
    assert_eq!(re["recomputed"], json!({ "position": at, "moved": 0 }));

    // asc + best: season 1 — a 10, c 20, b 40 (a and b swap); season 2 — b 1, c 2, a 3.
    let at = define(&app, def("best", "asc")).await;
    let s1 = app
        .read_at(&a.token, "/v1/leaderboards/re?season=1", at)
        .await;
    assert_eq!(
        lines(&s1),
        [(id(&a), 10, 1), (id(&c), 20, 2), (id(&b), 40, 3)]
    );
    let s2 = app
        .read_at(&a.token, "/v1/leaderboards/re?season=2", at)
        .await;
    assert_eq!(lines(&s2), [(id(&b), 1, 1), (id(&c), 2, 2), (id(&a), 3, 3)]);
    let boards = app.read_at(&a.token, "/v1/leaderboards", at).await;
    // Season 1: c 3→2, b 2→3; season 2: c 3→2, a 2→3.
    assert_eq!(boards["leaderboards"][0]["recomputed"]["moved"], 4);
    // The past is kept: as of before the redefinitions, season 1 reads as it did.
    let past = app
        .read_as_of(&a.token, "/v1/leaderboards/re?season=1", before)
        .await;
    assert_eq!(lines(&past), lines(&old1));
    // And the list of boards as of then shows the definition that stood, never recomputed.
    let boards = app.read_as_of(&a.token, "/v1/leaderboards", before).await;
    let re = &boards["leaderboards"][0];
    assert_eq!(
        (
            re["operator"].as_str(),
            re["order"].as_str(),
            &re["recomputed"]
        ),
        (Some("best"), Some("desc"), &Value::Null),
        "{boards}"
    );
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
}

#[tokio::test]
async fn a_board_topic_sends_its_top_on_each_change_beside_the_academy_board() {
    let app = TestApp::spawn().await;
    board(&app, "live", "desc", "best").await;
    let a = app.player("ada").await;
    let b = app.identity().await;
    let first = submit(&app, &a, "live", 10).await;
    app.read_at(&a.token, "/v1/leaderboards/live", first).await;
    let mut sub = Sub::open(
        &app,
        &a.token,
        "topic=leaderboard:live&topic=leaderboard&leaderboard_limit=2",
        None,
    )
    .await;
    let snapshots = sub
        .until(|e| e.kind == "snapshot" && e.topic() == "leaderboard:live")
        .await;
    let snapshot = snapshots.last().expect("a snapshot");
    assert_eq!(lines(&snapshot.data["data"]), [(id(&a), 10, 1)]);
    let pos = submit(&app, &b, "live", 20).await;
    let change = sub
        .until(|e| e.kind == "change" && e.topic() == "leaderboard:live" && e.position() >= pos)
        .await;
    let change = change.last().expect("a change");
    assert_eq!(
        lines(&change.data["data"]),
        [(id(&b), 20, 1), (id(&a), 10, 2)]
    );
    let (s, _, body) = app
        .get(&a.token, "/v1/subscribe?topic=leaderboard:Not-A-Board")
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_topic"))
    );
}

/// `(player, score, rank)` of the academy's XP board's entries (its score is the XP).
fn xp_lines(read: &Value) -> Vec<(String, i64, i64)> {
    read["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["player_id"].as_str().expect("id").to_owned(),
                e["xp"].as_i64().expect("xp"),
                e["rank"].as_i64().expect("rank"),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_academy_xp_board_is_a_built_in_board_every_leaderboard_read_answers() {
    let app = TestApp::spawn().await;
    app.catalog(3, 100).await;
    board(&app, "speed", "asc", "best").await;
    let a = app.player("ada").await;
    let b = app.player("bob").await;
    let c = app.player("cyd").await;
    app.complete_labs(&a.token, [1]).await;
    let then = app.complete_labs(&b.token, [1, 2]).await;
    let now = app.complete_labs(&a.token, [2, 3]).await;

    // The general route ranks the XP as the academy's route does, line for line.
    let general = app.read_at(&a.token, "/v1/leaderboards/xp", now).await;
    let expected = [(id(&a), 300, 1), (id(&b), 200, 2), (id(&c), 0, 3)];
    assert_eq!(lines(&general), expected);
    assert_eq!(
        (general["leaderboard"].as_str(), general["season"].as_i64()),
        (Some("xp"), Some(1))
    );
    assert_eq!(general["entries"][0]["username"], "ada");
    assert_eq!(general["entries"][0]["erased"], false);
    let academy = app.read_at(&a.token, "/v1/leaderboard", now).await;
    assert_eq!(xp_lines(&academy), expected);
    // A line's time is the time of the event that set its XP.
    let (set_at,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT recorded_at FROM events WHERE position = $1")
            .bind(now)
            .fetch_one(&app.db.pool(1))
            .await
            .expect("the event");
    let updated: DateTime<Utc> = general["entries"][0]["updated_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("updated_at");
    assert_eq!(updated, set_at);

    // Pages, a player's neighbours and a friends board, through the general routes.
    let first = app
        .read_at(&a.token, "/v1/leaderboards/xp?limit=2", now)
        .await;
    assert_eq!(lines(&first), expected[..2]);
    let next = first["next"].as_str().expect("a next page");
    let rest = app
        .read_at(&a.token, &format!("/v1/leaderboards/xp?after={next}"), now)
        .await;
    assert_eq!(lines(&rest), expected[2..]);
    let around = app
        .read_at(&c.token, "/v1/leaderboards/xp/players/me?radius=1", now)
        .await;
    assert_eq!(lines(&around), expected[1..]);
    let friends = app
        .read_at(
            &c.token,
            &format!("/v1/leaderboards/xp?players={},{}", id(&c), id(&b)),
            now,
        )
        .await;
    assert_eq!(lines(&friends), [(id(&b), 200, 1), (id(&c), 0, 2)]);

    // As of a position: the board as it stood, as the academy's route has it then.
    let past = app.read_as_of(&a.token, "/v1/leaderboards/xp", then).await;
    let was = [(id(&b), 200, 1), (id(&a), 100, 2), (id(&c), 0, 3)];
    assert_eq!(lines(&past), was);
    let academy_then = app.read_as_of(&a.token, "/v1/leaderboard", then).await;
    assert_eq!(xp_lines(&academy_then), was);

    // Listed after the defined boards, built in: one season, from the log's start.
    let list = app.read_at(&a.token, "/v1/leaderboards", now).await;
    let ids: Vec<&str> = list["leaderboards"]
        .as_array()
        .expect("boards")
        .iter()
        .filter_map(|b| b["leaderboard"].as_str())
        .collect();
    assert_eq!(ids, ["speed", "xp"]);
    let xp = &list["leaderboards"][1];
    assert_eq!(
        (
            xp["order"].as_str(),
            xp["operator"].as_str(),
            xp["authoritative"].as_bool(),
            xp["season"].as_i64(),
            &xp["reset"],
        ),
        (
            Some("desc"),
            Some("incr"),
            Some(true),
            Some(1),
            &Value::Null
        )
    );
    let as_listed_then = app.read_as_of(&a.token, "/v1/leaderboards", 1).await;
    assert_eq!(as_listed_then["leaderboards"][0]["leaderboard"], "xp");
    let seasons = app
        .read_at(&a.token, "/v1/leaderboards/xp/seasons", now)
        .await;
    assert_eq!(seasons.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (seasons[0]["season"].as_i64(), &seasons[0]["ended_at"]),
        (Some(1), &Value::Null)
    );

    // Its definition is code and its scores the academy's: no command changes it.
    let admin = app.admin_token();
    let before = event_count(&app.db).await;
    for (token, name, body, status, code) in [
        (
            &admin,
            "define_leaderboard",
            json!({ "leaderboard": "xp", "title": "Mine" }),
            StatusCode::CONFLICT,
            "builtin_leaderboard",
        ),
        (
            &a.token,
            "submit_score",
            json!({ "leaderboard": "xp", "score": 1_000_000 }),
            StatusCode::CONFLICT,
            "builtin_leaderboard",
        ),
        (
            &admin,
            "submit_score",
            json!({ "leaderboard": "xp", "score": 5, "player_id": c.id }),
            StatusCode::CONFLICT,
            "builtin_leaderboard",
        ),
        (
            &a.token,
            "define_leaderboard",
            json!({ "leaderboard": "xp", "title": "Mine" }),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let (s, body) = app.command(token, name, &body).await;
        assert_eq!((s, body["code"].as_str()), (status, Some(code)), "{name}");
    }
    assert_eq!(event_count(&app.db).await, before, "nothing appended");

    // Its live topic sends the top on each change of XP, labelled with the players' checkpoint.
    let mut sub = Sub::open(
        &app,
        &b.token,
        "topic=leaderboard:xp&leaderboard_limit=2",
        None,
    )
    .await;
    let snapshots = sub
        .until(|e| e.kind == "snapshot" && e.topic() == "leaderboard:xp")
        .await;
    let snapshot = snapshots.last().expect("a snapshot");
    assert_eq!(lines(&snapshot.data["data"]), expected[..2]);
    app.complete_labs(&b.token, [3]).await;
    // The change that brings b's completion: its label is the players' checkpoint when it was
    // applied, which may come before the command's last event (a level, a streak) when the
    // projector's batch ends between them, and those later events do not move the board.
    let changes = sub
        .until(|e| {
            e.kind == "change"
                && e.topic() == "leaderboard:xp"
                && lines(&e.data["data"])
                    .iter()
                    .any(|(player, xp, _)| *player == id(&b) && *xp == 300)
        })
        .await;
    let change = changes.last().expect("a change");
    assert_eq!(
        lines(&change.data["data"]),
        [(id(&a), 300, 1), (id(&b), 300, 2)],
        "equal XP goes to whoever reached it first"
    );
    let at = change.position();
    let exact = app
        .read_as_of(&b.token, "/v1/leaderboards/xp?limit=2", at)
        .await;
    assert_eq!(lines(&exact), lines(&change.data["data"]));

    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
}
