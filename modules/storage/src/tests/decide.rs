use chrono::{TimeZone as _, Utc};
use questlog_domain::testing::given;
use questlog_domain::values::PlayerId;
use questlog_domain::Personal;
use questlog_domain::{Actor, App, Domain, Edge, Event as Erased, Role, StreamId};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::values::{CollectionName, ObjectKey, Owner, Read, Write};
use crate::{collection_stream, object_stream, owner_stream, Command, Event, Storage};

fn domain() -> std::sync::Arc<Domain> {
    let mut app = App::new();
    app.add_module(&Storage);
    app.domain()
}

const ADA: PlayerId = PlayerId(Uuid::from_u128(1));
const BOB: PlayerId = PlayerId(Uuid::from_u128(2));

fn player(id: PlayerId) -> Actor {
    Actor {
        identity: id,
        role: Role::Player,
    }
}

fn admin() -> Actor {
    Actor {
        identity: PlayerId(Uuid::from_u128(99)),
        role: Role::Admin,
    }
}

fn now() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0)
        .single()
        .expect("a time")
}

fn saves() -> CollectionName {
    CollectionName::parse("saves").expect("a name")
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).expect("a key")
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

fn parse(name: &str, body: Value, caller: PlayerId) -> Command {
    let edge = Edge {
        caller,
        new_id: Uuid::nil(),
        names: questlog_domain::testing::NAMES,
    };
    Command::parse(name, body.to_string().as_bytes(), &edge).expect("parses")
}

fn defined(
    read: Read,
    write: Write,
    max_objects: u32,
    schema: Option<Value>,
) -> (StreamId, Erased) {
    (
        collection_stream(&saves()),
        Erased::new(Event::CollectionDefined {
            collection: saves(),
            read,
            write,
            max_bytes: 64,
            max_objects,
            indexed: vec![],
            personal: false,
            schema,
        }),
    )
}

fn written(owner: PlayerId, k: &str, version: u64, value: Value) -> (StreamId, Erased) {
    let o = Owner::Player(owner);
    (
        object_stream(&saves(), o, &key(k)),
        Erased::new(Event::ObjectWritten {
            collection: saves(),
            owner: o,
            key: key(k),
            version,
            value: Personal::unsealed(map(value)),
            by: owner,
        }),
    )
}

fn deleted(owner: PlayerId, k: &str, version: u64) -> (StreamId, Erased) {
    let o = Owner::Player(owner);
    (
        object_stream(&saves(), o, &key(k)),
        Erased::new(Event::ObjectDeleted {
            collection: saves(),
            owner: o,
            key: key(k),
            version,
            by: owner,
        }),
    )
}

fn added(owner: PlayerId, keys: &[&str]) -> (StreamId, Erased) {
    let o = Owner::Player(owner);
    (
        owner_stream(&saves(), o),
        Erased::new(Event::OwnerKeysAdded {
            collection: saves(),
            owner: o,
            keys: keys.iter().map(|k| key(k)).collect(),
        }),
    )
}

fn removed(owner: PlayerId, keys: &[&str]) -> (StreamId, Erased) {
    let o = Owner::Player(owner);
    (
        owner_stream(&saves(), o),
        Erased::new(Event::OwnerKeysRemoved {
            collection: saves(),
            owner: o,
            keys: keys.iter().map(|k| key(k)).collect(),
        }),
    )
}

fn open_collection() -> (StreamId, Erased) {
    defined(Read::Owner, Write::Owner, 2, None)
}

#[test]
fn a_first_write_creates_version_one_and_counts_the_object() {
    let d = domain();
    let put = parse(
        "put_object",
        json!({"collection": "saves", "key": "slot1", "value": {"hp": 3}}),
        ADA,
    );
    given(&d, vec![open_collection()])
        .when(player(ADA), now(), &put)
        .then(vec![
            added(ADA, &["slot1"]),
            written(ADA, "slot1", 1, json!({"hp": 3})),
        ]);
}

