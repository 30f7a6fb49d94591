//! `Command::parse`: the edge where a name and a JSON body become a command of valid values.

use serde_json::json;

use super::{achievement, lab_id, tz, username};
use crate::command::COMMAND_NAMES;
use crate::values::PlayerId;
use crate::{Command, Edge, Rejection, RejectionKind};

const PEER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

/// The edge every parse here runs at: the sender (player 1) and the id it draws.
fn edge() -> Edge {
    Edge {
        caller: PlayerId(uuid::Uuid::from_u128(1)),
        new_id: uuid::Uuid::from_u128(0x5e17),
    }
}

fn parse(name: &str, body: &serde_json::Value) -> Result<Command, Rejection> {
    Command::parse(name, body.to_string().as_bytes(), &edge())
}

#[track_caller]
fn rejected(name: &str, body: &serde_json::Value, code: &str, kind: RejectionKind) {
    match parse(name, body) {
        Ok(cmd) => panic!("{name} {body} parsed as {cmd:?}, expected {code}"),
        Err(r) => {
            assert_eq!((r.code, r.kind), (code, kind), "{name} {body}: {r}");
        }
    }
}

#[track_caller]
fn bad_request(name: &str, body: &serde_json::Value) {
    rejected(name, body, "bad_request", RejectionKind::BadRequest);
}

#[track_caller]
fn invalid(name: &str, body: &serde_json::Value, code: &str) {
    rejected(name, body, code, RejectionKind::Invalid);
}

/// A valid body for each command name.
fn valid_body(name: &str) -> serde_json::Value {
    match name {
        "register_player" => json!({"username": "ada"}),
        "set_timezone" => json!({"timezone": "Europe/Berlin"}),
        "complete_lab" => json!({"lab_id": "intro-1"}),
        "update_streak" => json!({}),
        "define_module" => json!({"module": 2, "title": "Pipes", "requires": [1]}),
        "define_lab" => json!({"lab_id": "intro-1", "module": 1, "title": "Hello", "xp": 50}),
        "grant_achievement" => json!({
            "player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "achievement": "bug_hunter",
        }),
        "revoke_xp" => json!({
            "player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "xp": 100,
            "reason": "scripted completions",
        }),
        "start_lab" => json!({"lab_id": "intro-1"}),
        "save_lab_state" => json!({
            "lab_id": "intro-1",
            "vfs_snapshot": {"/home/ada/notes.txt": "hello"},
            "current_step": 3,
        }),
        "delete_lab_state" => json!({"lab_id": "intro-1"}),
        other => panic!("no valid body written for {other}"),
    }
}

#[test]
fn every_command_name_parses_a_valid_body_into_the_command_of_that_name() {
    for name in COMMAND_NAMES {
        let cmd = parse(name, &valid_body(name)).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(cmd.name(), *name);
    }
}

