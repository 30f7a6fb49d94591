//! Profiles, presence and the catalog.

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use questlog_tests::query::TestApi;

async fn seed_catalog(api: &TestApi) {
    sqlx::query(
        "INSERT INTO rm_modules (module, title, requires) VALUES
            (1, 'Basics', '{}'), (2, 'Files', '{1}'), (3, 'Pipes', '{1,2}'), (4, 'Extras', '{}')",
    )
    .execute(&api.pool)
    .await
    .expect("modules");
    sqlx::query(
        "INSERT INTO rm_labs (lab_id, module, title, xp) VALUES
            ('intro', 1, 'Intro', 100), ('ls', 1, 'Listing', 150), ('cat', 2, 'Reading', 200)",
    )
    .execute(&api.pool)
    .await
    .expect("labs");
}

#[tokio::test]
async fn a_profile_shows_progress_unlocked_modules_and_presence() {
    let api = TestApi::spawn().await;
    seed_catalog(&api).await;
    let ada = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO rm_players (player_id, username, xp, level, xp_position, streak,
             longest_streak, streak_day, timezone, last_activity, completed_labs,
             completed_modules, achievements, updated_position, online, current_lab)
         VALUES ($1, 'Ada', 250, 2, 7, 3, 5, '2026-11-20', 'Europe/Berlin',
             '2026-11-20T10:15:00Z', '{ls,intro}', '{1}', '{first_module,first_lab}', 8,
             true, 'cat')",
    )
    .bind(ada)
    .execute(&api.pool)
    .await
    .expect("player");
    api.set_checkpoint("players", 8).await;
    api.set_checkpoint("catalog", 3).await;

    // Anyone's profile is public to any valid token.
    let answer = api
        .get(&format!("/v1/players/{ada}"), Some(&api.any_token()))
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // The least checkpoint of the projections the profile is read from.
    assert_eq!(answer.position(), 3);
    assert_eq!(
        answer.body,
        json!({
            "player_id": ada,
            "username": "Ada",
            "erased": false,
            "level": 2,
            "xp": 250,
            "streak": 3,
            "longest_streak": 5,
            "timezone": "Europe/Berlin",
            "last_activity": "2026-11-20T10:15:00Z",
            "online": true,
            "current_lab": "cat",
            "completed_labs": ["intro", "ls"],
            "completed_modules": [1],
            "unlocked_modules": [1, 2, 4],
            "achievements": ["first_lab", "first_module"],
        })
    );

    // `me` is the caller's own profile.
    let me = api
        .get("/v1/players/me", Some(&api.player_token(ada)))
        .await;
    assert_eq!(me.body, answer.body);
}

#[tokio::test]
async fn an_offline_player_has_no_current_lab() {
    let api = TestApi::spawn().await;
    let bob = Uuid::new_v4();
    api.insert_player(bob, "bob", 0, 1).await;

    let answer = api
        .get(&format!("/v1/players/{bob}"), Some(&api.any_token()))
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 0, "no projection has committed yet");
    assert_eq!(answer.body["online"], false);
    assert_eq!(answer.body["current_lab"], json!(null));
    assert_eq!(answer.body["last_activity"], json!(null));
    assert_eq!(
        answer.body["unlocked_modules"],
        json!([]),
        "no module is defined yet"
    );
}

#[tokio::test]
async fn an_unknown_player_is_not_found() {
    let api = TestApi::spawn().await;
    let token = api.any_token();
    let unknown = api
        .get(&format!("/v1/players/{}", Uuid::new_v4()), Some(&token))
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "player_not_found");
    let not_an_id = api.get("/v1/players/nobody", Some(&token)).await;
    not_an_id.assert_problem(StatusCode::NOT_FOUND, "player_not_found");
    let me = api.get("/v1/players/me", Some(&token)).await;
    me.assert_problem(StatusCode::NOT_FOUND, "player_not_found");
}

#[tokio::test]
async fn every_read_needs_a_valid_token() {
    let api = TestApi::spawn().await;
    let expired = api.keys.issue_for(
        Uuid::new_v4(),
        questlog_academy::Role::Player,
        chrono::Duration::seconds(-10),
    );
    for path in [
        "/v1/players/me",
        "/v1/leaderboard",
        "/v1/leaderboard/players/me",
        "/v1/presence",
        "/v1/labs",
        "/v1/admin/projections",
        "/v1/admin/streams/catalog",
    ] {
        api.get(path, None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        api.get(path, Some("not-a-token"))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        api.get(path, Some(&expired))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn presence_lists_who_is_online() {
    let api = TestApi::spawn().await;
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO rm_presence (player_id, username, current_lab, since, online) VALUES
            ($1, 'Ada', 'intro', '2026-11-20T10:00:00Z', true),
            ($2, 'bob', NULL, '2026-11-20T09:00:00Z', true),
            ($3, 'cyd', NULL, NULL, false)",
    )
    .bind(ada)
    .bind(bob)
    .bind(Uuid::new_v4())
    .execute(&api.pool)
    .await
    .expect("presence");
    api.set_checkpoint("presence", 12).await;

    let answer = api.get("/v1/presence", Some(&api.any_token())).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 12);
    assert_eq!(
        answer.body,
        json!({
            "position": 12,
            "online": [
                {"player_id": bob, "username": "bob", "current_lab": null, "since": "2026-11-20T09:00:00Z"},
                {"player_id": ada, "username": "Ada", "current_lab": "intro", "since": "2026-11-20T10:00:00Z"},
            ]
        })
    );
}

#[tokio::test]
async fn the_catalog_lists_modules_with_their_labs() {
    let api = TestApi::spawn().await;
    seed_catalog(&api).await;
    api.set_checkpoint("catalog", 4).await;

    let answer = api.get("/v1/labs", Some(&api.any_token())).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.position(), 4);
    assert_eq!(
        answer.body,
        json!({
            "position": 4,
            "modules": [
                {"module": 1, "title": "Basics", "requires": [], "labs": [
                    {"lab_id": "intro", "title": "Intro", "xp": 100},
                    {"lab_id": "ls", "title": "Listing", "xp": 150},
                ]},
                {"module": 2, "title": "Files", "requires": [1], "labs": [
                    {"lab_id": "cat", "title": "Reading", "xp": 200},
                ]},
                {"module": 3, "title": "Pipes", "requires": [1, 2], "labs": []},
                {"module": 4, "title": "Extras", "requires": [], "labs": []},
            ]
        })
    );
}