#[test]
fn a_write_expecting_the_current_version_makes_the_next() {
    let d = domain();
    let put = parse(
        "put_object",
        json!({"collection": "saves", "key": "slot1", "value": {"hp": 4}, "expected_version": 1}),
        ADA,
    );
    given(
        &d,
        vec![
            open_collection(),
            added(ADA, &["slot1"]),
            written(ADA, "slot1", 1, json!({"hp": 3})),
        ],
    )
    .when(player(ADA), now(), &put)
    .then(vec![written(ADA, "slot1", 2, json!({"hp": 4}))]);
}

#[test]
fn a_stale_write_conflicts_with_the_current_version_and_value() {
    let d = domain();
    let history = vec![
        open_collection(),
        added(ADA, &["slot1"]),
        written(ADA, "slot1", 1, json!({"hp": 3})),
        written(ADA, "slot1", 2, json!({"hp": 5})),
    ];
    for expected in [0, 1, 3] {
        let put = parse(
            "put_object",
            json!({"collection": "saves", "key": "slot1", "value": {"hp": 4}, "expected_version": expected}),
            ADA,
        );
        let refused = given(&d, history.clone())
            .when(player(ADA), now(), &put)
            .then_rejected("version_conflict");
        assert_eq!(
            refused.extensions.get("current"),
            Some(&json!({"version": 2, "value": {"hp": 5}}))
        );
    }
}

#[test]
fn expecting_zero_writes_only_what_does_not_exist_and_a_deleted_object_does_not() {
    let d = domain();
    let put = parse(
        "put_object",
        json!({"collection": "saves", "key": "slot1", "value": {"hp": 1}, "expected_version": 0}),
        ADA,
    );
    given(
        &d,
        vec![
            open_collection(),
            added(ADA, &["slot1"]),
            written(ADA, "slot1", 1, json!({"hp": 3})),
            removed(ADA, &["slot1"]),
            deleted(ADA, "slot1", 2),
        ],
    )
    .when(player(ADA), now(), &put)
    .then(vec![
        added(ADA, &["slot1"]),
        written(ADA, "slot1", 3, json!({"hp": 1})),
    ]);
}

#[test]
fn a_new_object_past_the_quota_is_refused_and_a_rewrite_is_not() {
    let d = domain();
    let full = vec![
        open_collection(),
        added(ADA, &["a"]),
        written(ADA, "a", 1, json!({})),
        added(ADA, &["b"]),
        written(ADA, "b", 1, json!({})),
    ];
    let third = parse(
        "put_object",
        json!({"collection": "saves", "key": "c", "value": {}}),
        ADA,
    );
    given(&d, full.clone())
        .when(player(ADA), now(), &third)
        .then_rejected("quota_exceeded");
    let again = parse(
        "put_object",
        json!({"collection": "saves", "key": "a", "value": {"x": 1}}),
        ADA,
    );
    given(&d, full)
        .when(player(ADA), now(), &again)
        .then(vec![written(ADA, "a", 2, json!({"x": 1}))]);
}

#[test]
fn a_value_over_max_bytes_is_too_large() {
    let d = domain();
    let put = parse(
        "put_object",
        json!({"collection": "saves", "key": "a", "value": {"s": "x".repeat(60)}}),
        ADA,
    );
    let refused = given(&d, vec![open_collection()])
        .when(player(ADA), now(), &put)
        .then_rejected("object_too_large");
    assert_eq!(refused.kind, questlog_domain::RejectionKind::TooLarge);
}

#[test]
fn a_value_breaking_the_schema_is_refused_with_json_pointers() {
    let d = domain();
    let schema = json!({"type": "object", "properties": {"hp": {"type": "integer", "minimum": 0}}, "required": ["hp"]});
    let put = parse(
        "put_object",
        json!({"collection": "saves", "key": "a", "value": {"hp": -1}}),
        ADA,
    );
    let refused = given(
        &d,
        vec![defined(Read::Owner, Write::Owner, 10, Some(schema))],
    )
    .when(player(ADA), now(), &put)
    .then_rejected("schema_violation");
    let errors = refused
        .extensions
        .get("errors")
        .and_then(Value::as_array)
        .expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["path"], "/hp");
}