#[test]
fn valid_bodies_carry_their_values_into_the_command() {
    let player = PlayerId("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap());
    let cases = [
        (
            "register_player",
            Command::RegisterPlayer {
                username: username("ada"),
            },
        ),
        (
            "set_timezone",
            Command::SetTimezone {
                timezone: tz("Europe/Berlin"),
            },
        ),
        (
            "complete_lab",
            Command::CompleteLab {
                lab_id: lab_id("intro-1"),
            },
        ),
        ("update_streak", Command::UpdateStreak),
        (
            "define_module",
            Command::DefineModule {
                module: 2,
                title: "Pipes".into(),
                requires: vec![1],
            },
        ),
        (
            "define_lab",
            Command::DefineLab {
                lab_id: lab_id("intro-1"),
                module: 1,
                title: "Hello".into(),
                xp: 50,
            },
        ),
        (
            "grant_achievement",
            Command::GrantAchievement {
                player_id: player,
                achievement: achievement("bug_hunter"),
            },
        ),
        (
            "revoke_xp",
            Command::RevokeXp {
                player_id: player,
                xp: 100,
                reason: "scripted completions".into(),
            },
        ),
        (
            "start_lab",
            Command::StartLab {
                lab_id: lab_id("intro-1"),
            },
        ),
        (
            "save_lab_state",
            Command::SaveLabState {
                lab_id: lab_id("intro-1"),
                vfs_snapshot: json!({"/home/ada/notes.txt": "hello"})
                    .as_object()
                    .cloned()
                    .unwrap(),
                current_step: 3,
            },
        ),
        (
            "delete_lab_state",
            Command::DeleteLabState {
                lab_id: lab_id("intro-1"),
                player_id: None,
            },
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(parse(name, &valid_body(name)), Ok(expected), "{name}");
    }
}

#[test]
fn an_unknown_command_name_is_unknown_command() {
    for name in ["", "launch_missiles", "Register_Player", "register-player"] {
        rejected(
            name,
            &json!({"username": "ada"}),
            "unknown_command",
            RejectionKind::NotFound,
        );
    }
}

#[test]
fn an_unknown_field_is_a_bad_request() {
    for name in COMMAND_NAMES {
        let mut body = valid_body(name);
        body["xp_bonus"] = json!(1000);
        bad_request(name, &body);
    }
}

#[test]
fn a_missing_field_is_a_bad_request() {
    for name in COMMAND_NAMES {
        let body = valid_body(name);
        let fields: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        for field in fields {
            // `requires` is optional: a module with no requirements.
            if field == "requires" {
                continue;
            }
            let mut without = body.clone();
            without.as_object_mut().unwrap().remove(&field);
            bad_request(name, &without);
        }
    }
}

#[test]
fn define_module_without_requires_requires_nothing() {
    assert_eq!(
        parse("define_module", &json!({"module": 3, "title": "Loops"})),
        Ok(Command::DefineModule {
            module: 3,
            title: "Loops".into(),
            requires: vec![]
        })
    );
}

#[test]
fn define_module_requires_are_sorted_and_deduplicated() {
    assert_eq!(
        parse(
            "define_module",
            &json!({"module": 5, "title": "Finale", "requires": [3, 1, 3, 2]})
        ),
        Ok(Command::DefineModule {
            module: 5,
            title: "Finale".into(),
            requires: vec![1, 2, 3]
        })
    );
}

#[test]
fn a_field_of_the_wrong_type_is_a_bad_request() {
    let cases = [
        ("register_player", json!({"username": 42})),
        ("register_player", json!({"username": null})),
        ("register_player", json!({"username": ["ada"]})),
        ("set_timezone", json!({"timezone": 1})),
        ("complete_lab", json!({"lab_id": {"id": "intro-1"}})),
        (
            "define_module",
            json!({"module": "2", "title": "Pipes", "requires": []}),
        ),
        (
            "define_module",
            json!({"module": 2, "title": "Pipes", "requires": 1}),
        ),
        (
            "define_lab",
            json!({"lab_id": "a", "module": 1, "title": "A", "xp": "50"}),
        ),
        (
            "define_lab",
            json!({"lab_id": "a", "module": 1, "title": "A", "xp": 1.5}),
        ),
        (
            "grant_achievement",
            json!({"player_id": "not-a-uuid", "achievement": "x"}),
        ),
        (
            "revoke_xp",
            json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "xp": true, "reason": "r"}),
        ),
    ];
    for (name, body) in &cases {
        bad_request(name, body);
    }
}

#[test]
fn a_body_that_is_not_a_json_object_is_a_bad_request() {
    for name in COMMAND_NAMES {
        for body in [json!([]), json!(null), json!("{}"), json!(7), json!(true)] {
            bad_request(name, &body);
        }
    }
}

#[test]
fn a_body_that_is_not_json_at_all_is_a_bad_request() {
    for raw in [
        &b""[..],
        b"{",
        b"username=ada",
        b"{\"username\": \"ada\",}",
        b"\xff\xfe",
    ] {
        let r = Command::parse("register_player", raw, &edge()).unwrap_err();
        assert_eq!((r.code, r.kind), ("bad_request", RejectionKind::BadRequest));
    }
}

#[test]
fn update_streak_takes_an_empty_object() {
    assert_eq!(
        Command::parse("update_streak", b"{}", &edge()),
        Ok(Command::UpdateStreak)
    );
    bad_request("update_streak", &json!({"day": "2024-01-01"}));
}

