//! Erasure by crypto-shredding, over HTTP and the admin CLI: `erase_me` (confirmed with the
//! player's name) and the admin's `erase_player` make the player's name, message texts and
//! personal objects unreadable in every read, as-of read, export, admin view and replay, while
//! the log stays as it was and `verify` stays clean; and personal data recorded in plain text
//! before sealing existed reads as erased too.

use questlog::admin::inspect::{self, At};
use questlog_store::{AppendBatch, EventStore, ExpectedVersion, NewEvent, PgEventStore};
use questlog_tests::{event_count, position, Player, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const NAME: &str = "AdaSecret1";
const MESSAGE: &str = "ada-secret-message";
const OBJECT: &str = "ada-secret-object";

/// Whether `value`, printed, shows none of the player's personal data.
fn shows_nothing_of_ada(value: &Value) -> bool {
    let text = value.to_string();
    !text.contains(NAME) && !text.contains(MESSAGE) && !text.contains(OBJECT)
}

fn assert_clean(what: &str, value: &Value) {
    assert!(
        shows_nothing_of_ada(value),
        "{what} shows ada's data: {value}"
    );
}

/// The text an admin CLI command printed with `--json`.
async fn cli(app: &TestApp, stream: &str) -> (Value, Value) {
    let pool = app.db.pool(2);
    let mut history = Vec::new();
    inspect::history(&pool, stream, None, None, true, &mut history)
        .await
        .expect("history runs");
    let mut state = Vec::new();
    inspect::state(
        &pool,
        stream,
        At::Time(chrono::Utc::now()),
        true,
        &mut state,
    )
    .await
    .expect("state runs");
    (
        serde_json::from_slice(&history).expect("JSON"),
        serde_json::from_slice(&state).expect("JSON"),
    )
}

async fn raw_log(app: &TestApp) -> Value {
    let pool = app.db.pool(1);
    let all: Value = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('stream', stream_id, 'data', data)), '[]') \
           FROM events",
    )
    .fetch_one(&pool)
    .await
    .expect("the log");
    all
}

fn entry<'a>(entries: &'a Value, player: &Player) -> &'a Value {
    entries
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["player_id"] == json!(player.id))
        .unwrap_or_else(|| panic!("no entry of {} in {entries}", player.id))
}

struct World {
    app: TestApp,
    admin: String,
    ada: Player,
    bob: Player,
    ada_message: String,
    /// A position where ada's data was all there.
    before: i64,
}

