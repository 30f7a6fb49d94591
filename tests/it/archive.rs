//! `questlog export` and `questlog import`: a log moved to another database exactly, serving the
//! same reads there, and every damaged file or non-empty target refused with nothing written.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use questlog::admin::archive::{self, ArchiveSummary, ImportOutcome};
use questlog_tests::{event_count, position, Player, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

type EventRow = (
    i64,
    Uuid,
    String,
    i64,
    String,
    i32,
    String,
    String,
    DateTime<Utc>,
);
type WorkingCopyRow = (Uuid, String, String, i32, DateTime<Utc>);
type KeyRow = (Uuid, String, String, Uuid, Vec<i64>, i64, DateTime<Utc>);

/// Everything the write side keeps, row by row (`jsonb` as text, so that equal means identical).
#[derive(Debug, PartialEq)]
struct WriteSide {
    events: Vec<EventRow>,
    working_copies: Vec<WorkingCopyRow>,
    presence_seen: Vec<(Uuid, DateTime<Utc>)>,
    idempotency_keys: Vec<KeyRow>,
}

async fn write_side(db: &TestDb) -> WriteSide {
    let pool = db.pool(1);
    let side = WriteSide {
        events: sqlx::query_as(
            "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, \
                    data::text, metadata::text, recorded_at FROM events ORDER BY position",
        )
        .fetch_all(&pool)
        .await
        .expect("events"),
        working_copies: sqlx::query_as(
            "SELECT player_id, lab_id, vfs_snapshot::text, current_step, saved_at \
               FROM lab_workspaces ORDER BY player_id, lab_id",
        )
        .fetch_all(&pool)
        .await
        .expect("working copies"),
        presence_seen: sqlx::query_as(
            "SELECT player_id, last_seen FROM presence_seen ORDER BY player_id",
        )
        .fetch_all(&pool)
        .await
        .expect("presence times"),
        idempotency_keys: sqlx::query_as(
            "SELECT identity, key, request_hash, command_id, positions, head, created_at \
               FROM idempotency_keys ORDER BY identity, key",
        )
        .fetch_all(&pool)
        .await
        .expect("idempotency keys"),
    };
    pool.close().await;
    side
}

/// A command sent with an `Idempotency-Key`: the status, whether it was replayed, the body.
async fn idempotent(
    app: &TestApp,
    player: &Player,
    key: &str,
    name: &str,
    body: &Value,
) -> (StatusCode, bool, Value) {
    let response = app
        .client
        .post(app.url(&format!("/v1/commands/{name}")))
        .bearer_auth(&player.token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (status, replayed, response.json().await.expect("JSON body"))
}

/// An app with players, completed labs, a lab session with a working copy, a heartbeat, chat
/// (public, direct, edited) and an idempotent command; returns its players and the head.
async fn populated() -> (TestApp, Player, Player, i64) {
    let app = TestApp::spawn().await;
    app.catalog(3, 100).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    app.ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    let (status, _, _) = idempotent(
        &app,
        &bob,
        "bob-lab-1",
        "complete_lab",
        &json!({ "lab_id": "lab-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    app.ok(&ada.token, "start_lab", json!({ "lab_id": "lab-3" }))
        .await;
    for (step, notes) in [(2, "ls -la"), (1, "ls -la\ncd -")] {
        app.ok(
            &ada.token,
            "save_lab_state",
            json!({
                "lab_id": "lab-3",
                "current_step": step,
                "vfs_snapshot": {"/home/ada/notes.txt": notes, "/home/ada/n": {"x": 1.5}},
            }),
        )
        .await;
    }
    app.ok(&bob.token, "heartbeat", json!({ "current_lab": "lab-1" }))
        .await;
    app.ok(
        &ada.token,
        "send_message",
        json!({ "channel": "global", "content": "hello" }),
    )
    .await;
    let dm = app
        .ok(
            &bob.token,
            "send_message",
            json!({ "channel": format!("dm:{}", ada.id), "content": "hi ada" }),
        )
        .await;
    let message = dm["events"][0]["data"]["message_id"].clone();
    let last = app
        .ok(
            &bob.token,
            "edit_message",
            json!({ "message_id": message, "content": "hi Ada" }),
        )
        .await;
    (app, ada, bob, position(&last))
}

async fn export_to(app: &TestApp, path: &Path) -> ArchiveSummary {
    let pool = app.db.pool(2);
    let mut out = Vec::new();
    let summary = archive::export(&pool, path, false, false, &mut out)
        .await
        .expect("export");
    pool.close().await;
    summary
}

async fn import_into(db: &TestDb, path: &Path, yes: bool) -> anyhow::Result<ImportOutcome> {
    let pool = db.pool(2);
    let outcome = archive::import(&pool, path, yes, false, false, &mut Vec::new()).await;
    pool.close().await;
    outcome
}

#[tokio::test]
async fn an_imported_log_is_identical_serves_the_same_reads_and_continues_after_its_head() {
    let (app, ada, bob, head) = populated().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("questlog.archive.gz");

    let exported = export_to(&app, &file).await;
    let source = write_side(&app.db).await;
    assert_eq!(exported.counts.events, source.events.len() as u64);
    assert_eq!(exported.counts.head, head);
    assert_eq!(
        (
            exported.counts.beside("working_copies"),
            exported.counts.beside("presence_seen"),
            exported.counts.idempotency_keys
        ),
        (1, 1, 1)
    );
    assert_eq!(
        exported.bytes,
        std::fs::metadata(&file).expect("file").len()
    );

    let target = TestDb::create().await;
    let Ok(ImportOutcome::Imported(imported)) = import_into(&target, &file, true).await else {
        panic!("the import succeeds");
    };
    assert_eq!(imported.counts, exported.counts);
    assert_eq!(imported.sha256, exported.sha256);
    assert_eq!(write_side(&target).await, source);

    // The imported app republishes the log to its own NATS names and its projectors replay it.
    let copy = TestApp::spawn_on(target).await;
    for path in [
        format!("/v1/players/{}", ada.id),
        format!("/v1/players/{}", bob.id),
        "/v1/leaderboard?limit=10".to_owned(),
        "/v1/presence".to_owned(),
        "/v1/labs".to_owned(),
        "/v1/players/me/labs/lab-3".to_owned(),
        "/v1/channels/global/messages".to_owned(),
        format!("/v1/channels/dm:{}/messages", bob.id),
    ] {
        let original = app.read_at(&ada.token, &path, head).await;
        assert_eq!(
            copy.read_at(&ada.token, &path, head).await,
            original,
            "{path}"
        );
    }
    let session = copy
        .read_at(&ada.token, "/v1/players/me/labs/lab-3", head)
        .await;
    assert_eq!(
        session["vfs_snapshot"]["/home/ada/notes.txt"],
        "ls -la\ncd -"
    );
    // Every read model the target's projectors rebuilt equals a replay of the imported log.
    copy.read_at(&copy.admin_token(), "/v1/admin/projections", head)
        .await;
    let mut report = Vec::new();
    let drifted = questlog::admin::rebuild::verify(&copy.db.url, true, &mut report)
        .await
        .expect("verify runs");
    assert!(!drifted, "{}", String::from_utf8_lossy(&report));

    // A retry that crosses the move gets its first answer, not a second execution.
    let (status, replayed, _) = idempotent(
        &copy,
        &bob,
        "bob-lab-1",
        "complete_lab",
        &json!({ "lab_id": "lab-1" }),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::OK, true));

    let next = copy
        .ok(&bob.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    assert_eq!(next["events"][0]["position"], head + 1);
    let profile = copy
        .read_at(&bob.token, "/v1/players/me", position(&next))
        .await;
    assert_eq!(profile["xp"], 200);
}

#[tokio::test]
async fn an_import_without_yes_verifies_the_file_says_what_it_would_do_and_writes_nothing() {
    let (app, _, _, head) = populated().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("questlog.archive.gz");
    let exported = export_to(&app, &file).await;

    let target = TestDb::create().await;
    let pool = target.pool(2);
    let mut out = Vec::new();
    let outcome = archive::import(&pool, &file, false, false, false, &mut out)
        .await
        .expect("a dry run");
    pool.close().await;
    let said = String::from_utf8(out).expect("UTF-8");
    assert!(
        said.contains(&format!(
            "would import {} events (head {head})",
            exported.counts.events
        )),
        "{said}"
    );
    assert!(said.contains(&file.display().to_string()), "{said}");
    assert!(
        said.contains(&format!("into database {}", target.name)),
        "{said}"
    );
    assert!(said.contains("nothing was written"), "{said}");
    assert!(matches!(outcome, ImportOutcome::Planned(s) if s.sha256 == exported.sha256));
    assert_eq!(event_count(&target).await, 0);

    // An export never overwrites a file.
    let pool = app.db.pool(1);
    let again = archive::export(&pool, &file, false, false, &mut Vec::new()).await;
    assert!(again
        .expect_err("refused")
        .to_string()
        .contains("already exists"),);
    assert_eq!(
        std::fs::metadata(&file).expect("file").len(),
        exported.bytes
    );
}

#[tokio::test]
async fn an_import_into_a_database_whose_log_is_not_empty_is_refused_and_writes_nothing() {
    let (app, _, _, _) = populated().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("questlog.archive.gz");
    export_to(&app, &file).await;

    let other = TestApp::spawn().await;
    other.catalog(1, 50).await;
    let before = write_side(&other.db).await;
    for yes in [false, true] {
        let refused = import_into(&other.db, &file, yes)
            .await
            .expect_err("refused");
        assert!(
            format!("{refused:#}").contains("already has an event log"),
            "{refused:#}"
        );
    }
    assert_eq!(write_side(&other.db).await, before);
}

/// The lines of an archive.
fn lines_of(path: &Path) -> Vec<String> {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(path).expect("archive"))
        .read_to_string(&mut text)
        .expect("gzip of UTF-8");
    text.lines().map(str::to_owned).collect()
}

/// Writes `lines` as an archive, with the trailer's checksum recomputed when `rehash`.
fn write_lines(path: &Path, mut lines: Vec<String>, rehash: bool) {
    if rehash {
        let mut hasher = Sha256::new();
        for line in &lines[..lines.len() - 1] {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        let last = lines.last_mut().expect("a trailer");
        let mut trailer: Value = serde_json::from_str(last).expect("JSON trailer");
        trailer["trailer"]["sha256"] = json!(hex::encode(hasher.finalize()));
        *last = trailer.to_string();
    }
    let mut gz = GzEncoder::new(
        std::fs::File::create(path).expect("file"),
        flate2::Compression::default(),
    );
    for line in &lines {
        writeln!(gz, "{line}").expect("write");
    }
    gz.finish().expect("gzip");
}

#[tokio::test]
async fn a_damaged_archive_is_refused_whole_and_the_target_log_stays_empty() {
    let (app, _, _, _) = populated().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.gz");
    export_to(&app, &good).await;
    let bytes = std::fs::read(&good).expect("archive");
    let lines = lines_of(&good);
    let damaged = |name: &str| -> PathBuf { dir.path().join(name) };

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0xff;
    std::fs::write(damaged("flipped"), flipped).expect("write");
    std::fs::write(damaged("truncated"), &bytes[..bytes.len() * 2 / 3]).expect("write");
    let mut edited = lines.clone();
    let trailer = edited.last_mut().expect("trailer");
    let mut parsed: Value = serde_json::from_str(trailer).expect("JSON");
    parsed["trailer"]["sha256"] = json!("0".repeat(64));
    *trailer = parsed.to_string();
    write_lines(&damaged("checksum"), edited, false);
    let mut edited = lines.clone();
    edited[1] = lines[1].replace("\"position\":1,", "\"position\":1,}");
    write_lines(&damaged("bad_line"), edited, true);
    let mut edited = lines.clone();
    edited.remove(3);
    write_lines(&damaged("missing_event"), edited, true);
    let mut edited = lines.clone();
    edited.insert(2, lines[1].replace("\"position\":1,", "\"position\":0,"));
    write_lines(&damaged("out_of_order"), edited, true);
    let mut edited = lines.clone();
    edited.push(lines[1].clone());
    write_lines(&damaged("after_trailer"), edited, false);
    let mut edited = lines.clone();
    edited.pop();
    write_lines(&damaged("no_trailer"), edited, false);

    let target = TestDb::create().await;
    for (name, says) in [
        ("flipped", "damaged or incomplete"),
        ("truncated", "damaged or incomplete"),
        ("checksum", "checksum mismatch"),
        ("bad_line", "line 2: not a line of this format"),
        ("missing_event", "count mismatch"),
        (
            "out_of_order",
            "line 3: event at position 0 after position 1",
        ),
        ("after_trailer", "data after the trailer"),
        ("no_trailer", "without its trailer: it is truncated"),
    ] {
        for yes in [false, true] {
            let refused = import_into(&target, &damaged(name), yes)
                .await
                .expect_err(name);
            let message = format!("{refused:#}");
            assert!(message.contains(says), "{name}: {message}");
            assert!(
                message.contains("nothing was imported"),
                "{name}: {message}"
            );
        }
        assert_eq!(event_count(&target).await, 0, "{name}");
        assert_eq!(
            write_side(&target).await.working_copies,
            Vec::new(),
            "{name}"
        );
    }

    // The intact file still goes in.
    assert!(matches!(
        import_into(&target, &good, true).await,
        Ok(ImportOutcome::Imported(_))
    ));
    assert_eq!(write_side(&target).await, write_side(&app.db).await);
}

/// An archive as `questlog export` wrote it before modules registered their archive sections:
/// every line byte for byte as that code framed it (its structs' field order, chrono's times),
/// the working copy and the presence time in their own sections before the idempotency key.
fn archive_of_the_fixed_layout() -> Vec<String> {
    let ada = "0192d3a4-0000-7000-8000-00000000000a";
    let header = r#"{"header":{"format":"questlog-archive","version":1,"exported_at":"2026-12-01T09:30:00.123456Z","source":"questlog","counts":{"events":2,"head":2,"working_copies":1,"presence_seen":1,"idempotency_keys":1}}}"#;
    let registered = format!(
        r#"{{"event":{{"position":1,"event_id":"0192d3a4-0000-7000-8000-000000000101","stream_id":"player-{ada}","stream_version":1,"event_type":"player_registered","schema_version":1,"data":{{"player_id": "{ada}", "username": "ada"}},"metadata":{{"actor": "{ada}", "command": "register_player"}},"recorded_at":"2026-12-01T09:00:00.000001Z"}}}}"#
    );
    let started = format!(
        r#"{{"event":{{"position":2,"event_id":"0192d3a4-0000-7000-8000-000000000102","stream_id":"lab-{ada}-ls","stream_version":1,"event_type":"lab_started","schema_version":1,"data":{{"lab_id": "ls", "player_id": "{ada}"}},"metadata":{{"actor": "{ada}", "command": "save_lab_state"}},"recorded_at":"2026-12-01T09:01:00.5Z"}}}}"#
    );
    let copy = format!(
        r#"{{"working_copy":{{"player_id":"{ada}","lab_id":"ls","vfs_snapshot":{{"/home/ada/notes.txt": "ls -la", "/tmp/x": 1.10}},"current_step":2,"saved_at":"2026-12-01T09:02:00.250Z"}}}}"#
    );
    let seen = format!(
        r#"{{"presence_seen":{{"player_id":"{ada}","last_seen":"2026-12-01T09:29:59.999999Z"}}}}"#
    );
    let key = format!(
        r#"{{"idempotency_key":{{"identity":"{ada}","key":"ada-1","request_hash":"{}","command_id":"0192d3a4-0000-7000-8000-000000000201","positions":[1],"head":1,"created_at":"2026-12-01T09:00:00.000001Z"}}}}"#,
        "ab".repeat(32)
    );
    let trailer = r#"{"trailer":{"counts":{"events":2,"head":2,"working_copies":1,"presence_seen":1,"idempotency_keys":1},"sha256":""}}"#;
    vec![
        header.to_owned(),
        registered,
        started,
        copy,
        seen,
        key,
        trailer.to_owned(),
    ]
}

#[tokio::test]
async fn an_archive_written_before_modules_registered_their_sections_imports_row_for_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("fixed-layout.archive.gz");
    write_lines(&file, archive_of_the_fixed_layout(), true);

    let target = TestDb::create().await;
    let Ok(ImportOutcome::Imported(imported)) = import_into(&target, &file, true).await else {
        panic!("the import succeeds");
    };
    assert_eq!(
        (
            imported.counts.events,
            imported.counts.head,
            imported.counts.beside("working_copies"),
            imported.counts.beside("presence_seen"),
            imported.counts.idempotency_keys
        ),
        (2, 2, 1, 1, 1)
    );
    let side = write_side(&target).await;
    let ada: Uuid = "0192d3a4-0000-7000-8000-00000000000a"
        .parse()
        .expect("uuid");
    let at = |t: &str| -> DateTime<Utc> { t.parse().expect("a time") };
    assert_eq!(
        side.events
            .iter()
            .map(|e| (e.0, e.2.clone(), e.4.clone(), e.8))
            .collect::<Vec<_>>(),
        [
            (
                1,
                format!("player-{ada}"),
                "player_registered".to_owned(),
                at("2026-12-01T09:00:00.000001Z")
            ),
            (
                2,
                format!("lab-{ada}-ls"),
                "lab_started".to_owned(),
                at("2026-12-01T09:01:00.5Z")
            ),
        ]
    );
    assert_eq!(
        side.working_copies,
        [(
            ada,
            "ls".to_owned(),
            r#"{"/tmp/x": 1.10, "/home/ada/notes.txt": "ls -la"}"#.to_owned(),
            2,
            at("2026-12-01T09:02:00.250Z")
        )]
    );
    assert_eq!(
        side.presence_seen,
        [(ada, at("2026-12-01T09:29:59.999999Z"))]
    );
    assert_eq!(side.idempotency_keys.len(), 1);
    assert_eq!(
        (
            side.idempotency_keys[0].1.as_str(),
            side.idempotency_keys[0].4.clone()
        ),
        ("ada-1", vec![1])
    );

    // Exported again, the same rows come out, under the same keys.
    let again = dir.path().join("again.archive.gz");
    let pool = target.pool(2);
    let exported = archive::export(&pool, &again, false, false, &mut Vec::new())
        .await
        .expect("export");
    pool.close().await;
    assert_eq!(exported.counts, imported.counts);
    let lines = lines_of(&again);
    assert!(
        lines[3].starts_with(r#"{"working_copy":{"player_id":""#),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with(r#"{"presence_seen":{"player_id":""#),
        "{}",
        lines[4]
    );
}

#[tokio::test]
async fn the_name_key_travels_so_a_name_claimed_before_the_move_stays_taken_after_it() {
    let app = TestApp::spawn().await;
    app.player("Ada").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("questlog.archive.gz");
    let exported = export_to(&app, &file).await;
    assert_eq!(exported.counts.beside("name_keys"), 1);

    let target = TestDb::create().await;
    let Ok(ImportOutcome::Imported(_)) = import_into(&target, &file, true).await else {
        panic!("the import succeeds");
    };
    let copy = TestApp::spawn_on(target).await;
    let bob = copy.identity().await;
    let (status, problem) = copy
        .command(&bob.token, "register_player", &json!({"username": "ADA"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "username_taken");

    // A target on which a process served commands has a name key of its own: refused whole.
    let served = TestApp::spawn().await.stop().await;
    let refused = import_into(&served, &file, true)
        .await
        .expect_err("the import is refused");
    assert!(format!("{refused:#}").contains("name key"), "{refused:#}");
    assert_eq!(event_count(&served).await, 0, "nothing was imported");
}