#[test]
fn a_username_longer_than_30_chars_is_rejected() {
    invalid(
        "register_player",
        &json!({"username": "a".repeat(31)}),
        "invalid_username",
    );
}

#[test]
fn a_username_of_exactly_30_chars_is_accepted() {
    let name = "a".repeat(30);
    assert_eq!(
        parse("register_player", &json!({"username": name})),
        Ok(Command::RegisterPlayer {
            username: username(&name)
        })
    );
}

#[test]
fn an_empty_username_is_rejected() {
    invalid(
        "register_player",
        &json!({"username": ""}),
        "invalid_username",
    );
}

#[test]
fn a_username_with_characters_outside_the_allowed_set_is_rejected() {
    for name in [
        "ada lovelace",
        "ada@home",
        "ådå",
        "ada\n",
        "<script>",
        "名前",
        "a/b",
    ] {
        invalid(
            "register_player",
            &json!({"username": name}),
            "invalid_username",
        );
    }
}

#[test]
fn a_username_may_use_letters_digits_underscore_dot_and_dash() {
    assert!(parse(
        "register_player",
        &json!({"username": "Ada_Lovelace.1815-x"})
    )
    .is_ok());
}

#[test]
fn a_timezone_outside_the_iana_database_is_rejected() {
    for name in ["", "Mars/Olympus_Mons", "GMT+25", "Europe/"] {
        invalid(
            "set_timezone",
            &json!({"timezone": name}),
            "invalid_timezone",
        );
    }
}

#[test]
fn an_iana_timezone_is_accepted() {
    for name in [
        "UTC",
        "America/Los_Angeles",
        "Pacific/Auckland",
        "Asia/Kolkata",
    ] {
        assert_eq!(
            parse("set_timezone", &json!({"timezone": name})),
            Ok(Command::SetTimezone { timezone: tz(name) })
        );
    }
}

#[test]
fn an_invalid_lab_id_is_rejected() {
    for id in ["", "intro 1", "intro/1", "ünïcode", &"x".repeat(65)] {
        invalid("complete_lab", &json!({"lab_id": id}), "invalid_lab_id");
        invalid(
            "define_lab",
            &json!({"lab_id": id, "module": 1, "title": "T", "xp": 10}),
            "invalid_lab_id",
        );
    }
}

#[test]
fn a_lab_id_of_exactly_64_chars_is_accepted() {
    assert!(parse("complete_lab", &json!({"lab_id": "x".repeat(64)})).is_ok());
}

#[test]
fn a_lab_xp_outside_1_to_100000_is_rejected() {
    for xp in [0_i64, -1, 100_001, i64::from(u32::MAX) + 1, i64::MIN] {
        invalid(
            "define_lab",
            &json!({"lab_id": "a", "module": 1, "title": "A", "xp": xp}),
            "invalid_xp",
        );
    }
}

#[test]
fn a_lab_xp_of_1_or_100000_is_accepted() {
    for xp in [1, 100_000] {
        assert!(parse(
            "define_lab",
            &json!({"lab_id": "a", "module": 1, "title": "A", "xp": xp})
        )
        .is_ok());
    }
}

#[test]
fn revoking_zero_or_negative_xp_is_rejected() {
    for xp in [0, -10] {
        invalid(
            "revoke_xp",
            &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "xp": xp, "reason": "r"}),
            "invalid_xp",
        );
    }
}

#[test]
fn a_module_number_below_1_is_rejected() {
    for module in [0_i64, -1, i64::from(u32::MAX) + 1] {
        invalid(
            "define_module",
            &json!({"module": module, "title": "M"}),
            "invalid_module",
        );
        invalid(
            "define_module",
            &json!({"module": 2, "title": "M", "requires": [module]}),
            "invalid_module",
        );
        invalid(
            "define_lab",
            &json!({"lab_id": "a", "module": module, "title": "A", "xp": 10}),
            "invalid_module",
        );
    }
}

/// `define_module` and `define_lab` both refuse `title` with `invalid_title`.
fn title_is_invalid_in_both_definitions(title: &str) {
    invalid(
        "define_module",
        &json!({"module": 1, "title": title}),
        "invalid_title",
    );
    invalid(
        "define_lab",
        &json!({"lab_id": "a", "module": 1, "title": title, "xp": 10}),
        "invalid_title",
    );
}

