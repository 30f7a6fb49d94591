//! One log, one history: questlog never serves data that is not in its own database's log — not
//! from another deployment's JetStream stream on the same prefix, not from a stream ahead of a
//! database restored from a backup — and a stream that lost its newest messages is republished.

use std::time::Duration;

use questlog::app::Hooks;
use questlog_tests::faults::NatsServer;
use questlog_tests::{position, store_args, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

/// Waits (up to 20 s) until `/readyz` answers `status`; returns its body.
async fn readyz_becomes(app: &TestApp, status: StatusCode) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (now, body) = app.readyz().await;
        if now == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {now}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn js(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.expect("NATS"))
}

/// The number of messages in a test's stream, and the position of the newest.
async fn stream_end(url: &str, prefix: &str) -> (u64, i64) {
    let names = questlog_bus::Names::new(prefix);
    let state = questlog_bus::lineage::stream_state(&js(url).await, &names)
        .await
        .expect("stream state");
    let Some(state) = state else {
        return (0, 0);
    };
    let mut stream = js(url)
        .await
        .get_stream(names.events_stream())
        .await
        .expect("stream");
    let messages = stream.info().await.expect("info").state.messages;
    (messages, state.tail.map_or(0, |t| t.position))
}

/// `questlog repair` on a database and prefix: what it found, and whether it did it.
async fn repair(db: &TestDb, yes: bool) -> anyhow::Result<questlog::admin::repair::Repair> {
    let nats = async_nats::connect(questlog_tests::nats_url())
        .await
        .expect("NATS");
    let mut out = Vec::new();
    questlog::admin::repair::repair(
        &db.url,
        &nats,
        &questlog_bus::Names::new(&db.nats_prefix),
        yes,
        false,
        &mut out,
    )
    .await
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("query")
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_new_database_behind_another_deployments_stream_serves_nothing_of_it_until_repaired() {
    // Deployment A fills the stream of prefix P, then stops; its stream stays on the server.
    let a = TestApp::spawn().await;
    a.catalog(2, 100).await;
    let ada = a.player("ada").await;
    let out = a
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    a.read_at(&ada.token, "/v1/players/me", position(&out))
        .await;
    let a_db = a.stop().await;
    let (a_messages, a_end) = stream_end(&questlog_tests::nats_url(), &a_db.nats_prefix).await;
    assert_eq!(a_end, position(&out), "A's stream holds A's whole log");

    // Deployment B: a new, empty database on the same NATS prefix.
    let mut b_db = TestDb::create().await;
    b_db.nats_prefix.clone_from(&a_db.nats_prefix);
    let b = TestApp::spawn_on(b_db).await;
    let body = readyz_becomes(&b, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(code(&body), "log_mismatch", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("_EVENTS") && detail.contains("questlog repair"),
        "the answer names the stream and the remedy: {detail}"
    );

    // Reads refuse rather than answer; the write side goes on accepting B's own commands.
    let admin = b.admin_token();
    let (status, _, body) = b.get(&admin, "/v1/labs").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "log_mismatch")
    );
    b.ok(
        &admin,
        "define_module",
        json!({ "module": 7, "title": "B's own" }),
    )
    .await;
    let out = b
        .ok(
            &admin,
            "define_lab",
            json!({ "lab_id": "b-lab", "module": 7, "title": "B's lab", "xp": 5 }),
        )
        .await;
    let b_head = position(&out);
    let bob = b.player("bob").await;

    // Nothing of A's history reached B's read models, and B published nothing into A's stream.
    // (Positions 1.. of A's stream are positions B's log also has: only the ids differ.)
    let b_db_ref = &b.db;
    assert_eq!(
        scalar(
            b_db_ref,
            "SELECT count(*) FROM rm_labs WHERE lab_id LIKE 'lab-%'"
        )
        .await,
        0,
        "A's labs are not in B's read models"
    );
    assert_eq!(
        scalar(
            b_db_ref,
            "SELECT count(*) FROM rm_players WHERE username = 'ada'"
        )
        .await,
        0
    );
    assert_eq!(
        stream_end(&questlog_tests::nats_url(), &a_db.nats_prefix).await,
        (a_messages, a_end),
        "A's stream is untouched"
    );

    // The operator stops B; repair says what it would do without --yes, and does it with it.
    let b_db = b.stop().await;
    let plan = repair(&b_db, false).await.expect("repair plan");
    assert!(!plan.done && !plan.found.is_empty(), "{plan:?}");
    assert_eq!(
        stream_end(&questlog_tests::nats_url(), &a_db.nats_prefix).await,
        (a_messages, a_end),
        "a plan changes nothing"
    );
    let done = repair(&b_db, true).await.expect("repair");
    assert!(done.done, "{done:?}");

    // B starts again, republishes its own log and serves exactly it.
    let b = TestApp::spawn_on(b_db).await;
    readyz_becomes(&b, StatusCode::OK).await;
    let labs = b.read_at(&bob.token, "/v1/labs", b_head).await;
    assert_eq!(
        labs["modules"],
        json!([{ "module": 7, "title": "B's own", "requires": [],
                 "labs": [{ "lab_id": "b-lab", "title": "B's lab", "xp": 5 }] }]),
        "B's catalog, and only B's: {labs}"
    );
    let head = scalar(&b.db, "SELECT max(position) FROM events").await;
    b.caught_up(head).await;
    let (drifted, checks) = b.verify().await;
    assert!(!drifted, "{checks}");
    let again = repair(&b.db, false).await;
    assert!(
        again.as_ref().is_ok_and(|r| r.found.is_empty()),
        "{again:?}"
    );
    drop(a_db);
}

