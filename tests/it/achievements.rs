//! Achievements as data, spoken to like a game: progress set by the client (rising only),
//! unlocks, rules over a player's history awarded retroactively at the position they were met,
//! hidden achievements, rarity, grants and revocations beside the academy's own grants.

use questlog_tests::{event_count, event_types, position, Player, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn define(app: &TestApp, body: Value) -> i64 {
    position(&app.ok(&app.admin_token(), "define_achievement", body).await)
}

/// The player's line for `achievement`, if it shows.
fn line<'a>(list: &'a Value, achievement: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|a| a["achievement"] == achievement)
}

/// The position of `player`'s `n`-th event of `event_type`.
async fn nth(app: &TestApp, player: &Player, event_type: &str, n: i64) -> (i64, String) {
    let (position, at): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT position, recorded_at FROM events WHERE event_type = $1 \
           AND (data->>'player_id' = $2 OR metadata->>'identity' = $2) \
         ORDER BY position OFFSET $3 LIMIT 1",
    )
    .bind(event_type)
    .bind(player.id.to_string())
    .bind(n - 1)
    .fetch_one(&app.db.pool(1))
    .await
    .expect("the event");
    (
        position,
        at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

#[tokio::test]
async fn progress_only_rises_and_reaching_the_goal_unlocks() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({ "achievement": "kill_100_enemies", "title": "Exterminator",
                "description": "Kill 100 enemies", "goal": 100 }),
    )
    .await;
    let p = app.identity().await;
    let set = |progress: i64| json!({ "achievement": "kill_100_enemies", "progress": progress });
    let at = position(&app.ok(&p.token, "set_achievement_progress", set(45)).await);
    let mine = app
        .read_at(&p.token, "/v1/players/me/achievements", at)
        .await;
    let kill = line(&mine, "kill_100_enemies").expect("listed");
    assert_eq!(
        (
            kill["progress"].as_i64(),
            kill["goal"].as_i64(),
            &kill["unlocked_at"]
        ),
        (Some(45), Some(100), &Value::Null)
    );
    let before = event_count(&app.db).await;
    let (s, body) = app
        .command(&p.token, "set_achievement_progress", &set(44))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("progress_decreased"))
    );
    assert_eq!(event_count(&app.db).await, before);
    let out = app.ok(&p.token, "set_achievement_progress", set(100)).await;
    assert_eq!(
        event_types(&out),
        ["achievement_progressed", "achievement_awarded"]
    );
    let mine = app
        .read_at(&p.token, "/v1/players/me/achievements", position(&out))
        .await;
    let kill = line(&mine, "kill_100_enemies").expect("listed");
    assert_eq!(kill["progress"], 100);
    assert_eq!(kill["position"], position(&out));
    assert!(kill["unlocked_at"].is_string());

    // unlock_achievement on another, and the codes of bad input.
    define(
        &app,
        json!({ "achievement": "secret_door", "title": "Secret door" }),
    )
    .await;
    let out = app
        .ok(
            &p.token,
            "unlock_achievement",
            json!({ "achievement": "secret_door" }),
        )
        .await;
    assert_eq!(event_types(&out), ["achievement_awarded"]);
    let again = app
        .ok(
            &p.token,
            "unlock_achievement",
            json!({ "achievement": "secret_door" }),
        )
        .await;
    assert_eq!(event_types(&again), Vec::<&str>::new());
    let admin = app.admin_token();
    let before = event_count(&app.db).await;
    for (token, name, body, status, code) in [
        (
            &p.token,
            "unlock_achievement",
            json!({ "achievement": "nope" }),
            404,
            "unknown_achievement",
        ),
        (
            &p.token,
            "set_achievement_progress",
            json!({ "achievement": "kill_100_enemies", "progress": -1 }),
            422,
            "invalid_progress",
        ),
        (
            &p.token,
            "define_achievement",
            json!({ "achievement": "x", "title": "X" }),
            403,
            "forbidden",
        ),
        (
            &admin,
            "define_achievement",
            json!({ "achievement": "x", "title": "X", "goal": 0 }),
            422,
            "invalid_goal",
        ),
        (
            &admin,
            "define_achievement",
            json!({ "achievement": "x", "title": "X\u{0}" }),
            422,
            "invalid_title",
        ),
        (
            &admin,
            "define_achievement",
            json!({ "achievement": "x", "title": "X", "rule": { "count": 5 } }),
            422,
            "invalid_rule",
        ),
        (
            &admin,
            "unlock_achievement",
            json!({ "achievement": "secret_door" }),
            422,
            "missing_player_id",
        ),
        (
            &p.token,
            "revoke_achievement",
            json!({ "achievement": "secret_door", "player_id": p.id, "reason": "x" }),
            403,
            "forbidden",
        ),
    ] {
        let (s, answer) = app.command(token, name, &body).await;
        assert_eq!(
            (s.as_u16(), answer["code"].as_str()),
            (status, Some(code)),
            "{name} {body}"
        );
    }
    assert_eq!(event_count(&app.db).await, before, "nothing appended");
}