/// Ada and Bob with a name, XP, a score, messages, a personal object (two versions) and a
/// game save each; Ada with an account.
async fn world() -> World {
    let app = TestApp::spawn().await;
    let admin = app.catalog(2, 100).await;
    let ada = app.player(NAME).await;
    let bob = app.player("bob").await;
    let (status, _) = app
        .command(&ada.token, "complete_lab", &json!({ "lab_id": "lab-1" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.ok(
        &admin,
        "define_leaderboard",
        json!({"leaderboard": "arena", "title": "Arena", "order": "desc", "operator": "best"}),
    )
    .await;
    for (p, score) in [(&ada, 10), (&bob, 7)] {
        app.ok(
            &p.token,
            "submit_score",
            json!({"leaderboard": "arena", "score": score}),
        )
        .await;
    }
    app.ok(
        &admin,
        "define_collection",
        json!({"collection": "profile", "read": "owner", "write": "owner", "personal": true}),
    )
    .await;
    app.ok(
        &admin,
        "define_collection",
        json!({"collection": "saves", "read": "owner", "write": "owner"}),
    )
    .await;
    for p in [&ada, &bob] {
        let me = if p.id == ada.id { OBJECT } else { "bob-object" };
        app.ok(
            &p.token,
            "put_object",
            json!({"collection": "profile", "key": "bio", "value": {"text": me}}),
        )
        .await;
        app.ok(&p.token, "put_object", json!({"collection": "profile", "key": "bio", "value": {"text": format!("{me} again")}}))
            .await;
        app.ok(
            &p.token,
            "put_object",
            json!({"collection": "saves", "key": "slot", "value": {"level": 3}}),
        )
        .await;
    }
    let sent = app
        .ok(
            &ada.token,
            "send_message",
            json!({"channel": "global", "content": MESSAGE}),
        )
        .await;
    assert_eq!(
        sent["events"][0]["data"]["content"], MESSAGE,
        "the answer shows the text"
    );
    let ada_message = sent["events"][0]["data"]["message_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let last = app
        .ok(
            &bob.token,
            "send_message",
            json!({"channel": "global", "content": "hi ada"}),
        )
        .await;
    let register = app
        .client
        .post(app.url("/v1/accounts/register"))
        .bearer_auth(&ada.token)
        .json(&json!({"email": "ada@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(register.status(), StatusCode::CREATED);
    World {
        before: position(&last),
        app,
        admin,
        ada,
        bob,
        ada_message,
    }
}

/// Everything a client, an admin and the CLI can read of ada after her erasure at `erased`.
/// (`export`: whether to read her export too: an identity may export twice a minute.)
async fn assert_erased_everywhere(w: &World, erased: i64, export: bool) {
    let app = &w.app;
    let (ada, bob) = (&w.ada, &w.bob);
    // Profiles: hers without a name, Bob's untouched.
    let profile = app
        .read_at(&bob.token, &format!("/v1/players/{}", ada.id), erased)
        .await;
    assert_eq!(profile["username"], Value::Null, "{profile}");
    assert_eq!(profile["erased"], true);
    assert_eq!(profile["xp"], 100, "what is not personal stays");
    let bobs = app.read_at(&bob.token, "/v1/players/me", erased).await;
    assert_eq!(bobs["username"], "bob");
    // Boards keep her entry as an erased player.
    for path in ["/v1/leaderboard", "/v1/leaderboards/arena"] {
        let board = app.read_at(&bob.token, path, erased).await;
        let entries = if board["entries"].is_array() {
            &board["entries"]
        } else {
            &board
        };
        let mine = entry(entries, ada);
        assert_eq!(mine["username"], Value::Null, "{path}: {board}");
        assert_eq!(mine["erased"], true, "{path}: {board}");
        assert_eq!(entry(entries, bob)["username"], "bob", "{path}: {board}");
        assert_clean(path, &board);
    }
    // Her message keeps its place without its text; Bob's keeps his.
    let channel = app
        .read_at(&bob.token, "/v1/channels/global/messages", erased)
        .await;
    assert_clean("the channel", &channel);
    let messages = channel["messages"].as_array().expect("messages");
    let hers = messages
        .iter()
        .find(|m| m["message_id"] == json!(w.ada_message))
        .expect("her message keeps its place");
    assert_eq!(hers["content"], Value::Null);
    assert_eq!(hers["erased"], true);
    assert!(messages.iter().any(|m| m["content"] == "hi ada"));
    // Her personal object and its versions; her save, which is not personal, stays.
    let (_, _, object) = app
        .get(&w.admin, &format!("/v1/storage/profile/{}/bio", ada.id))
        .await;
    assert_clean("her object", &object);
    let (_, _, versions) = app
        .get(
            &w.admin,
            &format!("/v1/storage/profile/{}/bio/versions", ada.id),
        )
        .await;
    assert_clean("her object's versions", &versions);
    let save = app
        .read_at(
            &w.admin,
            &format!("/v1/storage/saves/{}/slot", ada.id),
            erased,
        )
        .await;
    assert_eq!(save["value"], json!({"level": 3}));
    let bob_bio = app
        .read_at(&bob.token, "/v1/storage/profile/me/bio", erased)
        .await;
    assert_eq!(bob_bio["value"], json!({"text": "bob-object again"}));
    // As of a position before the erasure: nothing of hers either (her key is gone for all time).
    let at = w.before;
    for path in [
        format!("/v1/players/{}?as_of={at}", ada.id),
        format!("/v1/leaderboard?as_of={at}"),
        format!("/v1/leaderboards/arena?as_of={at}"),
        format!("/v1/channels/global/messages?as_of={at}"),
        format!("/v1/storage/profile/{}/bio?as_of={at}", ada.id),
        format!("/v1/storage/profile/{}/bio/versions?as_of={at}", ada.id),
    ] {
        let (_, _, body) = app.get(&w.admin, &path).await;
        assert_clean(&path, &body);
    }
    let (status, _, then) = app
        .get(&bob.token, &format!("/v1/players/{}?as_of={at}", ada.id))
        .await;
    assert_eq!(status, StatusCode::OK, "{then}");
    assert_eq!(then["erased"], true);
    // The admin's view of her streams, over HTTP and in the CLI.
    for stream in [
        format!("player-{}", ada.id),
        format!("message-{}", w.ada_message),
        format!("storage_object-profile:{}:bio", ada.id),
    ] {
        let (status, _, body) = app
            .get(&w.admin, &format!("/v1/admin/streams/{stream}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{stream}: {body}");
        assert_clean(&stream, &body);
        let (history, state) = cli(app, &stream).await;
        assert_clean("questlog history", &history);
        assert_clean("questlog state", &state);
    }
    // Her export (her token still runs until it expires): nothing personal, no account.
    if export {
        let (status, _, export) = app.get(&ada.token, "/v1/players/me/export").await;
        assert_eq!(status, StatusCode::OK, "{export}");
        assert_clean("her export", &export);
        assert_eq!(export["account"], Value::Null, "{export}");
    }
    // She can no longer log in.
    let login = app
        .client
        .post(app.url("/v1/accounts/login"))
        .json(&json!({"email": "ada@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    // The log itself never held her data in plain text.
    assert_clean("the log", &raw_log(app).await);
}

async fn verify_and_replay(app: &TestApp, head: i64) {
    app.caught_up(head).await;
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "verify found drift: {checks}");
    let mut out = Vec::new();
    questlog::admin::rebuild::replay(&app.db.url, "all", None, true, true, &mut out)
        .await
        .expect("replay runs");
    let (drifted, checks) = app.verify().await;
    assert!(!drifted, "verify after the replay found drift: {checks}");
}

#[tokio::test]
async fn an_erased_player_s_personal_data_is_gone_from_every_read_and_the_log_verifies() {
    let w = world().await;
    let app = &w.app;
    // Sealed at rest: the log holds none of it in plain text, while the reads show it.
    assert_clean("the log", &raw_log(app).await);
    let profile = app
        .read_at(&w.bob.token, &format!("/v1/players/{}", w.ada.id), w.before)
        .await;
    assert_eq!(profile["username"], NAME);
    assert_eq!(profile["erased"], false);
    let export = app
        .read_at(&w.ada.token, "/v1/players/me/export", w.before)
        .await;
    assert!(
        export.to_string().contains(MESSAGE),
        "her own export shows her data"
    );

    // A wrong confirmation, and a player erasing another, are refused with nothing appended.
    let events = event_count(&app.db).await;
    let (status, problem) = app
        .command(&w.ada.token, "erase_me", &json!({"confirm": "bob"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "confirmation_mismatch");
    let (status, problem) = app
        .command(
            &w.bob.token,
            "erase_player",
            &json!({"player_id": w.ada.id}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = app.command(&w.ada.token, "erase_me", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(event_count(&app.db).await, events, "nothing appended");

    let erased = app
        .ok(
            &w.ada.token,
            "erase_me",
            json!({"confirm": NAME.to_lowercase()}),
        )
        .await;
    assert_eq!(erased["events"][0]["type"], "player_erased");
    let at = position(&erased);
    assert_erased_everywhere(&w, at, true).await;
    let (status, problem) = app
        .command(&w.admin, "erase_player", &json!({"player_id": w.ada.id}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "already_erased");
    verify_and_replay(app, at).await;
    // After the replay, as before it.
    assert_erased_everywhere(&w, at, false).await;
}

#[tokio::test]
async fn an_admin_erases_a_player_and_the_others_keep_their_data() {
    let w = world().await;
    let app = &w.app;
    let erased = app
        .ok(&w.admin, "erase_player", json!({"player_id": w.ada.id}))
        .await;
    let at = position(&erased);
    assert_erased_everywhere(&w, at, true).await;
    // What she sends after (a token still running) is never recorded readable.
    let late = app
        .ok(
            &w.ada.token,
            "send_message",
            json!({"channel": "global", "content": MESSAGE}),
        )
        .await;
    let channel = app
        .read_at(
            &w.bob.token,
            "/v1/channels/global/messages",
            position(&late),
        )
        .await;
    assert_clean("the channel", &channel);
    assert_clean("the log", &raw_log(app).await);
    verify_and_replay(app, position(&late)).await;
}

/// An event as this log recorded it before personal data was sealed: plain text.
fn legacy(stream: String, event_type: &str, data: Value, identity: Uuid) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        stream_id: stream,
        event_type: event_type.to_owned(),
        schema_version: 1,
        data,
        metadata: json!({ "identity": identity, "command": "legacy" }),
    }
}

#[tokio::test]
async fn personal_data_recorded_in_plain_text_before_sealing_reads_as_erased_once_erased() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let bob = app.player("bob").await;
    // Cleo registered and wrote before this build: her name and text are plain in the log.
    let cleo = Uuid::now_v7();
    let message = Uuid::now_v7();
    let store = PgEventStore::new(app.db.pool(2));
    store
        .append(AppendBatch {
            expectations: vec![
                (format!("username-{}", NAME.to_lowercase()), ExpectedVersion::NoStream),
                (format!("player-{cleo}"), ExpectedVersion::NoStream),
                (format!("message-{message}"), ExpectedVersion::NoStream),
            ],
            events: vec![
                legacy(
                    format!("username-{}", NAME.to_lowercase()),
                    "username_claimed",
                    json!({"player_id": cleo, "username": NAME}),
                    cleo,
                ),
                legacy(
                    format!("player-{cleo}"),
                    "player_registered",
                    json!({"player_id": cleo, "username": NAME}),
                    cleo,
                ),
                legacy(
                    format!("message-{message}"),
                    "message_sent",
                    json!({"message_id": message, "channel": "global", "sender": cleo, "content": MESSAGE}),
                    cleo,
                ),
            ],
            ..AppendBatch::default()
        })
        .await
        .expect("the old events append");
    let last = app
        .ok(
            &bob.token,
            "send_message",
            json!({"channel": "global", "content": "hi cleo"}),
        )
        .await;
    let profile = app
        .read_at(&bob.token, &format!("/v1/players/{cleo}"), position(&last))
        .await;
    assert_eq!(profile["username"], NAME, "read as it was recorded");

    let erased = app
        .ok(&admin, "erase_player", json!({"player_id": cleo}))
        .await;
    let at = position(&erased);
    let profile = app
        .read_at(&bob.token, &format!("/v1/players/{cleo}"), at)
        .await;
    assert_eq!(profile["username"], Value::Null, "{profile}");
    let channel = app
        .read_at(&bob.token, "/v1/channels/global/messages", at)
        .await;
    assert_clean("the channel", &channel);
    let (_, _, then) = app
        .get(
            &bob.token,
            &format!("/v1/players/{cleo}?as_of={}", position(&last)),
        )
        .await;
    assert_clean("an as-of read", &then);
    let (_, _, page) = app
        .get(
            &bob.token,
            &format!("/v1/channels/global/messages?as_of={}", position(&last)),
        )
        .await;
    assert_clean("an as-of page", &page);
    for stream in [format!("player-{cleo}"), format!("message-{message}")] {
        let (history, state) = cli(&app, &stream).await;
        assert_clean("questlog history", &history);
        assert_clean("questlog state", &state);
    }
    verify_and_replay(&app, at).await;
    let profile = app
        .read_at(&bob.token, &format!("/v1/players/{cleo}"), at)
        .await;
    assert_eq!(
        profile["username"],
        Value::Null,
        "after the replay: {profile}"
    );
}

/// Every place the raw log could show a text: each event's stream id, data and metadata, as
/// Postgres prints them, in lowercase (a claim's old stream id held the name in lowercase).
async fn raw_log_text(app: &TestApp) -> String {
    let pool = app.db.pool(1);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT stream_id, data::text, metadata::text FROM events ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .expect("the log");
    pool.close().await;
    rows.iter()
        .map(|(s, d, m)| format!("{s} {d} {m}\n"))
        .collect::<String>()
        .to_lowercase()
}

#[tokio::test]
async fn a_claim_s_stream_is_named_for_a_digest_so_an_erased_name_is_nowhere_in_the_log() {
    let app = TestApp::spawn().await;
    let name = NAME.to_lowercase();
    let ada = app.identity().await;
    let registered = app
        .ok(&ada.token, "register_player", json!({"username": NAME}))
        .await;
    let claim = registered["events"][0]["stream"]
        .as_str()
        .expect("the claim's stream")
        .to_owned();
    assert_eq!(registered["events"][0]["type"], "username_claimed");
    assert!(claim.starts_with("username-"), "{claim}");
    assert!(!claim.to_lowercase().contains(&name), "{claim}");
    // Unique whatever the case, on the digest's stream.
    let bob = app.identity().await;
    let (status, problem) = app
        .command(&bob.token, "register_player", &json!({"username": name}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "username_taken");

    let erased = app
        .ok(&ada.token, "erase_me", json!({"confirm": NAME}))
        .await;
    let at = position(&erased);
    let log = raw_log_text(&app).await;
    assert!(!log.contains(&name), "the raw log names her: {log}");
    // The admin's view of her claim and its history in the CLI.
    let (status, _, stream) = app
        .get(&app.admin_token(), &format!("/v1/admin/streams/{claim}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{stream}");
    assert!(
        !stream.to_string().to_lowercase().contains(&name),
        "{stream}"
    );
    let (history, state) = cli(&app, &claim).await;
    for shown in [&history, &state] {
        assert!(!shown.to_string().to_lowercase().contains(&name), "{shown}");
    }
    // The stream of the name itself holds nothing.
    let (status, _, old) = app
        .get(
            &app.admin_token(),
            &format!("/v1/admin/streams/username-{name}"),
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || old["version"] == 0,
        "{status}: {old}"
    );
    // The export carries the log as it is: no line names her.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("questlog.archive.gz");
    let pool = app.db.pool(2);
    questlog::admin::archive::export(&pool, &file, false, false, &mut Vec::new())
        .await
        .expect("export");
    pool.close().await;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&file).expect("archive")),
        &mut text,
    )
    .expect("gzip of UTF-8");
    assert!(
        text.contains("\"name_key\""),
        "the name key travels with the log"
    );
    assert!(!text.to_lowercase().contains(&name), "the export names her");
    // Her claim holds: the name is not free again.
    let (status, problem) = app
        .command(&bob.token, "register_player", &json!({"username": NAME}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "username_taken");
    verify_and_replay(&app, at).await;
}

#[tokio::test]
async fn a_name_claimed_under_its_old_stream_id_is_still_taken_and_digests_survive_a_restart() {
    let app = TestApp::spawn().await;
    // Cleo claimed her name before claims were digested: `username-<lowercase name>`.
    let cleo = Uuid::now_v7();
    let store = PgEventStore::new(app.db.pool(2));
    store
        .append(AppendBatch {
            expectations: vec![
                (
                    format!("username-{}", NAME.to_lowercase()),
                    ExpectedVersion::NoStream,
                ),
                (format!("player-{cleo}"), ExpectedVersion::NoStream),
            ],
            events: vec![
                legacy(
                    format!("username-{}", NAME.to_lowercase()),
                    "username_claimed",
                    json!({"player_id": cleo, "username": NAME}),
                    cleo,
                ),
                legacy(
                    format!("player-{cleo}"),
                    "player_registered",
                    json!({"player_id": cleo, "username": NAME}),
                    cleo,
                ),
            ],
            ..AppendBatch::default()
        })
        .await
        .expect("the old events append");
    let bob = app.identity().await;
    for name in [NAME.to_owned(), NAME.to_uppercase()] {
        let (status, problem) = app
            .command(&bob.token, "register_player", &json!({"username": name}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {problem}");
        assert_eq!(problem["code"], "username_taken");
    }
    app.ok(&bob.token, "register_player", json!({"username": "Bob"}))
        .await;

    // Another process on the same database digests names alike: Bob's claim holds there too.
    let db = app.stop().await;
    let again = TestApp::spawn_on(db).await;
    let dan = again.identity().await;
    for name in ["bob", NAME] {
        let (status, problem) = again
            .command(&dan.token, "register_player", &json!({"username": name}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {problem}");
        assert_eq!(problem["code"], "username_taken");
    }
    again
        .ok(&dan.token, "register_player", json!({"username": "dan"}))
        .await;
}

/// Registers an account (no player in the log): its identity and access token.
async fn account(app: &TestApp, email: &str, username: Option<&str>) -> Player {
    let mut body = json!({"email": email, "password": "correct horse battery"});
    if let Some(username) = username {
        body["username"] = json!(username);
    }
    let response = app
        .client
        .post(app.url("/v1/accounts/register"))
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.expect("JSON");
    Player {
        id: answer["identity"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("identity"),
        token: answer["access_token"].as_str().expect("token").to_owned(),
    }
}

async fn login_status(app: &TestApp, email: &str) -> StatusCode {
    app.client
        .post(app.url("/v1/accounts/login"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test]
async fn a_player_with_an_account_but_no_name_in_the_log_confirms_with_its_account_username() {
    let app = TestApp::spawn().await;
    let cleo = account(&app, "cleo@example.org", Some("CleoAccount")).await;
    let dan = account(&app, "dan@example.org", None).await;
    // Another name, or a name an account without a username never had: refused, nothing written,
    // the account still there.
    let events = event_count(&app.db).await;
    for (player, confirm) in [(&cleo, "someone-else"), (&dan, "dan")] {
        let (status, problem) = app
            .command(&player.token, "erase_me", &json!({ "confirm": confirm }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "confirmation_mismatch");
    }
    assert_eq!(event_count(&app.db).await, events, "nothing appended");
    assert_eq!(login_status(&app, "cleo@example.org").await, StatusCode::OK);

    // Her account's username, in any case, erases her; his id erases him.
    let erased = app
        .ok(&cleo.token, "erase_me", json!({"confirm": "cleoaccount"}))
        .await;
    assert_eq!(erased["events"][0]["type"], "player_erased");
    assert_eq!(
        login_status(&app, "cleo@example.org").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, problem) = app
        .command(&cleo.token, "erase_me", &json!({"confirm": "CleoAccount"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "already_erased");
    app.ok(
        &dan.token,
        "erase_me",
        json!({"confirm": dan.id.to_string()}),
    )
    .await;
    assert_eq!(
        login_status(&app, "dan@example.org").await,
        StatusCode::UNAUTHORIZED
    );
}