/// `pg_dump`/`pg_restore` of a test database, as an operator would run them.
fn run(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} must be installed (PostgreSQL's client): {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

#[tokio::test]
async fn a_database_restored_from_an_earlier_backup_serves_only_its_own_log_after_repair() {
    let app = TestApp::spawn().await;
    app.catalog(3, 100).await;
    let ada = app.player("ada").await;
    let before = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.read_at(&ada.token, "/v1/players/me", position(&before))
        .await;
    let dump = tempfile::NamedTempFile::new().expect("temp file");
    let dump_path = dump.path().to_str().expect("path").to_owned();
    run(
        "pg_dump",
        &["--format=custom", "--file", &dump_path, &app.db.url],
    );
    // After the backup: events the restored database will not have.
    let lost = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    let me = app
        .read_at(&ada.token, "/v1/players/me", position(&lost))
        .await;
    assert_eq!(me["xp"], 200);
    let db = app.stop().await;

    // The restore: the database dropped and recreated from the dump.
    {
        let mut admin = sqlx::PgConnection::connect(&questlog_tests::admin_database_url())
            .await
            .expect("connect");
        for sql in [
            format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name),
            format!("CREATE DATABASE \"{}\"", db.name),
        ] {
            sqlx::query(&sql)
                .execute(&mut admin)
                .await
                .expect("recreate");
        }
    }
    run("pg_restore", &["--dbname", &db.url, &dump_path]);

    // questlog on the restored database refuses the stream that is ahead of it.
    let app = TestApp::spawn_on(db).await;
    let body = readyz_becomes(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(code(&body), "log_mismatch", "{body}");
    let (status, _, body) = app.get(&ada.token, "/v1/players/me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "log_mismatch")
    );
    // A command on the restored log is acknowledged (and must survive the repair).
    let after = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-3" }))
        .await;
    assert_eq!(
        scalar(&app.db, "SELECT xp FROM rm_players").await,
        100,
        "the read models never folded the events the backup does not have"
    );

    let db = app.stop().await;
    let done = repair(&db, true).await.expect("repair");
    assert!(done.done, "{done:?}");
    let app = TestApp::spawn_on(db).await;
    readyz_becomes(&app, StatusCode::OK).await;
    let me = app
        .read_at(&ada.token, "/v1/players/me", position(&after))
        .await;
    assert_eq!(me["xp"], 200, "lab-1 from the backup, lab-3 after it: {me}");
    assert_eq!(me["completed_labs"], json!(["lab-1", "lab-3"]), "{me}");
    let head = scalar(&app.db, "SELECT max(position) FROM events").await;
    app.caught_up(head).await;
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
    let (messages, end) = stream_end(&questlog_tests::nats_url(), &app.db.nats_prefix).await;
    assert_eq!(
        (i64::try_from(messages).expect("count"), end),
        (scalar(&app.db, "SELECT count(*) FROM events").await, head),
        "the new stream is exactly the restored log and what came after"
    );
}

/// The newest block file of a stream's JetStream store.
fn newest_block(store: &std::path::Path, stream: &str) -> std::path::PathBuf {
    let msgs = store
        .join("jetstream")
        .join("$G")
        .join("streams")
        .join(stream)
        .join("msgs");
    let mut blocks: Vec<_> = std::fs::read_dir(&msgs)
        .unwrap_or_else(|e| panic!("{}: {e}", msgs.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "blk"))
        .collect();
    blocks.sort();
    blocks.pop().expect("a block file")
}

#[tokio::test]
async fn a_stream_that_lost_its_newest_messages_is_republished_from_the_log() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut store = store_args(&db);
    store.nats_url = nats.url();
    let app = TestApp::spawn_custom(db, store, Hooks::default()).await;
    app.catalog(12, 10).await;
    let ada = app.player("ada").await;
    let last = app.complete_labs(&ada.token, 1..=12).await;
    app.caught_up(last).await;
    assert_eq!(stream_end(&nats.url(), &app.db.nats_prefix).await.1, last);

    // A power loss within the fsync interval: the newest part of the store is gone.
    nats.stop().await;
    let names = questlog_bus::Names::new(&app.db.nats_prefix);
    let block = newest_block(nats.store_dir(), &names.events_stream());
    let length = std::fs::metadata(&block).expect("block").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&block)
        .expect("open block");
    file.set_len(length / 2).expect("truncate");
    drop(file);
    for entry in std::fs::read_dir(block.parent().expect("dir")).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "idx") {
            let _ = std::fs::remove_file(path);
        }
    }
    nats.resume().await;
    let (_, end) = stream_end(&nats.url(), &app.db.nats_prefix).await;
    assert!(
        end < last,
        "the store lost its newest messages ({end} < {last})"
    );

    // The relay notices, without any new command, and republishes exactly what was lost.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let count = scalar(&app.db, "SELECT count(*) FROM events").await;
    loop {
        let (messages, end) = stream_end(&nats.url(), &app.db.nats_prefix).await;
        if (i64::try_from(messages).expect("count"), end) == (count, last) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not republished: {messages} messages ending at {end}, the log has {count} ending at {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every event in order, once: stream sequence n carries the log's n-th event.
    let client = js(&nats.url()).await;
    let stream = client
        .get_stream(names.events_stream())
        .await
        .expect("stream");
    let positions: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&app.db.pool(1))
        .await
        .expect("positions");
    for (i, expected) in positions.iter().enumerate() {
        let message = stream
            .get_raw_message(u64::try_from(i + 1).expect("sequence"))
            .await
            .expect("message");
        let event: Value = serde_json::from_slice(&message.payload).expect("JSON");
        assert_eq!(event["position"].as_i64(), Some(*expected));
    }

    // And the deployment carries on.
    let out = app.ok(&ada.token, "update_streak", json!({})).await;
    app.caught_up(position(&out)).await;
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "{checks}");
    readyz_becomes(&app, StatusCode::OK).await;
}