#[tokio::test]
async fn an_authoritative_achievement_is_set_only_by_the_server() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({ "achievement": "tournament", "title": "Won a tournament", "authoritative": true }),
    )
    .await;
    let p = app.identity().await;
    let (s, body) = app
        .command(
            &p.token,
            "unlock_achievement",
            &json!({ "achievement": "tournament" }),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let out = app
        .ok(
            &app.admin_token(),
            "unlock_achievement",
            json!({ "achievement": "tournament", "player_id": p.id }),
        )
        .await;
    assert_eq!(event_types(&out), ["achievement_awarded"]);
}

#[tokio::test]
async fn a_rule_defined_late_awards_every_player_whose_history_meets_it_where_they_met_it() {
    let app = TestApp::spawn().await;
    app.catalog(3, 50).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    app.complete_labs(&ada.token, [1, 2, 3]).await;
    app.complete_labs(&bob.token, [1]).await;
    let (second, second_at) = nth(&app, &ada, "lab_completed", 2).await;

    let defined = define(
        &app,
        json!({ "achievement": "two_labs", "title": "Two labs", "goal": 2,
                "rule": { "count": "lab_completed" } }),
    )
    .await;
    let mine = app
        .read_at(&ada.token, "/v1/players/me/achievements", defined)
        .await;
    let two = line(&mine, "two_labs").expect("listed");
    assert_eq!(two["progress"], 2, "progress is the count toward the goal");
    assert_eq!(two["position"], second, "awarded where the goal was met");
    assert_eq!(two["unlocked_at"], second_at.as_str());
    // A replay up to just before the definition knows no such achievement; from it on, the
    // award sits where the goal was met.
    let before = app
        .read_as_of(&ada.token, "/v1/players/me/achievements", defined - 1)
        .await;
    assert!(line(&before, "two_labs").is_none(), "{before}");
    let at = app
        .read_as_of(&ada.token, "/v1/players/me/achievements", defined)
        .await;
    assert_eq!(line(&at, "two_labs"), Some(two));
    let bobs = app
        .read_at(&bob.token, "/v1/players/me/achievements", defined)
        .await;
    let two = line(&bobs, "two_labs").expect("listed");
    assert_eq!(
        (two["progress"].as_i64(), &two["unlocked_at"]),
        (Some(1), &Value::Null)
    );

    // After the definition the rule folds on: bob's second lab unlocks it there.
    let now = app.complete_labs(&bob.token, [2]).await;
    let (bob_second, _) = nth(&app, &bob, "lab_completed", 2).await;
    let bobs = app
        .read_at(&bob.token, "/v1/players/me/achievements", now)
        .await;
    assert_eq!(
        line(&bobs, "two_labs").expect("listed")["position"],
        bob_second
    );
    // As of the definition bob still stood at one lab.
    let bobs = app
        .read_as_of(&bob.token, "/v1/players/me/achievements", bob_second - 1)
        .await;
    let two = line(&bobs, "two_labs").expect("listed");
    assert_eq!(
        (two["progress"].as_i64(), &two["unlocked_at"]),
        (Some(1), &Value::Null)
    );

    // A filtered rule: labs of module 1 named lab-3 only.
    let defined = define(
        &app,
        json!({ "achievement": "third", "title": "Third", "rule": { "count": "lab_completed",
                "where": { "lab_id": "lab-3" } } }),
    )
    .await;
    let (third, _) = nth(&app, &ada, "lab_completed", 3).await;
    let mine = app
        .read_at(&ada.token, "/v1/players/me/achievements", defined)
        .await;
    assert_eq!(line(&mine, "third").expect("listed")["position"], third);
    let bobs = app
        .read_at(&bob.token, "/v1/players/me/achievements", defined)
        .await;
    assert_eq!(line(&bobs, "third").expect("listed")["progress"], 0);
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
}