#[test]
fn players_write_only_their_own_objects_and_never_a_server_collection() {
    let d = domain();
    let theirs = parse(
        "put_object",
        json!({"collection": "saves", "owner": BOB.to_string(), "key": "a", "value": {}}),
        ADA,
    );
    given(&d, vec![open_collection()])
        .when(player(ADA), now(), &theirs)
        .then_rejected("forbidden");
    let game = parse(
        "put_object",
        json!({"collection": "saves", "owner": "game", "key": "a", "value": {}}),
        ADA,
    );
    given(&d, vec![open_collection()])
        .when(player(ADA), now(), &game)
        .then_rejected("forbidden");
    let mine = parse(
        "put_object",
        json!({"collection": "saves", "key": "a", "value": {}}),
        ADA,
    );
    given(&d, vec![defined(Read::Public, Write::Server, 10, None)])
        .when(player(ADA), now(), &mine)
        .then_rejected("forbidden");
    given(&d, vec![open_collection()])
        .when(
            player(ADA),
            now(),
            &parse(
                "put_object",
                json!({"collection": "nope", "key": "a", "value": {}}),
                ADA,
            ),
        )
        .then_rejected("unknown_collection");
}

#[test]
fn an_admin_writes_the_games_objects() {
    let d = domain();
    let put = parse(
        "put_object",
        json!({"collection": "saves", "owner": "game", "key": "town", "value": {"houses": 3}}),
        ADA,
    );
    let events = given(&d, vec![defined(Read::Public, Write::Server, 10, None)])
        .when(admin(), now(), &put)
        .outcome()
        .expect("written");
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].0,
        object_stream(&saves(), Owner::Game, &key("town"))
    );
}

#[test]
fn only_an_admin_defines_a_collection() {
    let d = domain();
    let define = parse("define_collection", json!({"collection": "saves"}), ADA);
    given(&d, vec![])
        .when(player(ADA), now(), &define)
        .then_rejected("forbidden");
    given(&d, vec![]).when(admin(), now(), &define).then(vec![(
        collection_stream(&saves()),
        Erased::new(Event::CollectionDefined {
            collection: saves(),
            read: Read::Owner,
            write: Write::Owner,
            max_bytes: 65_536,
            max_objects: 100,
            indexed: vec![],
            personal: false,
            schema: None,
        }),
    )]);
}

#[test]
fn deleting_needs_an_object_and_keeps_counting() {
    let d = domain();
    let history = vec![
        open_collection(),
        added(ADA, &["a"]),
        written(ADA, "a", 1, json!({})),
    ];
    let delete = parse(
        "delete_object",
        json!({"collection": "saves", "key": "a"}),
        ADA,
    );
    given(&d, history.clone())
        .when(player(ADA), now(), &delete)
        .then(vec![removed(ADA, &["a"]), deleted(ADA, "a", 2)]);
    let missing = parse(
        "delete_object",
        json!({"collection": "saves", "key": "b"}),
        ADA,
    );
    given(&d, history.clone())
        .when(player(ADA), now(), &missing)
        .then_rejected("object_not_found");
    let stale = parse(
        "delete_object",
        json!({"collection": "saves", "key": "a", "expected_version": 2}),
        ADA,
    );
    given(&d, history)
        .when(player(ADA), now(), &stale)
        .then_rejected("version_conflict");
}

#[test]
fn a_bulk_delete_deletes_the_existing_ones_and_says_how_many() {
    let d = domain();
    let history = vec![
        open_collection(),
        added(ADA, &["a"]),
        written(ADA, "a", 1, json!({})),
        added(ADA, &["b"]),
        written(ADA, "b", 1, json!({})),
    ];
    let bulk = parse(
        "delete_objects",
        json!({"collection": "saves", "keys": ["a", "zzz", "b", "a"]}),
        ADA,
    );
    let events = given(&d, history)
        .when(player(ADA), now(), &bulk)
        .outcome()
        .expect("accepted");
    assert_eq!(
        events,
        vec![
            deleted(ADA, "a", 2),
            deleted(ADA, "b", 2),
            removed(ADA, &["a", "b"])
        ]
    );
    let erased: Vec<Erased> = events.into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        questlog_domain::Command::result(&bulk, &erased),
        Some(json!({"deleted": 2}))
    );
}

