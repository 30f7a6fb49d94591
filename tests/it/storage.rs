//! Versioned storage, spoken to like a game client: a cloud save written, conflicting, merged,
//! deleted, restored and read as of the past; a character collection listed with filters, sorts,
//! cursors and totals, across owners; every permission and refusal; a live subscription.

use questlog_tests::{event_count, position, Player, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::subscribe::{refused, Sub};

/// A command that must be refused with `status` and `code`, appending nothing.
async fn refused_command(
    app: &TestApp,
    token: &str,
    name: &str,
    body: Value,
    status: StatusCode,
    code: &str,
) -> Value {
    let before = event_count(&app.db).await;
    let (got, out) = app.command(token, name, &body).await;
    assert_eq!(
        (got, out["code"].as_str()),
        (status, Some(code)),
        "{name} {body} answered {out}"
    );
    assert_eq!(event_count(&app.db).await, before, "{name} {body} appended");
    out
}

/// A read that must be refused with `status` and `code`.
async fn refused_read(app: &TestApp, token: &str, path: &str, status: StatusCode, code: &str) {
    let (got, _, out) = app.get(token, path).await;
    assert_eq!(
        (got, out["code"].as_str()),
        (status, Some(code)),
        "GET {path} answered {out}"
    );
}

fn keys(page: &Value) -> Vec<String> {
    page["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["key"].as_str().expect("key").to_owned())
        .collect()
}

async fn define(app: &TestApp, body: Value) -> i64 {
    position(&app.ok(&app.admin_token(), "define_collection", body).await)
}

#[tokio::test]
async fn a_cloud_save_conflicts_merges_keeps_its_history_restores_and_reads_as_of() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({"collection": "saves", "read": "owner", "write": "owner", "max_bytes": 4096}),
    )
    .await;
    let ada = app.identity().await;

    let first = app
        .ok(&ada.token, "put_object", json!({"collection": "saves", "key": "slot1", "value": {"level": 1, "gold": 10}, "expected_version": 0}))
        .await;
    let object_written = first["events"]
        .as_array()
        .expect("events")
        .last()
        .expect("an event")
        .clone();
    assert_eq!(object_written["type"], "object_written");
    assert_eq!(object_written["data"]["version"], 1);
    let v1 = position(&first);

    // Two devices wrote from version 1; the second learns what the first wrote.
    let second = app
        .ok(&ada.token, "put_object", json!({"collection": "saves", "key": "slot1", "value": {"level": 2, "gold": 10}, "expected_version": 1}))
        .await;
    let conflict = refused_command(
        &app,
        &ada.token,
        "put_object",
        json!({"collection": "saves", "key": "slot1", "value": {"level": 1, "gold": 50}, "expected_version": 1}),
        StatusCode::CONFLICT,
        "version_conflict",
    )
    .await;
    assert_eq!(
        conflict["current"],
        json!({"version": 2, "value": {"level": 2, "gold": 10}})
    );
    refused_command(
        &app,
        &ada.token,
        "put_object",
        json!({"collection": "saves", "key": "slot1", "value": {}, "expected_version": 0}),
        StatusCode::CONFLICT,
        "version_conflict",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        json!({"collection": "saves", "key": "slot1", "value": {}, "expected_version": 9}),
        StatusCode::CONFLICT,
        "version_conflict",
    )
    .await;
    let merged = app
        .ok(&ada.token, "put_object", json!({"collection": "saves", "key": "slot1", "value": {"level": 2, "gold": 50}, "expected_version": 2}))
        .await;

    let now = app
        .read_at(&ada.token, "/v1/storage/saves/me/slot1", position(&merged))
        .await;
    assert_eq!(now["version"], 3);
    assert_eq!(now["value"], json!({"level": 2, "gold": 50}));
    assert_eq!(now["owner"], json!(ada.id));
    assert_eq!(now["collection"], "saves");
    assert_eq!(now["position"], position(&merged));
    assert!(now["updated_at"].is_string());

    // Deleted: gone from reads, its history kept, restorable.
    let deleted = app
        .ok(
            &ada.token,
            "delete_object",
            json!({"collection": "saves", "key": "slot1", "expected_version": 3}),
        )
        .await;
    let (status, _, gone) = app
        .get(
            &ada.token,
            &format!(
                "/v1/storage/saves/me/slot1?min_position={}",
                position(&deleted)
            ),
        )
        .await;
    assert_eq!(
        (status, gone["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("object_not_found"))
    );
    refused_command(
        &app,
        &ada.token,
        "delete_object",
        json!({"collection": "saves", "key": "slot1"}),
        StatusCode::NOT_FOUND,
        "object_not_found",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "restore_object",
        json!({"collection": "saves", "key": "slot1", "version": 4}),
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "restore_object",
        json!({"collection": "saves", "key": "slot1", "version": 7}),
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
    let restored = app
        .ok(
            &ada.token,
            "restore_object",
            json!({"collection": "saves", "key": "slot1", "version": 2}),
        )
        .await;
    let now = app
        .read_at(
            &ada.token,
            "/v1/storage/saves/me/slot1",
            position(&restored),
        )
        .await;
    assert_eq!(
        (now["version"].clone(), now["value"].clone()),
        (json!(5), json!({"level": 2, "gold": 10}))
    );

    let history = app
        .read_at(
            &ada.token,
            "/v1/storage/saves/me/slot1/versions",
            position(&restored),
        )
        .await;
    let ops: Vec<(i64, &str)> = history["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().expect("version"),
                v["op"].as_str().expect("op"),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            (5, "restore"),
            (4, "delete"),
            (3, "write"),
            (2, "write"),
            (1, "write")
        ]
    );
    assert_eq!(history["versions"][1]["value"], Value::Null);
    assert_eq!(
        history["versions"][4]["value"],
        json!({"level": 1, "gold": 10})
    );
    assert_eq!(history["versions"][0]["by"], json!(ada.id));
    assert_eq!(history["next"], Value::Null);
    let page = app
        .read_at(
            &ada.token,
            "/v1/storage/saves/me/slot1/versions?limit=2",
            position(&restored),
        )
        .await;
    assert_eq!(page["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["next"], 4);
    let older = app
        .read_at(
            &ada.token,
            "/v1/storage/saves/me/slot1/versions?limit=2&before=4",
            position(&restored),
        )
        .await;
    let versions: Vec<i64> = older["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_i64().expect("v"))
        .collect();
    assert_eq!(versions, [3, 2]);

    // As of the first write, and as of the second: the object, its history and the listing.
    let then = app
        .read_at(
            &ada.token,
            &format!("/v1/storage/saves/me/slot1?as_of={v1}"),
            0,
        )
        .await;
    assert_eq!(
        (then["version"].clone(), then["value"].clone()),
        (json!(1), json!({"level": 1, "gold": 10}))
    );
    let then = app
        .read_at(
            &ada.token,
            &format!(
                "/v1/storage/saves/me/slot1/versions?as_of={}",
                position(&second)
            ),
            0,
        )
        .await;
    assert_eq!(then["versions"].as_array().map(Vec::len), Some(2));
    let listed = app
        .read_at(
            &ada.token,
            &format!("/v1/storage/saves/me?as_of={}", position(&deleted)),
            0,
        )
        .await;
    assert_eq!(
        (listed["total"].clone(), keys(&listed)),
        (json!(0), Vec::<String>::new())
    );
    let listed = app
        .read_at(
            &ada.token,
            &format!("/v1/storage/saves/me?as_of={}", position(&merged)),
            0,
        )
        .await;
    assert_eq!(
        listed["objects"][0]["value"],
        json!({"level": 2, "gold": 50})
    );
    let (status, _, gone) = app
        .get(
            &ada.token,
            &format!("/v1/storage/saves/me/slot1?as_of={}", position(&deleted)),
        )
        .await;
    assert_eq!(
        (status, gone["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("object_not_found"))
    );

    app.caught_up(position(&restored)).await;
    let (drifted, report) = app.verify().await;
    assert!(!drifted, "verify found drift: {report}");
}

/// Characters: indexed by class, level and name.
async fn characters(app: &TestApp, who: &Player, rows: &[(&str, &str, i64, &str)]) -> i64 {
    let mut last = 0;
    for (key, class, level, name) in rows {
        last = position(
            &app.ok(
                &who.token,
                "put_object",
                json!({"collection": "characters", "key": key, "value": {"class": class, "level": level, "name": name, "bio": "x"}}),
            )
            .await,
        );
    }
    last
}

#[tokio::test]
async fn a_replica_that_never_cached_an_object_decides_on_its_latest_version_and_restores_any() {
    let a = TestApp::spawn().await;
    define(&a, json!({"collection": "saves"})).await;
    let ada = a.player("ada").await;
    let put =
        |version: i64| json!({"collection": "saves", "key": "slot", "value": {"hp": version}});
    a.ok(&ada.token, "put_object", put(1)).await;
    a.ok(&ada.token, "put_object", put(2)).await;
    a.ok(
        &ada.token,
        "delete_object",
        json!({"collection": "saves", "key": "slot"}),
    )
    .await;
    a.ok(&ada.token, "put_object", put(4)).await;

    // A second replica: its writer loads the object's stream afresh, from its latest event.
    let b = TestApp::spawn_on(a.db.share()).await;
    let conflict = refused_command(
        &b,
        &ada.token,
        "put_object",
        json!({"collection": "saves", "key": "slot", "value": {"hp": 0}, "expected_version": 3}),
        StatusCode::CONFLICT,
        "version_conflict",
    )
    .await;
    assert_eq!(
        conflict["current"],
        json!({"version": 4, "value": {"hp": 4}})
    );
    for deleted_or_missing in [3, 5] {
        refused_command(
            &b,
            &ada.token,
            "restore_object",
            json!({"collection": "saves", "key": "slot", "version": deleted_or_missing}),
            StatusCode::NOT_FOUND,
            "version_not_found",
        )
        .await;
    }
    let restored = b
        .ok(
            &ada.token,
            "restore_object",
            json!({"collection": "saves", "key": "slot", "version": 1}),
        )
        .await;
    let now = b
        .read_at(&ada.token, "/v1/storage/saves/me/slot", position(&restored))
        .await;
    assert_eq!(
        (now["version"].clone(), now["value"].clone()),
        (json!(5), json!({"hp": 1}))
    );
    b.ok(
        &ada.token,
        "put_object",
        json!({"collection": "saves", "key": "slot", "value": {"hp": 6}, "expected_version": 5}),
    )
    .await;
}

#[tokio::test]
async fn a_listing_filters_on_indexed_fields_sorts_pages_and_counts() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({"collection": "characters", "read": "public", "write": "owner", "indexed": ["class", "level", "name"], "max_objects": 10}),
    )
    .await;
    let ada = app.identity().await;
    let bob = app.identity().await;
    characters(
        &app,
        &ada,
        &[
            ("c1", "mage", 12, "Morgana"),
            ("c2", "rogue", 7, "Shade"),
            ("c3", "mage", 3, "Merlin"),
            ("c4", "warrior", 20, "Conan"),
            ("c5", "rogue", 15, "Nightshade"),
        ],
    )
    .await;
    let at = characters(&app, &bob, &[("b1", "mage", 30, "Gandalf")]).await;

    let read = |path: &str| {
        let path = path.to_owned();
        let (app, token) = (&app, ada.token.clone());
        async move { app.read_at(&token, &path, at).await }
    };
    let page = read("/v1/storage/characters/me?class=mage").await;
    assert_eq!(
        (keys(&page), page["total"].clone()),
        (vec!["c1".to_owned(), "c3".to_owned()], json!(2))
    );
    let page = read("/v1/storage/characters/me?class=mage,rogue&sort=level&order=desc").await;
    assert_eq!(keys(&page), ["c5", "c1", "c2", "c3"]);
    let page = read("/v1/storage/characters/me?level[gte]=7&level[lte]=15&sort=level").await;
    assert_eq!(keys(&page), ["c2", "c1", "c5"]);
    let page = read("/v1/storage/characters/me?name[contains]=SHADE").await;
    assert_eq!(keys(&page), ["c2", "c5"]);
    let page = read("/v1/storage/characters/me?level=20").await;
    assert_eq!(keys(&page), ["c4"]);

    // Pages of two, sorted by level, with the total on every page.
    let mut seen = Vec::new();
    let mut path = "/v1/storage/characters/me?sort=level&limit=2".to_owned();
    loop {
        let page = read(&path).await;
        assert_eq!(page["total"], 5);
        seen.extend(keys(&page));
        match page["next"].as_str() {
            Some(next) => {
                path = format!("/v1/storage/characters/me?sort=level&limit=2&after={next}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ["c3", "c2", "c1", "c5", "c4"]);
    let by_key = read("/v1/storage/characters/me?order=desc&limit=3").await;
    assert_eq!(keys(&by_key), ["c5", "c4", "c3"]);
    let rest = read(&format!(
        "/v1/storage/characters/me?order=desc&limit=3&after={}",
        by_key["next"].as_str().expect("next")
    ))
    .await;
    assert_eq!(keys(&rest), ["c2", "c1"]);

    // Across owners, and one owner among them.
    let everyone = read("/v1/storage/characters?class=mage&sort=level&order=desc").await;
    assert_eq!(
        (keys(&everyone), everyone["total"].clone()),
        (
            vec!["b1".to_owned(), "c1".to_owned(), "c3".to_owned()],
            json!(3)
        )
    );
    assert_eq!(everyone["objects"][0]["owner"], json!(bob.id));
    let bobs = read(&format!("/v1/storage/characters?owner={}", bob.id)).await;
    assert_eq!(keys(&bobs), ["b1"]);
    let bobs = app
        .read_at(
            &ada.token,
            &format!("/v1/storage/characters/{}", bob.id),
            at,
        )
        .await;
    assert_eq!(keys(&bobs), ["b1"]);

    // A listing as of a point before a change.
    let moved = app
        .ok(&ada.token, "put_object", json!({"collection": "characters", "key": "c3", "value": {"class": "rogue", "level": 4, "name": "Merlin"}}))
        .await;
    let now = app
        .read_at(
            &ada.token,
            "/v1/storage/characters/me?class=mage",
            position(&moved),
        )
        .await;
    assert_eq!(keys(&now), ["c1"]);
    let then = app
        .read_at(
            &ada.token,
            &format!("/v1/storage/characters/me?class=mage&as_of={at}"),
            0,
        )
        .await;
    assert_eq!(
        (keys(&then), then["total"].clone()),
        (vec!["c1".to_owned(), "c3".to_owned()], json!(2))
    );

    refused_read(
        &app,
        &ada.token,
        "/v1/storage/characters/me?bio=x",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
    )
    .await;
    refused_read(
        &app,
        &ada.token,
        "/v1/storage/characters/me?sort=bio",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
    )
    .await;
    refused_read(
        &app,
        &ada.token,
        "/v1/storage/characters/me?level[near]=3",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
    )
    .await;
    refused_read(
        &app,
        &ada.token,
        "/v1/storage/characters/me?order=up",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_order",
    )
    .await;
    refused_read(
        &app,
        &ada.token,
        "/v1/storage/characters/me?limit=101",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_limit",
    )
    .await;
    refused_read(
        &app,
        &ada.token,
        "/v1/storage/characters/me?after=zz",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_cursor",
    )
    .await;
    refused_read(
        &app,
        &ada.token,
        "/v1/storage/nothing/me",
        StatusCode::NOT_FOUND,
        "unknown_collection",
    )
    .await;
}

#[tokio::test]
async fn every_permission_and_refusal_holds_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    define(
        &app,
        json!({"collection": "saves", "max_objects": 2, "max_bytes": 64}),
    )
    .await;
    define(
        &app,
        json!({"collection": "world", "read": "public", "write": "server"}),
    )
    .await;
    define(
        &app,
        json!({"collection": "profiles", "schema": {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["age"]}}),
    )
    .await;
    let ada = app.identity().await;
    let bob = app.identity().await;
    let ada_id = ada.id.to_string();
    let put = |collection: &str, key: &str, value: Value| json!({"collection": collection, "key": key, "value": value});

    let written = app
        .ok(&ada.token, "put_object", put("saves", "a", json!({"n": 1})))
        .await;
    app.ok(&ada.token, "put_object", put("saves", "b", json!({"n": 2})))
        .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "c", json!({})),
        StatusCode::CONFLICT,
        "quota_exceeded",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "a", json!({"s": "x".repeat(80)})),
        StatusCode::PAYLOAD_TOO_LARGE,
        "object_too_large",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "a", json!([1, 2])),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "a", json!("text")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "a", json!({"deep": {"s": "a\u{0}b"}})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "a/b", json!({})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_key",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("saves", "a\u{0}", json!({})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_key",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("nothing", "a", json!({})),
        StatusCode::NOT_FOUND,
        "unknown_collection",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "put_object",
        put("world", "a", json!({})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    refused_command(
        &app,
        &ada.token,
        "define_collection",
        json!({"collection": "mine"}),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let violation = refused_command(
        &app,
        &ada.token,
        "put_object",
        put("profiles", "me", json!({"age": -3, "tags": ["ok", 7]})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema_violation",
    )
    .await;
    let mut paths: Vec<&str> = violation["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/age", "/tags/1"]);
    app.ok(
        &ada.token,
        "put_object",
        put("profiles", "me", json!({"age": 30})),
    )
    .await;

    // Another player's objects: not readable, writable, deletable, restorable or subscribable.
    let theirs = |body: Value| {
        let mut b = body;
        b["owner"] = json!(ada_id);
        b
    };
    refused_command(
        &app,
        &bob.token,
        "put_object",
        theirs(put("saves", "a", json!({}))),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    refused_command(
        &app,
        &bob.token,
        "delete_object",
        theirs(json!({"collection": "saves", "key": "a"})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    refused_command(
        &app,
        &bob.token,
        "delete_objects",
        theirs(json!({"collection": "saves", "keys": ["a"]})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    refused_command(
        &app,
        &bob.token,
        "restore_object",
        theirs(json!({"collection": "saves", "key": "a", "version": 1})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let at = position(&written);
    for path in [
        format!("/v1/storage/saves/{ada_id}/a?min_position={at}"),
        format!("/v1/storage/saves/{ada_id}/a/versions?min_position={at}"),
        format!("/v1/storage/saves/{ada_id}?min_position={at}"),
        format!("/v1/storage/saves?min_position={at}"),
    ] {
        refused_read(&app, &bob.token, &path, StatusCode::FORBIDDEN, "forbidden").await;
    }
    refused(
        &app,
        Some(&bob.token),
        &format!("topic=storage:saves:{ada_id}"),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    refused(
        &app,
        Some(&bob.token),
        "topic=storage:nothing:me",
        StatusCode::NOT_FOUND,
        "unknown_collection",
    )
    .await;
    refused(
        &app,
        Some(&bob.token),
        "topic=storage:saves",
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;
    // An admin reads and writes anyone's.
    let by_admin = app
        .ok(
            &admin,
            "put_object",
            theirs(put("saves", "a", json!({"n": 9}))),
        )
        .await;
    let read = app
        .read_at(
            &admin,
            &format!("/v1/storage/saves/{ada_id}/a"),
            position(&by_admin),
        )
        .await;
    assert_eq!(read["value"], json!({"n": 9}));

    // The game's objects: written by an admin only, read by every player in a public collection.
    refused_command(
        &app,
        &ada.token,
        "put_object",
        json!({"collection": "world", "owner": "game", "key": "town", "value": {}}),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let town = app
        .ok(
            &admin,
            "put_object",
            json!({"collection": "world", "owner": "game", "key": "town", "value": {"houses": 3}}),
        )
        .await;
    let read = app
        .read_at(&bob.token, "/v1/storage/world/game/town", position(&town))
        .await;
    assert_eq!(
        (read["owner"].clone(), read["value"].clone()),
        (json!("game"), json!({"houses": 3}))
    );

    // Bulk delete: the caller's existing objects, atomically, with the count in the answer.
    let bulk = app
        .ok(
            &ada.token,
            "delete_objects",
            json!({"collection": "saves", "keys": ["a", "b", "nope"]}),
        )
        .await;
    assert_eq!(bulk["result"], json!({"deleted": 2}));
    let listed = app
        .read_at(&ada.token, "/v1/storage/saves/me", position(&bulk))
        .await;
    assert_eq!(listed["total"], 0);
    let again = app
        .ok(
            &ada.token,
            "delete_objects",
            json!({"collection": "saves", "keys": ["a", "b"]}),
        )
        .await;
    assert_eq!(
        (again["result"].clone(), again["events"].clone()),
        (json!({"deleted": 0}), json!([]))
    );
    // The quota counts what exists now.
    app.ok(&ada.token, "put_object", put("saves", "c", json!({})))
        .await;

    // Replaying a bulk delete by its idempotency key answers the same count.
    app.ok(&bob.token, "put_object", put("saves", "x", json!({})))
        .await;
    let send = || {
        app.client
            .post(app.url("/v1/commands/delete_objects"))
            .bearer_auth(&bob.token)
            .header("idempotency-key", "bulk-1")
            .json(&json!({"collection": "saves", "keys": ["x"]}))
            .send()
    };
    let first: Value = send().await.expect("sent").json().await.expect("JSON");
    let replay = send().await.expect("sent");
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let replay: Value = replay.json().await.expect("JSON");
    assert_eq!(
        (first["result"].clone(), replay["result"].clone()),
        (json!({"deleted": 1}), json!({"deleted": 1}))
    );
}

#[tokio::test]
async fn a_live_subscriber_gets_the_first_page_then_every_write_delete_and_restore() {
    let app = TestApp::spawn().await;
    let at = define(&app, json!({"collection": "saves"})).await;
    let ada = app.identity().await;
    let first = app
        .ok(
            &ada.token,
            "put_object",
            json!({"collection": "saves", "key": "slot1", "value": {"hp": 1}}),
        )
        .await;
    app.read_at(&ada.token, "/v1/storage/saves/me", position(&first).max(at))
        .await;

    let mut sub = Sub::open(&app, &ada.token, "topic=storage:saves:me", None).await;
    let snapshot = sub.next().await;
    assert_eq!(snapshot.kind, "snapshot");
    assert_eq!(snapshot.topic(), format!("storage:saves:{}", ada.id));
    assert_eq!(keys(&snapshot.data["data"]), ["slot1"]);
    assert_eq!(snapshot.data["data"]["total"], 1);

    let second = app
        .ok(
            &ada.token,
            "put_object",
            json!({"collection": "saves", "key": "slot1", "value": {"hp": 2}}),
        )
        .await;
    let deleted = app
        .ok(
            &ada.token,
            "delete_object",
            json!({"collection": "saves", "key": "slot1"}),
        )
        .await;
    let restored = app
        .ok(
            &ada.token,
            "restore_object",
            json!({"collection": "saves", "key": "slot1", "version": 1}),
        )
        .await;
    let events = sub
        .until(|e| e.kind != "snapshot" && e.position() >= position(&restored))
        .await;
    let changes: Vec<(i64, String, Value)> = events
        .iter()
        .map(|e| {
            (
                e.position(),
                e.data["op"].as_str().unwrap_or_default().to_owned(),
                e.data["data"].clone(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 3, "{events:#?}");
    assert_eq!(changes[0].0, position(&second));
    assert_eq!(changes[0].2["value"], json!({"hp": 2}));
    assert_eq!(
        (changes[1].0, changes[1].1.as_str(), changes[1].2.clone()),
        (position(&deleted), "delete", Value::Null)
    );
    assert_eq!(changes[2].2["version"], 4);
    assert_eq!(changes[2].2["value"], json!({"hp": 1}));
}