#[tokio::test]
async fn a_score_rule_is_met_by_the_first_score_that_reaches_it() {
    let app = TestApp::spawn().await;
    app.ok(
        &app.admin_token(),
        "define_leaderboard",
        json!({ "leaderboard": "high_scores", "title": "High scores" }),
    )
    .await;
    let p = app.identity().await;
    let mut at = Vec::new();
    for s in [50, 120, 300] {
        let out = app
            .ok(
                &p.token,
                "submit_score",
                json!({ "leaderboard": "high_scores", "score": s }),
            )
            .await;
        at.push(position(&out));
    }
    let defined = define(
        &app,
        json!({ "achievement": "hundred", "title": "A hundred",
                "rule": { "score": "high_scores", "at_least": 100 } }),
    )
    .await;
    let mine = app
        .read_at(&p.token, "/v1/players/me/achievements", defined)
        .await;
    assert_eq!(line(&mine, "hundred").expect("listed")["position"], at[1]);
}

#[tokio::test]
async fn hidden_achievements_show_to_others_once_unlocked_and_rarity_is_a_share_of_players() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({ "achievement": "easter_egg", "title": "Easter egg", "hidden": true }),
    )
    .await;
    define(&app, json!({ "achievement": "hello", "title": "Hello" })).await;
    let players = [
        app.player("p1").await,
        app.player("p2").await,
        app.player("p3").await,
        app.player("p4").await,
    ];
    let (finder, other) = (&players[0], &players[1]);
    // The owner sees its hidden achievement; another player does not, until it is unlocked.
    let mine = app
        .read_at(&finder.token, "/v1/players/me/achievements", 0)
        .await;
    assert!(line(&mine, "easter_egg").is_some());
    let seen = app
        .read_at(
            &other.token,
            &format!("/v1/players/{}/achievements", finder.id),
            0,
        )
        .await;
    assert!(line(&seen, "easter_egg").is_none(), "{seen}");
    let catalog = app.read_at(&other.token, "/v1/achievements", 0).await;
    assert_eq!(catalog["achievements"][0]["title"], Value::Null);

    let out = app
        .ok(
            &finder.token,
            "unlock_achievement",
            json!({ "achievement": "easter_egg" }),
        )
        .await;
    let mut last = position(&out);
    for p in &players[..3] {
        last = position(
            &app.ok(
                &p.token,
                "unlock_achievement",
                json!({ "achievement": "hello" }),
            )
            .await,
        );
    }
    let seen = app
        .read_at(
            &other.token,
            &format!("/v1/players/{}/achievements", finder.id),
            last,
        )
        .await;
    assert!(line(&seen, "easter_egg").is_some());
    let catalog = app.read_at(&finder.token, "/v1/achievements", last).await;
    assert_eq!(catalog["players"], 4);
    let egg = &catalog["achievements"][0];
    assert_eq!(
        (egg["title"].as_str(), egg["unlocked_by"].as_i64()),
        (Some("Easter egg"), Some(1))
    );
    assert_eq!(egg["rarity"], 0.25);
    let hello = &catalog["achievements"][1];
    assert_eq!(
        (hello["unlocked_by"].as_i64(), hello["rarity"].as_f64()),
        (Some(3), Some(0.75))
    );

    // As of the finder's unlock, before anyone said hello: the catalog and the lines as then.
    let unlocked = position(&out);
    let then = app
        .read_as_of(&other.token, "/v1/achievements", unlocked)
        .await;
    assert_eq!(then["players"], 4);
    let (egg, hello) = (&then["achievements"][0], &then["achievements"][1]);
    assert_eq!(
        (egg["title"].as_str(), egg["unlocked_by"].as_i64()),
        (None, Some(1)),
        "hidden from another player who has not unlocked it: {then}"
    );
    assert_eq!(
        (hello["unlocked_by"].as_i64(), hello["rarity"].as_f64()),
        (Some(0), Some(0.0))
    );
    let seen = app
        .read_as_of(
            &other.token,
            &format!("/v1/players/{}/achievements", finder.id),
            unlocked - 1,
        )
        .await;
    assert!(
        line(&seen, "easter_egg").is_none(),
        "not unlocked yet: {seen}"
    );
    let seen = app
        .read_as_of(
            &other.token,
            &format!("/v1/players/{}/achievements", finder.id),
            unlocked,
        )
        .await;
    assert_eq!(
        line(&seen, "easter_egg").expect("unlocked")["position"],
        unlocked
    );
    // Before the players registered there was no one to share rarity among.
    let before = app.read_as_of(&other.token, "/v1/achievements", 2).await;
    assert_eq!(
        (
            before["players"].as_i64(),
            &before["achievements"][1]["rarity"]
        ),
        (Some(0), &Value::Null)
    );
}

