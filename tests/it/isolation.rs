//! One bad command never fails another: the writer commits concurrent commands together, and a
//! command refused at the edge or by the database is answered alone while the rest of its batch
//! commits.
//!
//! Each test holds the log's append lock ([`AppendGate`]) while a first command waits inside its
//! append, sends the guilty commands and thirty innocent ones of other players meanwhile, and
//! opens the gate once every one of them is queued in the writer (or already answered): they are
//! then decided in one batch.

use questlog_tests::{event_count, wait_until, AppendGate, Player, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// A command ready to go: which, with what body, and from whom.
struct Prepared {
    what: String,
    request: reqwest::RequestBuilder,
}

/// A command on its way.
struct Sent {
    what: String,
    task: JoinHandle<(StatusCode, Value)>,
}

fn send(app: &TestApp, token: &str, name: &str, body: Value) -> Prepared {
    let request = app
        .client
        .post(app.url(&format!("/v1/commands/{name}")))
        .bearer_auth(token)
        .json(&body);
    Prepared {
        what: format!("{name} {body}"),
        request,
    }
}

impl Prepared {
    fn go(self) -> Sent {
        let request = self.request;
        Sent {
            what: self.what,
            task: tokio::spawn(async move {
                let response = request.send().await.expect("request sent");
                let status = response.status();
                (status, response.json().await.expect("a JSON answer"))
            }),
        }
    }
}

/// The thirty innocent commands: other players' streaks, completions and time zones.
fn innocents(app: &TestApp, players: &[Player]) -> Vec<Prepared> {
    players
        .iter()
        .enumerate()
        .map(|(i, p)| match i % 3 {
            0 => send(app, &p.token, "update_streak", json!({})),
            1 => send(app, &p.token, "complete_lab", json!({ "lab_id": "lab-1" })),
            _ => send(
                app,
                &p.token,
                "set_timezone",
                json!({ "timezone": "Europe/Berlin" }),
            ),
        })
        .collect()
}

/// What every command of the batch was answered, the guilty ones first.
struct Batch {
    guilty: Vec<(String, StatusCode, Value)>,
    innocent: Vec<(String, StatusCode, Value)>,
}

/// Sends `guilty` and `innocent` while the writer is held inside the append of a first command
/// (`blocker`'s streak), and lets them go once every one is queued or answered.
async fn in_one_batch(
    app: &TestApp,
    blocker: &Player,
    guilty: Vec<Prepared>,
    innocent: Vec<Prepared>,
) -> Batch {
    let writer = app.writer.clone().expect("the app runs the command API");
    let mut gate = AppendGate::close(&app.db).await;
    let first = send(app, &blocker.token, "update_streak", json!({})).go();
    gate.wait_for_an_append().await;
    let guilty: Vec<Sent> = guilty.into_iter().map(Prepared::go).collect();
    let innocent: Vec<Sent> = innocent.into_iter().map(Prepared::go).collect();
    let expected = guilty.len() + innocent.len();
    wait_until(
        "every command queued behind the held append, or answered",
        || {
            let answered = guilty
                .iter()
                .chain(&innocent)
                .filter(|s| s.task.is_finished())
                .count();
            writer.queued() + answered >= expected
        },
    )
    .await;
    gate.open().await;
    let (status, out) = first.task.await.expect("blocker");
    assert_eq!(status, StatusCode::OK, "the first command: {out}");
    Batch {
        guilty: answers(guilty).await,
        innocent: answers(innocent).await,
    }
}

async fn answers(sent: Vec<Sent>) -> Vec<(String, StatusCode, Value)> {
    let mut out = Vec::with_capacity(sent.len());
    for s in sent {
        let (status, body) = s.task.await.expect("request task");
        out.push((s.what, status, body));
    }
    out
}

/// Every innocent command succeeded; the number of events they appended.
#[track_caller]
fn all_succeeded(innocent: &[(String, StatusCode, Value)]) -> i64 {
    let failed: Vec<String> = innocent
        .iter()
        .filter(|(_, status, _)| *status != StatusCode::OK)
        .map(|(what, status, out)| format!("{what} -> {status} {out}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} innocent commands failed beside the guilty one(s):\n{}",
        failed.len(),
        innocent.len(),
        failed.join("\n")
    );
    innocent
        .iter()
        .map(|(_, _, out)| i64::try_from(out["events"].as_array().map_or(0, Vec::len)).unwrap_or(0))
        .sum()
}

async fn players(app: &TestApp, prefix: &str, n: usize) -> Vec<Player> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(app.player(&format!("{prefix}{i}")).await);
    }
    out
}

