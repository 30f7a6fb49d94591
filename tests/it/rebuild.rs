//! Rebuilds folded in memory and written in bulk (`replay`, `verify`): the same rows as the live
//! projector's, for every module's read model, and switched in without readers noticing the
//! build.

use questlog_projector::replay::{self, Fold};
use questlog_projector::{Projection, Projections};
use questlog_tests::{position, Player, TestApp};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

/// A log with events of every module: players completing labs (the leaderboard's history),
/// presence, lab sessions, chat sent, edited and deleted, storage objects written, rewritten and
/// deleted in an indexed collection, a leaderboard's scores and an achievement's rule. Returns
/// the players and the last position.
async fn every_module(app: &TestApp) -> (Vec<Player>, i64) {
    let admin = app.admin_token();
    app.catalog(3, 100).await;
    app.ok(
        &admin,
        "define_collection",
        json!({"collection": "characters", "read": "public", "write": "owner", "indexed": ["class", "level"]}),
    )
    .await;
    app.ok(
        &admin,
        "define_leaderboard",
        json!({ "leaderboard": "speed", "title": "Speed", "order": "desc", "operator": "best" }),
    )
    .await;
    app.ok(
        &admin,
        "define_achievement",
        json!({ "achievement": "twice", "title": "Twice", "goal": 2,
                "rule": { "count": "lab_completed" } }),
    )
    .await;
    let mut players = Vec::new();
    let mut last = 0;
    for i in 0..6_usize {
        let p = app.player(&format!("r{i}")).await;
        for lab in 1..=(i % 3 + 1) {
            app.ok(
                &p.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{lab}") }),
            )
            .await;
        }
        app.ok(&p.token, "heartbeat", json!({ "current_lab": "lab-1" }))
            .await;
        if i % 2 == 0 {
            app.ok(&p.token, "heartbeat", json!({ "current_lab": "lab-2" }))
                .await;
        }
        app.ok(&p.token, "start_lab", json!({ "lab_id": "lab-2" }))
            .await;
        app.ok(
            &p.token,
            "save_lab_state",
            json!({ "lab_id": "lab-2", "vfs_snapshot": {"f": i}, "current_step": i }),
        )
        .await;
        if i == 1 {
            app.ok(&p.token, "delete_lab_state", json!({ "lab_id": "lab-2" }))
                .await;
        }
        let sent = app
            .ok(
                &p.token,
                "send_message",
                json!({ "channel": "global", "content": format!("hi\tfrom \\ {i}\n") }),
            )
            .await;
        let message = sent["events"][0]["data"]["message_id"].clone();
        if i % 3 == 1 {
            app.ok(
                &p.token,
                "edit_message",
                json!({ "message_id": message, "content": "edited \"quoted\"" }),
            )
            .await;
        }
        if i % 3 == 2 {
            app.ok(&p.token, "delete_message", json!({ "message_id": message }))
                .await;
        }
        for version in 0..=(i % 2) {
            app.ok(
                &p.token,
                "put_object",
                json!({"collection": "characters", "key": "hero",
                       "value": {"class": "mage", "level": version + i, "note": "a\u{e9}\\\"\n"}}),
            )
            .await;
        }
        if i == 3 {
            app.ok(
                &p.token,
                "delete_object",
                json!({"collection": "characters", "key": "hero"}),
            )
            .await;
        }
        for score in [10 * i, 5] {
            last = position(
                &app.ok(
                    &p.token,
                    "submit_score",
                    json!({ "leaderboard": "speed", "score": score }),
                )
                .await,
            );
        }
        players.push(p);
    }
    (players, last)
}

fn table<'a>(checks: &'a Value, name: &str) -> &'a Value {
    checks
        .as_array()
        .and_then(|c| c.iter().find(|t| t["table"] == name))
        .unwrap_or_else(|| panic!("{name} in {checks}"))
}