#[tokio::test]
async fn an_admin_grants_and_revokes_defined_achievements_and_the_academy_still_grants_its_own() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({ "achievement": "beta", "title": "Beta tester" }),
    )
    .await;
    let p = app.player("ada").await;
    let admin = app.admin_token();
    let granted = app
        .ok(
            &admin,
            "grant_achievement",
            json!({ "player_id": p.id, "achievement": "beta" }),
        )
        .await;
    assert_eq!(event_types(&granted), ["achievement_awarded"]);
    let mine = app
        .read_at(&p.token, "/v1/players/me/achievements", position(&granted))
        .await;
    assert!(line(&mine, "beta").expect("listed")["unlocked_at"].is_string());
    let revoked = app
        .ok(
            &admin,
            "revoke_achievement",
            json!({ "player_id": p.id, "achievement": "beta", "reason": "not a tester" }),
        )
        .await;
    assert_eq!(event_types(&revoked), ["achievement_revoked"]);
    let mine = app
        .read_at(&p.token, "/v1/players/me/achievements", position(&revoked))
        .await;
    assert_eq!(
        line(&mine, "beta").expect("listed")["unlocked_at"],
        Value::Null
    );

    // An achievement not defined as data is the academy's, granted by name as before.
    let academy = app
        .ok(
            &admin,
            "grant_achievement",
            json!({ "player_id": p.id, "achievement": "first_lab" }),
        )
        .await;
    assert_eq!(event_types(&academy), ["achievement_unlocked"]);
    let profile = app
        .read_at(&p.token, "/v1/players/me", position(&academy))
        .await;
    assert_eq!(profile["achievements"], json!(["first_lab"]));
}

