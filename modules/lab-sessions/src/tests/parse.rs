//! `Command::parse` of the lab sessions' commands: the edge where a name and a JSON body become a
//! command of valid values.

use questlog_academy::fixtures::lab_id;
use questlog_academy::values::PlayerId;
use questlog_domain::testing::Parsing;
use questlog_domain::RejectionKind;
use serde_json::json;

use crate::command::COMMAND_NAMES;
use crate::Command;

const PEER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

/// The parser under test.
const P: Parsing<Command> = Parsing(Command::parse);

/// A valid body for each command name.
fn valid_body(name: &str) -> serde_json::Value {
    match name {
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
    P.each_parses_as_named(COMMAND_NAMES, valid_body);
}

#[test]
fn valid_bodies_carry_their_values_into_the_command() {
    let cases = [
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
        assert_eq!(P.parse(name, &valid_body(name)), Ok(expected), "{name}");
    }
    assert_eq!(
        P.parse(
            "delete_lab_state",
            &json!({"lab_id": "intro-1", "player_id": PEER})
        ),
        Ok(Command::DeleteLabState {
            lab_id: lab_id("intro-1"),
            player_id: Some(PlayerId(PEER.parse().unwrap())),
        })
    );
}

#[test]
fn an_unknown_command_name_is_unknown_command() {
    for name in ["", "register_player", "Start_Lab", "start-lab"] {
        P.rejected(
            name,
            &json!({"lab_id": "intro-1"}),
            "unknown_command",
            RejectionKind::NotFound,
        );
    }
}

#[test]
fn an_unknown_field_is_a_bad_request() {
    P.unknown_field_refused(COMMAND_NAMES, valid_body);
}

#[test]
fn a_missing_field_is_a_bad_request() {
    P.missing_field_refused(COMMAND_NAMES, valid_body, &[]);
}

#[test]
fn an_invalid_lab_id_is_rejected() {
    for name in COMMAND_NAMES {
        for id in ["", "intro 1", "intro/1", "ünïcode", &"x".repeat(65)] {
            let mut body = valid_body(name);
            body["lab_id"] = json!(id);
            P.invalid(name, &body, "invalid_lab_id");
        }
    }
}

#[test]
fn a_vfs_must_be_a_json_object_of_at_most_32_kib() {
    let save = |vfs: serde_json::Value| json!({"lab_id": "intro-1", "vfs_snapshot": vfs, "current_step": 0});
    for not_object in [json!([]), json!("files"), json!(null), json!(3)] {
        P.invalid("save_lab_state", &save(not_object), "invalid_vfs");
    }
    // {"f":"…"} is 8 bytes of framing around the text.
    let fits = json!({"f": "x".repeat(32 * 1024 - 8)});
    assert!(P.parse("save_lab_state", &save(fits)).is_ok());
    let over = json!({"f": "x".repeat(32 * 1024 - 7)});
    P.invalid("save_lab_state", &save(over), "vfs_too_large");
}

#[test]
fn a_step_is_a_whole_number_from_0_to_1000() {
    for step in [json!(-1), json!(1001), json!(i64::MAX)] {
        P.invalid(
            "save_lab_state",
            &json!({"lab_id": "intro-1", "vfs_snapshot": {}, "current_step": step}),
            "invalid_step",
        );
    }
    P.bad_request(
        "save_lab_state",
        &json!({"lab_id": "intro-1", "vfs_snapshot": {}, "current_step": 1.5}),
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
        P.invalid("save_lab_state", &save(vfs), "invalid_vfs");
    }
}

#[test]
fn a_duplicate_key_inside_a_nested_object_is_a_bad_request_too() {
    P.raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0,
            "vfs_snapshot": {"/a": {"dir": {"f": 1, "f": 2}}}}"#,
        r#"duplicate key "f""#,
    );
    P.raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0, "vfs_snapshot": {"/a": [{"x": 1, "x": 1}]}}"#,
        r#"duplicate key "x""#,
    );
}

#[test]
fn equal_keys_in_different_objects_are_not_duplicates() {
    let cmd = P.raw(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0,
            "vfs_snapshot": {"/a": {"f": 1}, "/b": {"f": 2}, "f": [{"f": 3}, {"f": 4}]}}"#,
    );
    assert!(cmd.is_ok(), "{cmd:?}");
}

#[test]
fn a_number_beyond_what_json_numbers_hold_here_is_a_bad_request() {
    P.raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 0, "vfs_snapshot": {"f": 1e400}}"#,
        "number out of range",
    );
    // A whole number beyond 64 bits is read as a float, the wrong type for a step.
    P.raw_bad_request(
        "save_lab_state",
        r#"{"lab_id": "intro-1", "current_step": 99999999999999999999999, "vfs_snapshot": {}}"#,
        "invalid type",
    );
}

#[test]
fn a_vfs_of_any_characters_but_nul_is_kept_as_it_is() {
    let text = "tab\there\nnew line \u{1} \u{7f} \u{feff} \u{fffd} \u{ffff} \u{10ffff} 🚀";
    let vfs = json!({ text: { text: [text, 1.5e300, -0.0, null] } });
    let Ok(Command::SaveLabState { vfs_snapshot, .. }) = P.parse(
        "save_lab_state",
        &json!({"lab_id": "intro-1", "vfs_snapshot": vfs, "current_step": 0}),
    ) else {
        panic!("a vfs of any characters but NUL is valid");
    };
    assert_eq!(serde_json::Value::Object(vfs_snapshot), vfs);
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
    assert!(P.raw("save_lab_state", &deep(100)).is_ok());
    P.raw_bad_request("save_lab_state", &deep(200), "recursion limit exceeded");
    // As deep as a 64 KiB body allows: refused the same way, without exhausting the stack.
    P.raw_bad_request(
        "save_lab_state",
        &deep(32 * 1024),
        "recursion limit exceeded",
    );
}
