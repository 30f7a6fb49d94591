//! Time travel: every read's `as_of=P` answer equals what a fresh replay of the log up to P
//! produces. The replay is the projections' own code (`questlog replay --to P`), into tables of
//! its own; the as-of reads come from the domain's folds of the log and the history tables.

use std::collections::HashMap;

use futures::future::join_all;
use questlog_tests::{position, Player, TestApp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::PgPool;

const LABS: usize = 4;

/// A random history: players completing labs, heartbeating between labs, saving lab sessions and
/// chatting (sending, editing, deleting). Returns the log's head.
async fn random_history(app: &TestApp, seed: u64, commands: usize) -> i64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let names: Vec<String> = (0..5).map(|i| format!("s{seed}p{i}")).collect();
    let players: Vec<Player> = join_all(names.iter().map(|n| app.player(n))).await;
    let mut sent: Vec<(usize, String)> = Vec::new();
    let mut head = 0;
    for _ in 0..commands {
        let who = rng.gen_range(0..players.len());
        let p = &players[who];
        let lab = format!("lab-{}", rng.gen_range(1..=LABS));
        let (name, body) = match rng.gen_range(0..9) {
            0 | 1 => ("complete_lab", json!({ "lab_id": lab })),
            2 => ("heartbeat", json!({ "current_lab": lab })),
            3 => ("heartbeat", json!({ "current_lab": null })),
            4 => ("start_lab", json!({ "lab_id": lab })),
            5 => (
                "save_lab_state",
                json!({ "lab_id": lab, "vfs_snapshot": {"n": rng.gen_range(0..100)}, "current_step": rng.gen_range(0..6) }),
            ),
            6 => (
                "send_message",
                json!({ "channel": "global", "content": format!("m{}", rng.gen_range(0..1000)) }),
            ),
            7 if !sent.is_empty() => {
                let (by, id) = sent[rng.gen_range(0..sent.len())].clone();
                let content = format!("e{}", rng.gen_range(0..1000));
                let token = &players[by].token;
                let (_, out) = app
                    .command(
                        token,
                        "edit_message",
                        &json!({ "message_id": id, "content": content }),
                    )
                    .await;
                head = head.max(out["position"].as_i64().unwrap_or(0));
                continue;
            }
            8 if !sent.is_empty() => {
                let (by, id) = sent[rng.gen_range(0..sent.len())].clone();
                let token = &players[by].token;
                let (_, out) = app
                    .command(token, "delete_message", &json!({ "message_id": id }))
                    .await;
                head = head.max(out["position"].as_i64().unwrap_or(0));
                continue;
            }
            _ => ("update_streak", json!({})),
        };
        let (status, out) = app.command(&p.token, name, &body).await;
        // Refusals (a lab completed twice, a save before a start) are part of any history.
        if status.is_success() {
            head = head.max(position(&out));
            if name == "send_message" {
                let id = out["events"][0]["data"]["message_id"].as_str().expect("id");
                sent.push((who, id.to_owned()));
            }
        }
    }
    head
}

async fn rows(pool: &PgPool, sql: &str) -> Vec<Value> {
    sqlx::query_scalar::<_, Value>(&format!(
        "SELECT coalesce(jsonb_agg(r), '[]') FROM ({sql}) r"
    ))
    .fetch_one(pool)
    .await
    .map(|v| v.as_array().cloned().unwrap_or_default())
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn pick(value: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| ((*k).to_owned(), value[*k].clone()))
            .collect(),
    )
}