#[tokio::test]
async fn a_bulk_rebuild_yields_exactly_the_rows_the_live_projector_wrote_for_every_module() {
    let app = TestApp::spawn().await;
    let (_, head) = every_module(&app).await;
    app.caught_up(head).await;

    // `verify` rebuilds every read model by the bulk fold and compares it row by row.
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks:#}");
    let all = Projections::of(&questlog::modules::app());
    let bulk: Vec<&'static str> = all
        .iter()
        .filter(|p| p.bulk().is_some())
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    for name in [
        "rm_players",
        "rm_leaderboard_history",
        "rm_presence",
        "rm_presence_history",
        "rm_lab_sessions",
        "rm_messages",
        "rm_storage_versions",
    ] {
        assert!(bulk.contains(&name), "{name} is rebuilt in bulk");
        let t = table(&checks, name);
        assert!(t["live_rows"].as_i64() > Some(1), "{name} is small: {t}");
        assert_eq!(t["live_rows"], t["replayed_rows"], "{name}");
    }
    for name in ["rm_leaderboard_entries", "rm_player_achievements"] {
        assert!(
            table(&checks, name)["live_rows"].as_i64() > Some(0),
            "{name}: {checks:#}"
        );
    }

    // And the bulk fold builds what the page-by-page one builds, as of any point.
    let mut conn = PgConnection::connect(&app.db.url).await.expect("connect");
    let app_modules = questlog::modules::app();
    let chosen: Vec<&dyn Projection> = all.iter().map(AsRef::as_ref).collect();
    let tables: Vec<&str> = chosen.iter().flat_map(|p| p.tables()).copied().collect();
    for at in [head / 2, head] {
        for (fold, schema) in [(Fold::Pages, "t_pages"), (Fold::Bulk, "t_bulk")] {
            // The bulk build as `replay` runs it: the log read, and the end shared, on a second
            // connection.
            let reader = match fold {
                Fold::Bulk => Some(PgConnection::connect(&app.db.url).await.expect("connect")),
                Fold::Pages => None,
            };
            replay::build_as_of(
                &mut conn,
                reader,
                &app_modules.domain(),
                schema,
                &chosen,
                at,
                fold,
                &mut |_, _| {},
            )
            .await
            .expect("built");
        }
        for table in &tables {
            let differ: i64 = sqlx::query_scalar(&format!(
                "SELECT (SELECT count(*) FROM (TABLE t_pages.{table} EXCEPT ALL TABLE t_bulk.{table}) a) \
                      + (SELECT count(*) FROM (TABLE t_bulk.{table} EXCEPT ALL TABLE t_pages.{table}) b)"
            ))
            .fetch_one(&mut conn)
            .await
            .expect("compared");
            assert_eq!(differ, 0, "{table} as of {at}");
        }
        // The bulk tables get the live tables' indexes once loaded, under the live names.
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 't_bulk' \
             EXCEPT ALL SELECT indexname FROM pg_indexes WHERE schemaname = 'public'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("indexes");
        assert_eq!(indexes, Vec::<String>::new());
        let missing: Vec<String> = sqlx::query_scalar(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1) \
             EXCEPT SELECT indexname FROM pg_indexes WHERE schemaname = 't_bulk'",
        )
        .bind(&tables)
        .fetch_all(&mut conn)
        .await
        .expect("indexes");
        assert_eq!(missing, Vec::<String>::new());
        // And their constraints, of the same kinds, on the same columns.
        let constraints = |schema: &'static str| {
            sqlx::query_scalar::<_, String>(
                "SELECT c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) \
                   FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
                  WHERE c.relnamespace = $1::regnamespace AND c.relname = ANY($2) \
                  ORDER BY 1",
            )
            .bind(schema)
            .bind(&tables)
        };
        let live = constraints("public")
            .fetch_all(&mut conn)
            .await
            .expect("constraints");
        let bulk = constraints("t_bulk")
            .fetch_all(&mut conn)
            .await
            .expect("constraints");
        assert!(live.iter().any(|c| c.contains("PRIMARY KEY")), "{live:?}");
        assert_eq!(bulk, live);
    }
}

/// XP of player `name` as the live leaderboard shows it.
async fn xp_on_the_board(app: &TestApp, token: &str, name: &str) -> i64 {
    let (_, _, board) = app.get(token, "/v1/leaderboard?limit=100").await;
    board["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["username"] == name)
        .and_then(|e| e["xp"].as_i64())
        .unwrap_or_else(|| panic!("{name} on {board}"))
}

#[tokio::test]
async fn readers_read_the_old_model_until_the_switch_and_the_rebuilt_one_after() {
    let app = TestApp::spawn().await;
    let (players, head) = every_module(&app).await;
    app.caught_up(head).await;
    let token = &players[0].token;
    let truth = xp_on_the_board(&app, token, "r0").await;
    let pool = app.db.pool(1);
    sqlx::query("UPDATE rm_players SET xp = xp + 1000 WHERE username = 'r0'")
        .execute(&pool)
        .await
        .expect("planted");

    let modules = questlog::modules::app();
    let all = Projections::of(&modules);
    let chosen: Vec<&dyn Projection> = all.iter().map(AsRef::as_ref).collect();
    let mut conn = PgConnection::connect(&app.db.url).await.expect("connect");
    let built = replay::build(
        &mut conn,
        Some(PgConnection::connect(&app.db.url).await.expect("a reader")),
        &modules.domain(),
        &chosen,
        Fold::Bulk,
        &mut |_, _| {},
    )
    .await
    .expect("built");
    // Built, not switched: readers read the live model as it was, drift included.
    assert_eq!(xp_on_the_board(&app, token, "r0").await, truth + 1000);
    let rebuilt: i64 = sqlx::query_scalar(&format!(
        "SELECT xp FROM {}.rm_players WHERE username = 'r0'",
        replay::SCHEMA
    ))
    .fetch_one(&pool)
    .await
    .expect("rebuilt row");
    assert_eq!(rebuilt, truth);
    // The projector goes on meanwhile; the switch brings the rebuilt tables up to it.
    let more = position(
        &app.ok(
            &players[0].token,
            "complete_lab",
            json!({ "lab_id": "lab-3" }),
        )
        .await,
    );
    app.caught_up(more).await;
    built
        .switch(&mut conn, &modules.domain(), &chosen)
        .await
        .expect("switched");
    assert_eq!(xp_on_the_board(&app, token, "r0").await, truth + 100);
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks:#}");
    pool.close().await;
}