#[test]
fn a_restore_writes_an_earlier_value_as_a_new_version() {
    let d = domain();
    let history = vec![
        open_collection(),
        added(ADA, &["a"]),
        written(ADA, "a", 1, json!({"hp": 1})),
        written(ADA, "a", 2, json!({"hp": 2})),
        removed(ADA, &["a"]),
        deleted(ADA, "a", 3),
    ];
    let restore = parse(
        "restore_object",
        json!({"collection": "saves", "key": "a", "version": 1}),
        ADA,
    );
    given(&d, history.clone())
        .when(player(ADA), now(), &restore)
        .then(vec![
            added(ADA, &["a"]),
            (
                object_stream(&saves(), Owner::Player(ADA), &key("a")),
                Erased::new(Event::ObjectRestored {
                    collection: saves(),
                    owner: Owner::Player(ADA),
                    key: key("a"),
                    version: 4,
                    from_version: 1,
                    value: Personal::unsealed(map(json!({"hp": 1}))),
                    by: ADA,
                }),
            ),
        ]);
    for missing in [3, 4] {
        let restore = parse(
            "restore_object",
            json!({"collection": "saves", "key": "a", "version": missing}),
            ADA,
        );
        given(&d, history.clone())
            .when(player(ADA), now(), &restore)
            .then_rejected("version_not_found");
    }
}

#[test]
fn bad_input_is_refused_at_the_edge() {
    let edge = Edge {
        caller: ADA,
        new_id: Uuid::nil(),
        names: questlog_domain::testing::NAMES,
    };
    let cases = [
        (
            "put_object",
            json!({"collection": "saves", "key": "a", "value": [1]}),
            "invalid_value",
        ),
        (
            "put_object",
            json!({"collection": "saves", "key": "a", "value": {"k": "a\u{0}b"}}),
            "invalid_value",
        ),
        (
            "put_object",
            json!({"collection": "saves", "key": "a", "value": {"a\u{0}": 1}}),
            "invalid_value",
        ),
        (
            "put_object",
            json!({"collection": "saves", "key": "a b", "value": {}}),
            "invalid_key",
        ),
        (
            "put_object",
            json!({"collection": "saves", "key": "x".repeat(129), "value": {}}),
            "invalid_key",
        ),
        (
            "put_object",
            json!({"collection": "Saves", "key": "a", "value": {}}),
            "invalid_collection",
        ),
        (
            "put_object",
            json!({"collection": "saves", "key": "a", "value": {}, "expected_version": -1}),
            "invalid_version",
        ),
        (
            "put_object",
            json!({"collection": "saves", "owner": "someone", "key": "a", "value": {}}),
            "invalid_owner",
        ),
        (
            "delete_objects",
            json!({"collection": "saves", "keys": []}),
            "invalid_keys",
        ),
        (
            "restore_object",
            json!({"collection": "saves", "key": "a", "version": 0}),
            "invalid_version",
        ),
        (
            "define_collection",
            json!({"collection": "saves", "max_bytes": 1_048_577}),
            "invalid_max_bytes",
        ),
        (
            "define_collection",
            json!({"collection": "saves", "max_objects": 0}),
            "invalid_max_objects",
        ),
        (
            "define_collection",
            json!({"collection": "saves", "indexed": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}),
            "invalid_indexed",
        ),
        (
            "define_collection",
            json!({"collection": "saves", "indexed": ["a-b"]}),
            "invalid_indexed",
        ),
        (
            "define_collection",
            json!({"collection": "saves", "schema": {"type": 12}}),
            "invalid_schema",
        ),
    ];
    for (name, body, code) in cases {
        let refused = Command::parse(name, body.to_string().as_bytes(), &edge).expect_err(name);
        assert_eq!(refused.code, code, "{name} {body}");
    }
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let refused = Command::parse(
        "delete_objects",
        json!({"collection": "saves", "keys": keys})
            .to_string()
            .as_bytes(),
        &edge,
    )
    .expect_err("too many");
    assert_eq!(refused.code, "invalid_keys");
}