#[test]
fn a_blank_or_overlong_title_is_rejected() {
    for title in [String::new(), "   ".into(), "\t\n".into(), "t".repeat(201)] {
        title_is_invalid_in_both_definitions(&title);
    }
}

#[test]
fn a_title_of_200_characters_is_accepted_even_when_they_are_not_ascii() {
    let title = "é".repeat(200);
    assert!(parse("define_module", &json!({"module": 1, "title": title})).is_ok());
}

#[test]
fn a_blank_reason_is_rejected() {
    invalid(
        "revoke_xp",
        &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "xp": 5, "reason": " "}),
        "invalid_reason",
    );
}

#[test]
fn an_achievement_outside_lowercase_digits_and_underscore_is_rejected() {
    for name in ["", "First_Lab", "first-lab", "first lab", &"a".repeat(65)] {
        invalid(
            "grant_achievement",
            &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "achievement": name}),
            "invalid_achievement",
        );
    }
}

#[test]
fn a_vfs_must_be_a_json_object_of_at_most_32_kib() {
    let save = |vfs: serde_json::Value| json!({"lab_id": "intro-1", "vfs_snapshot": vfs, "current_step": 0});
    for not_object in [json!([]), json!("files"), json!(null), json!(3)] {
        invalid("save_lab_state", &save(not_object), "invalid_vfs");
    }
    // {"f":"…"} is 8 bytes of framing around the text.
    let fits = json!({"f": "x".repeat(32 * 1024 - 8)});
    assert!(parse("save_lab_state", &save(fits)).is_ok());
    let over = json!({"f": "x".repeat(32 * 1024 - 7)});
    invalid("save_lab_state", &save(over), "vfs_too_large");
}

#[test]
fn a_step_is_a_whole_number_from_0_to_1000() {
    for step in [json!(-1), json!(1001), json!(i64::MAX)] {
        invalid(
            "save_lab_state",
            &json!({"lab_id": "intro-1", "vfs_snapshot": {}, "current_step": step}),
            "invalid_step",
        );
    }
    bad_request(
        "save_lab_state",
        &json!({"lab_id": "intro-1", "vfs_snapshot": {}, "current_step": 1.5}),
    );
}

#[test]
fn a_module_number_beyond_what_the_read_models_store_is_rejected() {
    let beyond = i64::from(i32::MAX) + 1;
    invalid(
        "define_module",
        &json!({"module": beyond, "title": "M"}),
        "invalid_module",
    );
    invalid(
        "define_lab",
        &json!({"lab_id": "a", "module": beyond, "title": "A", "xp": 10}),
        "invalid_module",
    );
    assert!(parse(
        "define_module",
        &json!({"module": i32::MAX, "title": "M", "requires": [i32::MAX - 1]})
    )
    .is_ok());
}

// Text the log can store: Postgres refuses NUL (U+0000) in `text` and in `jsonb`, so the edge
// refuses it with the field's own code, before the command can reach a batch.

#[test]
fn a_title_holding_a_nul_character_is_invalid_title() {
    for title in ["\u{0}", "Pipes\u{0}", "\u{0}Pipes", "Pi\u{0}pes"] {
        title_is_invalid_in_both_definitions(title);
    }
}

#[test]
fn a_reason_holding_a_nul_character_is_invalid_reason() {
    invalid(
        "revoke_xp",
        &json!({"player_id": PEER, "xp": 5, "reason": "scripted\u{0}"}),
        "invalid_reason",
    );
}

#[test]
fn a_vfs_holding_a_nul_character_in_any_key_or_string_is_invalid_vfs() {
    let save = |vfs: serde_json::Value| json!({"lab_id": "intro-1", "vfs_snapshot": vfs, "current_step": 0});
    for vfs in [
        json!({"/a\u{0}": "text"}),
        json!({"/a": "te\u{0}xt"}),
        json!({"/a": {"b": {"c\u{0}": 1}}}),
        json!({"/a": {"b": ["ok", {"c": "\u{0}"}]}}),
        json!({"/a": [[["\u{0}"]]]}),
    ] {
        invalid("save_lab_state", &save(vfs), "invalid_vfs");
    }
}

