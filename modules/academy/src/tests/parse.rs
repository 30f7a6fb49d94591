//! `Command::parse`: the edge where a name and a JSON body become a command of valid values.

use serde_json::json;

use super::{achievement, lab_id, tz, username};
use crate::command::COMMAND_NAMES;
use crate::values::PlayerId;
use crate::{Command, RejectionKind};
use questlog_domain::testing::{self, Parsing};

const PEER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

/// The parser under test.
const P: Parsing<Command> = Parsing(Command::parse);

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
        other => panic!("no valid body written for {other}"),
    }
}

#[test]
fn every_command_name_parses_a_valid_body_into_the_command_of_that_name() {
    P.each_parses_as_named(COMMAND_NAMES, valid_body);
}

#[test]
fn valid_bodies_carry_their_values_into_the_command() {
    let player = PlayerId("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap());
    let cases = [
        (
            "register_player",
            Command::register_player(username("ada"), &testing::NAMES),
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
    ];
    for (name, expected) in cases {
        assert_eq!(P.parse(name, &valid_body(name)), Ok(expected), "{name}");
    }
}

#[test]
fn an_unknown_command_name_is_unknown_command() {
    for name in ["", "launch_missiles", "Register_Player", "register-player"] {
        P.rejected(
            name,
            &json!({"username": "ada"}),
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
    // `requires` is optional: a module with no requirements.
    P.missing_field_refused(COMMAND_NAMES, valid_body, &["requires"]);
}

#[test]
fn define_module_without_requires_requires_nothing() {
    assert_eq!(
        P.parse("define_module", &json!({"module": 3, "title": "Loops"})),
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
        P.parse(
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
        P.bad_request(name, body);
    }
}

#[test]
fn a_body_that_is_not_a_json_object_is_a_bad_request() {
    for name in COMMAND_NAMES {
        for body in [json!([]), json!(null), json!("{}"), json!(7), json!(true)] {
            P.bad_request(name, &body);
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
        let r = Command::parse("register_player", raw, &testing::edge()).unwrap_err();
        assert_eq!((r.code, r.kind), ("bad_request", RejectionKind::BadRequest));
    }
}

#[test]
fn update_streak_takes_an_empty_object() {
    assert_eq!(
        Command::parse("update_streak", b"{}", &testing::edge()),
        Ok(Command::UpdateStreak)
    );
    P.bad_request("update_streak", &json!({"day": "2024-01-01"}));
}

#[test]
fn a_username_longer_than_30_chars_is_rejected() {
    P.invalid(
        "register_player",
        &json!({"username": "a".repeat(31)}),
        "invalid_username",
    );
}

#[test]
fn a_username_of_exactly_30_chars_is_accepted() {
    let name = "a".repeat(30);
    assert_eq!(
        P.parse("register_player", &json!({"username": name})),
        Ok(Command::register_player(username(&name), &testing::NAMES))
    );
}

#[test]
fn an_empty_username_is_rejected() {
    P.invalid(
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
        P.invalid(
            "register_player",
            &json!({"username": name}),
            "invalid_username",
        );
    }
}

#[test]
fn a_username_may_use_letters_digits_underscore_dot_and_dash() {
    assert!(P
        .parse(
            "register_player",
            &json!({"username": "Ada_Lovelace.1815-x"})
        )
        .is_ok());
}

#[test]
fn a_timezone_outside_the_iana_database_is_rejected() {
    for name in ["", "Mars/Olympus_Mons", "GMT+25", "Europe/"] {
        P.invalid(
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
            P.parse("set_timezone", &json!({"timezone": name})),
            Ok(Command::SetTimezone { timezone: tz(name) })
        );
    }
}

#[test]
fn an_invalid_lab_id_is_rejected() {
    for id in ["", "intro 1", "intro/1", "ünïcode", &"x".repeat(65)] {
        P.invalid("complete_lab", &json!({"lab_id": id}), "invalid_lab_id");
        P.invalid(
            "define_lab",
            &json!({"lab_id": id, "module": 1, "title": "T", "xp": 10}),
            "invalid_lab_id",
        );
    }
}

#[test]
fn a_lab_id_of_exactly_64_chars_is_accepted() {
    assert!(P
        .parse("complete_lab", &json!({"lab_id": "x".repeat(64)}))
        .is_ok());
}

#[test]
fn a_lab_xp_outside_1_to_100000_is_rejected() {
    for xp in [0_i64, -1, 100_001, i64::from(u32::MAX) + 1, i64::MIN] {
        P.invalid(
            "define_lab",
            &json!({"lab_id": "a", "module": 1, "title": "A", "xp": xp}),
            "invalid_xp",
        );
    }
}

#[test]
fn a_lab_xp_of_1_or_100000_is_accepted() {
    for xp in [1, 100_000] {
        assert!(P
            .parse(
                "define_lab",
                &json!({"lab_id": "a", "module": 1, "title": "A", "xp": xp})
            )
            .is_ok());
    }
}

#[test]
fn revoking_zero_or_negative_xp_is_rejected() {
    for xp in [0, -10] {
        P.invalid(
            "revoke_xp",
            &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "xp": xp, "reason": "r"}),
            "invalid_xp",
        );
    }
}

#[test]
fn a_module_number_below_1_is_rejected() {
    for module in [0_i64, -1, i64::from(u32::MAX) + 1] {
        P.invalid(
            "define_module",
            &json!({"module": module, "title": "M"}),
            "invalid_module",
        );
        P.invalid(
            "define_module",
            &json!({"module": 2, "title": "M", "requires": [module]}),
            "invalid_module",
        );
        P.invalid(
            "define_lab",
            &json!({"lab_id": "a", "module": module, "title": "A", "xp": 10}),
            "invalid_module",
        );
    }
}

/// `define_module` and `define_lab` both refuse `title` with `invalid_title`.
fn title_is_invalid_in_both_definitions(title: &str) {
    P.invalid(
        "define_module",
        &json!({"module": 1, "title": title}),
        "invalid_title",
    );
    P.invalid(
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
    assert!(P
        .parse("define_module", &json!({"module": 1, "title": title}))
        .is_ok());
}

#[test]
fn a_blank_reason_is_rejected() {
    P.invalid(
        "revoke_xp",
        &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "xp": 5, "reason": " "}),
        "invalid_reason",
    );
}

#[test]
fn an_achievement_outside_lowercase_digits_and_underscore_is_rejected() {
    for name in ["", "First_Lab", "first-lab", "first lab", &"a".repeat(65)] {
        P.invalid(
            "grant_achievement",
            &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "achievement": name}),
            "invalid_achievement",
        );
    }
}

#[test]
fn a_module_number_beyond_what_the_read_models_store_is_rejected() {
    let beyond = i64::from(i32::MAX) + 1;
    P.invalid(
        "define_module",
        &json!({"module": beyond, "title": "M"}),
        "invalid_module",
    );
    P.invalid(
        "define_lab",
        &json!({"lab_id": "a", "module": beyond, "title": "A", "xp": 10}),
        "invalid_module",
    );
    assert!(P
        .parse(
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
    P.invalid(
        "revoke_xp",
        &json!({"player_id": PEER, "xp": 5, "reason": "scripted\u{0}"}),
        "invalid_reason",
    );
}

#[test]
fn other_control_characters_and_any_unicode_are_kept_as_they_are() {
    let text = "tab\there\nnew line \u{1} \u{7f} \u{feff} \u{fffd} \u{ffff} \u{10ffff} 🚀";
    assert!(P
        .parse("define_module", &json!({"module": 1, "title": text}))
        .is_ok());
    assert!(P
        .parse(
            "revoke_xp",
            &json!({"player_id": PEER, "xp": 5, "reason": text})
        )
        .is_ok());
}

// JSON the edge reads: one meaning per body.

#[test]
fn a_body_naming_a_field_twice_is_a_bad_request() {
    P.raw_bad_request(
        "register_player",
        r#"{"username": "ada", "username": "bob"}"#,
        r#"duplicate key "username""#,
    );
    P.raw_bad_request(
        "revoke_xp",
        &format!(r#"{{"player_id": "{PEER}", "xp": 1, "reason": "r", "xp": 100000}}"#),
        r#"duplicate key "xp""#,
    );
}

#[test]
fn a_body_nested_deeper_than_128_levels_is_a_bad_request_not_a_crash() {
    let objects = "{\"a\":".repeat(20_000) + "1" + &"}".repeat(20_000);
    P.raw_bad_request("update_streak", &objects, "recursion limit exceeded");
}