#[tokio::test]
async fn the_academy_built_in_achievements_are_achievements_listed_with_their_rarity() {
    let app = TestApp::spawn().await;
    let admin = app.catalog(2, 100).await;
    define(
        &app,
        json!({ "achievement": "beta", "title": "Beta tester" }),
    )
    .await;
    let a = app.player("ada").await;
    let b = app.player("bob").await;
    let out = app
        .ok(&a.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    // The academy decides it and records it as it always did.
    assert_eq!(event_types(&out).last(), Some(&"achievement_unlocked"));
    assert_eq!(
        out["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| &e["data"]),
        Some(&json!({ "achievement": "first_lab" }))
    );
    let unlocked = position(&out);
    let (_, at) = nth(&app, &a, "lab_completed", 1).await;

    // The player's list has it, unlocked where the academy's event is, and the others to earn.
    let mine = app
        .read_at(&a.token, "/v1/players/me/achievements", unlocked)
        .await;
    let first = line(&mine, "first_lab").expect("listed");
    assert_eq!(
        (
            first["title"].as_str(),
            first["goal"].as_i64(),
            first["progress"].as_i64(),
            first["position"].as_i64(),
            first["unlocked_at"].as_str()
        ),
        (
            Some("First lab"),
            Some(1),
            Some(1),
            Some(unlocked),
            Some(at.as_str())
        )
    );
    let ten = line(&mine, "ten_labs").expect("listed");
    assert_eq!(
        (ten["progress"].as_i64(), &ten["unlocked_at"]),
        (Some(0), &Value::Null)
    );
    let theirs = app
        .read_at(&b.token, "/v1/players/me/achievements", unlocked)
        .await;
    assert_eq!(
        line(&theirs, "first_lab").expect("listed")["unlocked_at"],
        Value::Null
    );

    // The catalog: the achievements defined as data, then the built-in ones, with rarity.
    let catalog = app.read_at(&b.token, "/v1/achievements", unlocked).await;
    let ids: Vec<&str> = catalog["achievements"]
        .as_array()
        .expect("achievements")
        .iter()
        .filter_map(|a| a["achievement"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "beta",
            "first_lab",
            "ten_labs",
            "first_module",
            "streak_7",
            "streak_30",
            "level_5",
            "level_10"
        ]
    );
    let first = &catalog["achievements"][1];
    assert_eq!(
        (
            first["unlocked_by"].as_i64(),
            first["rarity"].as_f64(),
            first["authoritative"].as_bool(),
            first["hidden"].as_bool(),
            &first["rule"],
        ),
        (Some(1), Some(0.5), Some(true), Some(false), &Value::Null)
    );

    // An admin's grant of one is the academy's event, and counts like any unlock.
    let granted = app
        .ok(
            &admin,
            "grant_achievement",
            json!({ "player_id": b.id, "achievement": "level_10" }),
        )
        .await;
    assert_eq!(event_types(&granted), ["achievement_unlocked"]);
    let catalog = app
        .read_at(&b.token, "/v1/achievements", position(&granted))
        .await;
    assert_eq!(catalog["achievements"][7]["unlocked_by"], 1);

    // As of a position, as a replay up to it: listed from the log's start, unlocked from then.
    let before = app
        .read_as_of(&b.token, "/v1/achievements", unlocked - 1)
        .await;
    assert_eq!(before["achievements"][1]["achievement"], "first_lab");
    assert_eq!(before["achievements"][1]["unlocked_by"], 0);
    let then = app
        .read_as_of(&a.token, "/v1/players/me/achievements", unlocked)
        .await;
    assert_eq!(
        line(&then, "first_lab").expect("listed")["position"],
        unlocked
    );
    assert_eq!(
        line(&then, "level_10").expect("listed")["unlocked_at"],
        Value::Null
    );

    // Its definition is code: defining its id is refused.
    let count = event_count(&app.db).await;
    let (s, body) = app
        .command(
            &admin,
            "define_achievement",
            &json!({ "achievement": "first_lab", "title": "Mine" }),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("builtin_achievement"))
    );
    assert_eq!(event_count(&app.db).await, count, "nothing appended");

    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
}