#[test]
fn other_control_characters_and_any_unicode_are_kept_as_they_are() {
    let text = "tab\there\nnew line \u{1} \u{7f} \u{feff} \u{fffd} \u{ffff} \u{10ffff} 🚀";
    assert!(parse("define_module", &json!({"module": 1, "title": text})).is_ok());
    assert!(parse(
        "revoke_xp",
        &json!({"player_id": PEER, "xp": 5, "reason": text})
    )
    .is_ok());
    let vfs = json!({ text: { text: [text, 1.5e300, -0.0, null] } });
    let Ok(Command::SaveLabState { vfs_snapshot, .. }) = parse(
        "save_lab_state",
        &json!({"lab_id": "intro-1", "vfs_snapshot": vfs, "current_step": 0}),
    ) else {
        panic!("a vfs of any characters but NUL is valid");
    };
    assert_eq!(serde_json::Value::Object(vfs_snapshot), vfs);
}

// JSON the edge reads: one meaning per body.

fn raw(name: &str, body: &str) -> Result<Command, Rejection> {
    Command::parse(name, body.as_bytes(), &edge())
}

#[track_caller]
fn raw_bad_request(name: &str, body: &str, detail: &str) {
    match raw(name, body) {
        Ok(cmd) => panic!("{name} {body} parsed as {cmd:?}"),
        Err(r) => {
            assert_eq!(
                (r.code, r.kind),
                ("bad_request", RejectionKind::BadRequest),
                "{r}"
            );
            assert!(r.detail.contains(detail), "{name} {body}: {}", r.detail);
        }
    }
}

#[test]
fn a_body_naming_a_field_twice_is_a_bad_request() {
    raw_bad_request(
        "register_player",
        r#"{"username": "ada", "username": "bob"}"#,
        r#"duplicate key "username""#,
    );
    raw_bad_request(
        "revoke_xp",
        &format!(r#"{{"player_id": "{PEER}", "xp": 1, "reason": "r", "xp": 100000}}"#),
        r#"duplicate key "xp""#,
    );
}

#[test]
fn a_duplicate_key_inside_a_nested_object_is_a_bad_request_too() {
    raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0,
            "vfs_snapshot": {"/a": {"dir": {"f": 1, "f": 2}}}}"#,
        r#"duplicate key "f""#,
    );
    raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0, "vfs_snapshot": {"/a": [{"x": 1, "x": 1}]}}"#,
        r#"duplicate key "x""#,
    );
}

#[test]
fn equal_keys_in_different_objects_are_not_duplicates() {
    let cmd = raw(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0,
            "vfs_snapshot": {"/a": {"f": 1}, "/b": {"f": 2}, "f": [{"f": 3}, {"f": 4}]}}"#,
    );
    assert!(cmd.is_ok(), "{cmd:?}");
}

#[test]
fn a_body_nested_deeper_than_128_levels_is_a_bad_request_not_a_crash() {
    let deep = |depth: usize| {
        format!(
            r#"{{"lab_id": "intro-1", "current_step": 0, "vfs_snapshot": {{"f": {}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    assert!(raw("save_lab_state", &deep(100)).is_ok());
    raw_bad_request("save_lab_state", &deep(200), "recursion limit exceeded");
    // As deep as a 64 KiB body allows: refused the same way, without exhausting the stack.
    raw_bad_request(
        "save_lab_state",
        &deep(32 * 1024),
        "recursion limit exceeded",
    );
    let objects = "{\"a\":".repeat(20_000) + "1" + &"}".repeat(20_000);
    raw_bad_request("update_streak", &objects, "recursion limit exceeded");
}

#[test]
fn a_number_beyond_what_json_numbers_hold_here_is_a_bad_request() {
    raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0, "vfs_snapshot": {"f": 1e400}}"#,
        "number out of range",
    );
    // A whole number beyond 64 bits is read as a float, the wrong type for a step.
    raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 99999999999999999999999, "vfs_snapshot": {}}"#,
        "invalid type",
    );
}