/// Compares every read as of `at` with the tables replayed to `at` in schema `s`.
async fn check(app: &TestApp, token: &str, pool: &PgPool, at: i64, s: &str) {
    let get = |path: String| async move {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, header, body) = app.get(token, &format!("{path}{sep}as_of={at}")).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path} as of {at}: {body}");
        assert_eq!(
            header,
            Some(at),
            "{path}: Questlog-Position is the as_of position"
        );
        body
    };
    let board = get("/v1/leaderboard?limit=100".into()).await;
    let entries: Vec<Value> = board["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| pick(e, &["player_id", "username", "xp", "level"]))
        .collect();
    let replayed = rows(pool, &format!(
        "SELECT player_id, username, xp, level FROM {s}.rm_players ORDER BY xp DESC, xp_position, player_id"
    ))
    .await;
    assert_eq!(entries, replayed, "leaderboard as of {at}");

    let presence = get("/v1/presence".into()).await;
    let replayed = rows(pool, &format!(
        "SELECT player_id, username, current_lab, since FROM {s}.rm_presence WHERE online ORDER BY since, player_id"
    ))
    .await;
    let online: Vec<Value> = presence["online"].as_array().expect("online").clone();
    assert_eq!(
        online
            .iter()
            .map(|o| pick(o, &["player_id", "username", "current_lab"]))
            .collect::<Vec<_>>(),
        replayed
            .iter()
            .map(|o| pick(o, &["player_id", "username", "current_lab"]))
            .collect::<Vec<_>>(),
        "presence as of {at}"
    );

    for player in rows(pool, &format!("SELECT * FROM {s}.rm_players")).await {
        let id = player["player_id"].as_str().expect("id");
        let profile = get(format!("/v1/players/{id}")).await;
        let mut expected = pick(
            &player,
            &[
                "username",
                "xp",
                "level",
                "streak",
                "longest_streak",
                "online",
                "current_lab",
                "achievements",
                "completed_labs",
            ],
        );
        for key in ["achievements", "completed_labs"] {
            let mut list: Vec<String> = expected[key]
                .as_array()
                .expect("list")
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
            list.sort();
            expected[key] = json!(list);
        }
        let got = pick(
            &profile,
            &[
                "username",
                "xp",
                "level",
                "streak",
                "longest_streak",
                "online",
                "current_lab",
                "achievements",
                "completed_labs",
            ],
        );
        assert_eq!(got, expected, "profile of {id} as of {at}");

        for lab in 1..=LABS {
            let (status, _, session) = app
                .get(
                    token,
                    &format!("/v1/players/{id}/labs/lab-{lab}?as_of={at}"),
                )
                .await;
            let replayed = rows(pool, &format!(
                "SELECT furthest_step, completed_at IS NOT NULL AS completed FROM {s}.rm_lab_sessions \
                  WHERE player_id = '{id}' AND lab_id = 'lab-{lab}' AND active"
            ))
            .await;
            match replayed.first() {
                None => assert_eq!(
                    status,
                    reqwest::StatusCode::NOT_FOUND,
                    "lab-{lab} of {id} as of {at}: {session}"
                ),
                Some(r) => {
                    assert_eq!(status, reqwest::StatusCode::OK, "{session}");
                    assert_eq!(
                        session["furthest_step"], r["furthest_step"],
                        "lab-{lab} of {id} as of {at}"
                    );
                    assert_eq!(session["status"] == "completed", r["completed"] == true);
                }
            }
        }
    }

    let chat = get("/v1/channels/global/messages?limit=200".into()).await;
    let got: Vec<Value> = chat["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| pick(m, &["message_id", "content", "deleted"]))
        .collect();
    let replayed = rows(pool, &format!(
        "SELECT message_id, content, deleted FROM {s}.rm_messages WHERE channel = 'global' ORDER BY position DESC"
    ))
    .await;
    assert_eq!(got, replayed, "chat as of {at}");

    let catalog = get("/v1/labs".into()).await;
    let labs: usize = catalog["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .map(|m| m["labs"].as_array().map_or(0, Vec::len))
        .sum();
    let replayed = rows(pool, &format!("SELECT lab_id FROM {s}.rm_labs")).await;
    assert_eq!(labs, replayed.len(), "catalog as of {at}");
}

#[tokio::test]
async fn every_read_as_of_any_position_equals_a_fresh_replay_to_it() {
    let app = TestApp::spawn().await;
    let admin = app.catalog(LABS, 120).await;
    let mut head = 0;
    for seed in [7, 42] {
        head = random_history(&app, seed, 120).await;
    }
    // Wait until every projection has applied the whole log.
    app.read_at(&admin, "/v1/admin/projections", head).await;
    let pool = app.db.pool(2);

    let mut rng = StdRng::seed_from_u64(1);
    let mut points: Vec<i64> = (0..12).map(|_| rng.gen_range(1..=head)).collect();
    points.extend([1, 2, head]);
    let mut built: HashMap<i64, String> = HashMap::new();
    for at in points {
        let schema = built
            .entry(at)
            .or_insert_with(|| format!("questlog_asof_{at}"))
            .clone();
        let mut out = Vec::new();
        questlog::admin::rebuild::replay(
            &app.db.url,
            "all",
            Some(questlog::admin::rebuild::Point::Position(at)),
            false,
            true,
            &mut out,
        )
        .await
        .expect("replay to a point");
        // An admin sees every lab session.
        check(&app, &admin, &pool, at, &schema).await;
    }

    // A time stands for the last event recorded at or before it.
    let (at, time): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT max(position), recorded_at FROM events WHERE position <= $1 GROUP BY recorded_at \
         ORDER BY recorded_at DESC LIMIT 1",
    )
    .bind(head / 2)
    .fetch_one(&pool)
    .await
    .expect("an event");
    // Written with an offset, unencoded, as a hand-written URL would have it.
    let by_time = format!("/v1/leaderboard?limit=100&as_of={}", time.to_rfc3339());
    let (status, header, by_time) = app.get(&admin, &by_time).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{by_time}");
    assert_eq!(header, Some(at));
    let (_, _, by_position) = app
        .get(&admin, &format!("/v1/leaderboard?limit=100&as_of={at}"))
        .await;
    assert_eq!(by_time, by_position);
    pool.close().await;
}