/// The projector's check of a batch against the log stays a probe of the log's key per event as
/// the log grows, however the statement was planned: a plan made once on a nearly empty log (the
/// generic plan Postgres keeps for a prepared statement) scanned the whole log for every batch.
#[tokio::test]
async fn a_batch_is_checked_against_the_log_by_probes_not_scans_as_the_log_grows() {
    let db = TestDb::create().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    // The worst case: the plan made at the first run is kept whatever the log becomes.
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .expect("set");
    sqlx::query("INSERT INTO projection_checkpoints (projection) VALUES ('probe')")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    let batch = grow_log(&mut conn, 1, 3).await;
    let (_, foreign) = questlog_store::lineage::lock_checkpoint(&mut conn, "probe", &batch)
        .await
        .expect("checked");
    assert_eq!(foreign, None);

    let batch = grow_log(&mut conn, 4, 100_000).await;
    let mut tx = conn.begin().await.expect("begin");
    let (_, foreign) = questlog_store::lineage::lock_checkpoint(&mut tx, "probe", &batch)
        .await
        .expect("checked");
    assert_eq!(foreign, None);
    let scans: i64 = sqlx::query_scalar(
        "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'events'",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("the transaction's scans");
    assert_eq!(scans, 0, "the check scanned the log");
    // An event this log does not hold is still found.
    let stranger = (batch[0].0, uuid::Uuid::new_v4());
    let (_, foreign) = questlog_store::lineage::lock_checkpoint(&mut tx, "probe", &[stranger])
        .await
        .expect("checked");
    assert_eq!(foreign, Some(stranger));
}

/// Appends events `from..=to` to the log on `conn` and reads its newest two, as a batch.
async fn grow_log(conn: &mut sqlx::PgConnection, from: i64, to: i64) -> Vec<(i64, uuid::Uuid)> {
    sqlx::query(&format!(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, \
                             data, metadata) \
         SELECT gen_random_uuid(), 'probe-' || g, 1, 'probe', 1, '{{}}', '{{}}' \
           FROM generate_series({from}, {to}) g"
    ))
    .execute(&mut *conn)
    .await
    .expect("appending to the log");
    sqlx::query_as("SELECT position, event_id FROM events ORDER BY position DESC LIMIT 2")
        .fetch_all(&mut *conn)
        .await
        .expect("events")
}
