//! The read-only admin commands (`history`, `state`, `stats`) and `catalog apply`, called as the
//! binary calls them, against a running questlog's database: they must agree with the HTTP admin
//! routes and with the database itself.

use chrono::{DateTime, Utc};
use questlog::admin::inspect::{self, At};
use questlog_academy::catalog::cli as catalog;
use questlog_tests::{event_count, position, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Runs an admin command with `--json`, its output going to `$out`, and parses what it printed.
macro_rules! json_of {
    (|$out:ident| $call:expr) => {{
        let mut printed = Vec::new();
        {
            let $out: &mut Vec<u8> = &mut printed;
            let run: anyhow::Result<()> = $call.await;
            run.expect("the command succeeds");
        }
        serde_json::from_slice::<Value>(&printed).expect("the output is JSON")
    }};
}

/// The admin route's answer for `stream` up to `version`.
async fn admin_stream(app: &TestApp, admin: &str, stream: &str, version: i64) -> Value {
    let (status, _, body) = app
        .get(
            admin,
            &format!("/v1/admin/streams/{stream}?to_version={version}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn state_json(pool: &PgPool, stream: &str, at: At) -> Value {
    json_of!(|out| inspect::state(pool, stream, at, true, out))
}

#[tokio::test]
async fn history_and_state_of_a_player_stream_agree_with_the_admin_route() {
    let app = TestApp::spawn().await;
    let admin = app.catalog(2, 150).await;
    let ada = app.player("ada").await;
    let first = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.ok(
        &ada.token,
        "set_timezone",
        json!({ "timezone": "Europe/Paris" }),
    )
    .await;
    app.ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    let stream = format!("player-{}", ada.id);
    let pool = app.db.pool(2);

    // The whole history: the route's events, in order, with their versions and positions.
    let all = admin_stream(&app, &admin, &stream, i64::MAX).await;
    let history = json_of!(|out| inspect::history(&pool, &stream, None, None, true, out));
    let rows = history.as_array().expect("an array");
    let events = all["events"].as_array().expect("events");
    assert_eq!(rows.len(), events.len());
    assert!(rows.len() >= 6, "{history}");
    for (row, event) in rows.iter().zip(events) {
        for key in ["version", "position", "type", "data", "recorded_at"] {
            assert_eq!(row[key], event[key], "{key} of {row}");
        }
    }

    // A range of versions.
    let some = json_of!(|out| inspect::history(&pool, &stream, Some(2), Some(3), true, out));
    let versions: Vec<i64> = some
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["version"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions, [2, 3]);

    // The state after the first completed lab, by version and by the time of its last event.
    let earlier = first["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["stream"] == stream.as_str())
        .map(|e| e["version"].as_i64().expect("version"))
        .max()
        .expect("the player's events");
    let route = admin_stream(&app, &admin, &stream, earlier).await;
    let by_version = state_json(
        &pool,
        &stream,
        At::Version(earlier.try_into().expect("positive")),
    )
    .await;
    assert_eq!(by_version["version"], earlier);
    assert_eq!(by_version["state"], route["state"]);
    assert_eq!(by_version["state"]["completed_labs"], json!(["lab-1"]));
    assert_eq!(by_version["state"]["timezone"], "UTC");

    let recorded_at: DateTime<Utc> = route["events"][usize::try_from(earlier - 1).expect("index")]
        ["recorded_at"]
        .as_str()
        .expect("recorded_at")
        .parse()
        .expect("RFC 3339");
    let by_time = state_json(&pool, &stream, At::Time(recorded_at)).await;
    assert_eq!(by_time["version"], earlier);
    assert_eq!(by_time["state"], route["state"]);

    // And the latest state, which differs.
    let latest = all["version"].as_i64().expect("version");
    let now = state_json(&pool, &stream, At::Time(Utc::now())).await;
    assert_eq!(now["version"], latest);
    assert_eq!(now["state"], all["state"]);
    assert_eq!(now["state"]["timezone"], "Europe/Paris");
    assert_ne!(now["state"], by_version["state"]);

    // Before the first event: the stream's initial state, as the route folds version 0.
    let before = state_json(&pool, &stream, At::Version(0)).await;
    assert_eq!(
        before["state"],
        admin_stream(&app, &admin, &stream, 0).await["state"]
    );
    assert_eq!(before["state"]["registered"], false);

    // For people: the state's fields on lines of their own.
    let mut text = Vec::new();
    inspect::state(&pool, &stream, At::Version(1), false, &mut text)
        .await
        .expect("state");
    let text = String::from_utf8(text).expect("UTF-8");
    assert!(
        text.lines()
            .any(|l| l.starts_with("username") && l.ends_with("ada")),
        "{text}"
    );
}

#[tokio::test]
async fn a_malformed_or_unknown_stream_or_version_is_a_clear_error() {
    let app = TestApp::spawn().await;
    let ada = app.player("ada").await;
    let pool = app.db.pool(2);
    let mut out = Vec::new();

    let err = inspect::history(&pool, "player-nope", None, None, false, &mut out)
        .await
        .expect_err("malformed");
    assert!(err.to_string().contains("not a stream id"), "{err}");

    let unknown = format!("player-{}", Uuid::new_v4());
    let err = inspect::state(&pool, &unknown, At::Version(1), false, &mut out)
        .await
        .expect_err("unknown");
    assert!(err.to_string().contains("has no events"), "{err}");

    let stream = format!("player-{}", ada.id);
    let err = inspect::state(&pool, &stream, At::Version(9), false, &mut out)
        .await
        .expect_err("beyond the stream");
    assert!(err.to_string().contains("no version 9"), "{err}");

    let err = inspect::history(&pool, &stream, Some(3), Some(2), false, &mut out)
        .await
        .expect_err("an empty range");
    assert!(
        err.to_string().contains("--from 3 is after --to 2"),
        "{err}"
    );
    assert!(out.is_empty());
}

#[tokio::test]
async fn stats_match_the_database_and_the_projections_route() {
    let app = TestApp::spawn().await;
    let admin = app.catalog(1, 100).await;
    let ada = app.player("ada").await;
    app.player("bob").await;
    let last = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    // Every projection has applied the whole log: nothing moves while the two are compared.
    let route = app
        .read_at(&admin, "/v1/admin/projections", position(&last))
        .await;

    let pool = app.db.pool(2);
    let (events, streams, head, main_fork): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT stream_id), max(position), pg_relation_size('events')
           FROM events",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    let stats = json_of!(|out| inspect::stats(&pool, true, out));
    let total: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('events')")
        .fetch_one(&pool)
        .await
        .expect("size");

    assert_eq!(stats["events"], events);
    assert_eq!(stats["streams"], streams);
    assert_eq!(stats["head"], head);
    assert_eq!(head, position(&last));
    // Autovacuum may add a visibility map meanwhile, but the table only grows.
    let size = stats["size_bytes"].as_i64().expect("size");
    assert!(
        main_fork <= size && size <= total,
        "{main_fork} <= {size} <= {total}"
    );

    assert_eq!(stats["head"], route["head"]);
    assert_eq!(stats["projections"], route["projections"]);
    let names: Vec<&str> = stats["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "achievements",
            "catalog",
            "chat",
            "labs",
            "leaderboards",
            "players",
            "presence",
            "storage"
        ]
    );
    assert!(stats["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .all(|p| p["lag"] == 0 && p["position"] == head));

    let mut text = Vec::new();
    inspect::stats(&pool, false, &mut text)
        .await
        .expect("stats");
    let text = String::from_utf8(text).expect("UTF-8");
    assert!(
        text.lines()
            .any(|l| l.starts_with("events") && l.ends_with(&format!(" {events}"))),
        "{text}"
    );
    assert!(text.contains("presence"), "{text}");
}

const CATALOG: &str = r#"
[[module]]
number = 2
title = "Pipes"
requires = [1]

[[module]]
number = 1
title = "Shell basics"

[[lab]]
id = "ls"
module = 1
title = "Listing files"
xp = 150

[[lab]]
id = "cd"
module = 1
title = "Moving around"
xp = 100

[[lab]]
id = "pipe"
module = 2
title = "Your first pipe"
xp = 200
"#;

/// A catalog file of its own for one test, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("questlog-catalog-{}.toml", Uuid::new_v4()));
        std::fs::write(&path, text).expect("write the catalog file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn results(applied: &Value) -> Vec<(String, String)> {
    applied
        .as_array()
        .expect("an array")
        .iter()
        .map(|a| {
            let id = match &a["id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (
                format!("{} {id}", a["kind"].as_str().expect("kind")),
                a["result"].as_str().expect("result").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_catalog_file_defines_the_catalog_and_applying_it_again_appends_nothing() {
    let app = TestApp::spawn().await;
    let pool = app.db.pool(2);
    let file = TempFile::new(CATALOG);

    let applied = json_of!(|out| catalog::apply(
        &pool,
        questlog::modules::app().domain(),
        &file.0,
        true,
        out
    ));
    assert_eq!(
        results(&applied),
        [
            ("module 1".into(), "defined".into()),
            ("module 2".into(), "defined".into()),
            ("lab ls".into(), "defined".into()),
            ("lab cd".into(), "defined".into()),
            ("lab pipe".into(), "defined".into()),
        ]
    );
    let last = applied[4]["position"].as_i64().expect("position");

    let reader = app.identity().await;
    let labs = app.read_at(&reader.token, "/v1/labs", last).await;
    assert_eq!(
        labs["modules"],
        json!([
            {"module": 1, "title": "Shell basics", "requires": [], "labs": [
                {"lab_id": "cd", "title": "Moving around", "xp": 100},
                {"lab_id": "ls", "title": "Listing files", "xp": 150},
            ]},
            {"module": 2, "title": "Pipes", "requires": [1], "labs": [
                {"lab_id": "pipe", "title": "Your first pipe", "xp": 200},
            ]},
        ])
    );

    // Again: every entry unchanged, nothing appended.
    let before = event_count(&app.db).await;
    let again = json_of!(|out| catalog::apply(
        &pool,
        questlog::modules::app().domain(),
        &file.0,
        true,
        out
    ));
    assert!(
        results(&again).iter().all(|(_, r)| r == "unchanged"),
        "{again}"
    );
    assert!(again
        .as_array()
        .expect("array")
        .iter()
        .all(|a| a["position"].is_null()));
    assert_eq!(event_count(&app.db).await, before);

    // One lab's XP changed: that lab alone is defined anew.
    let changed = TempFile::new(&CATALOG.replace("xp = 200", "xp = 250"));
    let mut text = Vec::new();
    catalog::apply(
        &pool,
        questlog::modules::app().domain(),
        &changed.0,
        false,
        &mut text,
    )
    .await
    .expect("applied");
    let text = String::from_utf8(text).expect("UTF-8");
    assert!(
        text.lines()
            .any(|l| l.contains("lab pipe") && l.contains("updated")),
        "{text}"
    );
    assert_eq!(text.matches("unchanged").count(), 4, "{text}");
    assert_eq!(event_count(&app.db).await, before + 1);
}

#[tokio::test]
async fn bad_catalog_files_are_refused_naming_the_entry_and_append_nothing() {
    let app = TestApp::spawn().await;
    let pool = app.db.pool(2);
    let module_1 = "[[module]]\nnumber = 1\ntitle = \"Shell basics\"\n";
    let cases = [
        ("[[module]\nnumber = 1\n".to_owned(), "TOML parse error"),
        (
            format!("{module_1}[[lab]]\nid = \"ls\"\nmodule = 1\ntitle = \"ls\"\nxp = 1\ncolour = \"red\"\n"),
            "unknown field `colour`",
        ),
        (format!("{module_1}[[chapter]]\nnumber = 1\n"), "unknown field `chapter`"),
        (
            format!("{module_1}[[lab]]\nid = \"ls\"\nmodule = 9\ntitle = \"ls\"\nxp = 10\n"),
            "[[lab]] id = \"ls\": unknown_module",
        ),
        (
            format!("{module_1}[[lab]]\nid = \"ls\"\nmodule = 1\ntitle = \"ls\"\nxp = 0\n"),
            "[[lab]] id = \"ls\": invalid_xp",
        ),
        (
            format!(
                "{module_1}[[module]]\nnumber = 2\ntitle = \"Two\"\nrequires = [3]\n\
                 [[module]]\nnumber = 3\ntitle = \"Three\"\nrequires = [2]\n"
            ),
            "[[module]] number = 2: module_cycle",
        ),
        (
            "[[module]]\nnumber = 2\ntitle = \"Two\"\nrequires = [1]\n".to_owned(),
            "[[module]] number = 2: unknown_module",
        ),
        (
            format!("{module_1}{module_1}"),
            "[[module]] number = 1: defined twice",
        ),
    ];
    for (text, expected) in cases {
        let file = TempFile::new(&text);
        let mut out = Vec::new();
        let err = catalog::apply(
            &pool,
            questlog::modules::app().domain(),
            &file.0,
            false,
            &mut out,
        )
        .await
        .expect_err("refused");
        let message = format!("{err:#}");
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
        assert!(out.is_empty(), "printed {}", String::from_utf8_lossy(&out));
        assert_eq!(event_count(&app.db).await, 0, "{text} appended");
    }

    // A cycle through modules already defined is the domain's refusal, found before anything
    // is sent: module 1, fine on its own and sent first, is not appended either.
    let ok = TempFile::new(
        "[[module]]\nnumber = 2\ntitle = \"Two\"\n\
         [[module]]\nnumber = 3\ntitle = \"Three\"\nrequires = [2]\n",
    );
    let mut out = Vec::new();
    catalog::apply(
        &pool,
        questlog::modules::app().domain(),
        &ok.0,
        false,
        &mut out,
    )
    .await
    .expect("applied");
    let before = event_count(&app.db).await;
    let cycle = TempFile::new(&format!(
        "{module_1}[[module]]\nnumber = 2\ntitle = \"Two\"\nrequires = [3]\n"
    ));
    let err = catalog::apply(
        &pool,
        questlog::modules::app().domain(),
        &cycle.0,
        false,
        &mut Vec::new(),
    )
    .await
    .expect_err("a cycle");
    assert!(
        format!("{err:#}").contains("[[module]] number = 2: module_cycle"),
        "{err:#}"
    );
    assert_eq!(event_count(&app.db).await, before, "module 1 was appended");

    let missing = std::env::temp_dir().join(format!("questlog-missing-{}.toml", Uuid::new_v4()));
    let err = catalog::apply(
        &pool,
        questlog::modules::app().domain(),
        &missing,
        false,
        &mut Vec::new(),
    )
    .await
    .expect_err("no file");
    assert!(
        format!("{err:#}").contains("reading the catalog file"),
        "{err:#}"
    );
}