#[tokio::test]
async fn a_nul_in_any_free_text_field_is_refused_with_its_code_and_the_thirty_commands_batched_beside_it_succeed(
) {
    let app = TestApp::spawn().await;
    let admin = app.catalog(1, 100).await;
    let blocker = app.player("blocker").await;
    let mallory = app.player("mallory").await;
    app.ok(&mallory.token, "start_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let sent = app
        .ok(
            &mallory.token,
            "send_message",
            json!({ "channel": "global", "content": "hello" }),
        )
        .await;
    let message = sent["events"][0]["data"]["message_id"].clone();
    let others = players(&app, "p", 30).await;
    let before = event_count(&app.db).await;

    let save = |vfs: Value| json!({ "lab_id": "lab-1", "current_step": 1, "vfs_snapshot": vfs });
    let guilty: Vec<(&str, Prepared)> = vec![
        (
            "invalid_title",
            send(
                &app,
                &admin,
                "define_module",
                json!({ "module": 2, "title": "Pipes\u{0}" }),
            ),
        ),
        (
            "invalid_title",
            send(
                &app,
                &admin,
                "define_lab",
                json!({ "lab_id": "lab-9", "module": 1, "title": "\u{0}", "xp": 10 }),
            ),
        ),
        (
            "invalid_content",
            send(
                &app,
                &mallory.token,
                "send_message",
                json!({ "channel": "global", "content": "hi\u{0}there" }),
            ),
        ),
        (
            "invalid_content",
            send(
                &app,
                &mallory.token,
                "edit_message",
                json!({ "message_id": message, "content": "\u{0}hello" }),
            ),
        ),
        (
            "invalid_reason",
            send(
                &app,
                &admin,
                "revoke_xp",
                json!({ "player_id": mallory.id, "xp": 1, "reason": "cheat\u{0}" }),
            ),
        ),
        (
            "invalid_vfs",
            send(
                &app,
                &mallory.token,
                "save_lab_state",
                save(json!({ "/home/m/a\u{0}b": "text" })),
            ),
        ),
        (
            "invalid_vfs",
            send(
                &app,
                &mallory.token,
                "save_lab_state",
                save(json!({ "/home/m": { "dir": { "f": "x\u{0}y" } } })),
            ),
        ),
        (
            "invalid_vfs",
            send(
                &app,
                &mallory.token,
                "save_lab_state",
                save(json!({ "/home/m/list": ["fine", { "deep\u{0}": 1 }] })),
            ),
        ),
    ];
    let (codes, guilty): (Vec<&str>, Vec<Prepared>) = guilty.into_iter().unzip();
    let batch = in_one_batch(&app, &blocker, guilty, innocents(&app, &others)).await;

    let appended = all_succeeded(&batch.innocent);
    for (code, (what, status, out)) in codes.iter().zip(&batch.guilty) {
        assert_eq!(
            (*status, out["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(*code)),
            "{what}: {out}"
        );
    }
    // The first command appended one event (a first streak); the guilty ones nothing.
    assert_eq!(event_count(&app.db).await, before + 1 + appended);
}

/// A trigger of this test's own database that refuses any event whose data holds `marker`: a real
/// refusal by Postgres, for a command the edge lets through.
async fn refuse_events_containing(app: &TestApp, marker: &str) {
    let pool = app.db.pool(1);
    sqlx::query(&format!(
        "CREATE FUNCTION test_refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.data::text LIKE '%{marker}%' THEN
                 RAISE EXCEPTION 'this test refuses the event' USING ERRCODE = 'check_violation';
             END IF;
             RETURN NEW;
         END $$"
    ))
    .execute(&pool)
    .await
    .expect("create the trigger's function");
    sqlx::query(
        "CREATE TRIGGER test_refuse_marked BEFORE INSERT ON events \
         FOR EACH ROW EXECUTE FUNCTION test_refuse_marked()",
    )
    .execute(&pool)
    .await
    .expect("create the trigger");
    pool.close().await;
}

#[tokio::test]
async fn a_command_the_database_refuses_fails_alone_and_the_thirty_commands_batched_beside_it_succeed(
) {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let blocker = app.player("blocker").await;
    let mallory = app.player("mallory").await;
    let others = players(&app, "p", 30).await;
    app.ok(
        &app.admin_token(),
        "define_leaderboard",
        json!({ "leaderboard": "scores", "title": "Scores", "order": "desc", "operator": "best" }),
    )
    .await;
    refuse_events_containing(&app, "refuse-me").await;
    let before = event_count(&app.db).await;

    // Marked in a field stored as sent (a message's text is sealed, so the database never sees
    // it).
    let guilty = vec![send(
        &app,
        &mallory.token,
        "submit_score",
        json!({ "leaderboard": "scores", "score": 1, "metadata": { "note": "please refuse-me" } }),
    )];
    // The guilty command's sender has an innocent command in the same batch too.
    let mut innocent = innocents(&app, &others);
    innocent.push(send(&app, &mallory.token, "update_streak", json!({})));
    let batch = in_one_batch(&app, &blocker, guilty, innocent).await;

    let appended = all_succeeded(&batch.innocent);
    let (what, status, out) = &batch.guilty[0];
    assert_eq!(
        (*status, out["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("internal")),
        "{what}: {out}"
    );
    assert_eq!(event_count(&app.db).await, before + 1 + appended);

    // The writer goes on committing batches afterwards.
    let out = app
        .ok(
            &mallory.token,
            "send_message",
            json!({ "channel": "global", "content": "an ordinary message" }),
        )
        .await;
    assert_eq!(out["events"][0]["type"], "message_sent");
}
