//! `Command::parse` of the chat's commands: the edge where a name and a JSON body become a
//! command of valid values.

use questlog_academy::fixtures::lab_id;
use questlog_academy::values::PlayerId;
use questlog_domain::testing::{self, Parsing};
use serde_json::json;

use crate::command::COMMAND_NAMES;
use crate::values::{Channel, MessageContent, MessageId};
use crate::Command;

const PEER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

/// The parser under test.
const P: Parsing<Command> = Parsing(Command::parse);

/// A valid body for each command name.
fn valid_body(name: &str) -> serde_json::Value {
    match name {
        "send_message" => json!({"channel": format!("dm:{PEER}"), "content": "hi!"}),
        "edit_message" => json!({"message_id": PEER, "content": "hello!"}),
        "delete_message" => json!({"message_id": PEER}),
        other => panic!("no valid body written for {other}"),
    }
}

#[test]
fn every_command_name_parses_a_valid_body_into_the_command_of_that_name() {
    P.each_parses_as_named(COMMAND_NAMES, valid_body);
}

#[test]
fn valid_bodies_carry_their_values_into_the_command() {
    let player = PlayerId(PEER.parse().unwrap());
    let cases = [
        (
            "send_message",
            Command::SendMessage {
                message_id: MessageId(testing::edge().new_id),
                channel: Channel::direct(testing::edge().caller, player),
                content: MessageContent::parse("hi!").unwrap(),
            },
        ),
        (
            "edit_message",
            Command::EditMessage {
                message_id: MessageId(player.0),
                content: MessageContent::parse("hello!").unwrap(),
            },
        ),
        (
            "delete_message",
            Command::DeleteMessage {
                message_id: MessageId(player.0),
            },
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(P.parse(name, &valid_body(name)), Ok(expected), "{name}");
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
fn a_message_of_blank_or_2001_characters_is_invalid_content() {
    for content in [String::new(), "   \n\t".to_owned(), "é".repeat(2001)] {
        P.invalid(
            "send_message",
            &json!({"channel": "global", "content": content}),
            "invalid_content",
        );
        P.invalid(
            "edit_message",
            &json!({"message_id": PEER, "content": content}),
            "invalid_content",
        );
    }
    let longest = "é".repeat(2000);
    assert!(P
        .parse(
            "send_message",
            &json!({"channel": "global", "content": longest})
        )
        .is_ok());
}

#[test]
fn channels_are_global_a_lab_or_a_direct_conversation() {
    let me = testing::edge().caller;
    let peer = PlayerId(PEER.parse().unwrap());
    let channel = |raw: &str| Channel::parse(raw, me).map_err(|r| r.code);
    assert_eq!(channel("global"), Ok(Channel::Global));
    assert_eq!(channel("lab:intro-1"), Ok(Channel::Lab(lab_id("intro-1"))));
    assert_eq!(
        channel(&format!("dm:{PEER}")),
        Ok(Channel::direct(me, peer))
    );
    // Either side names the same conversation.
    assert_eq!(
        Channel::parse(&format!("dm:{me}"), peer),
        Ok(Channel::direct(me, peer))
    );
    assert_eq!(
        channel(&Channel::direct(peer, me).to_string()),
        Ok(Channel::direct(me, peer))
    );
    for bad in [
        "",
        "Global",
        "lab:",
        "lab:no spaces",
        "dm:",
        "dm:42",
        "room:1",
        &format!("dm:{me}"),
    ] {
        assert_eq!(channel(bad), Err("invalid_channel"), "{bad:?}");
    }
}

#[test]
fn a_canonical_direct_channel_is_only_for_its_two_players() {
    let a = PlayerId(uuid::Uuid::from_u128(7));
    let b = PlayerId(uuid::Uuid::from_u128(8));
    let name = Channel::direct(a, b).to_string();
    assert!(Channel::parse(&name, a).is_ok());
    assert!(Channel::parse(&name, b).is_ok());
    assert_eq!(
        Channel::parse(&name, testing::edge().caller).map_err(|r| r.code),
        Err("invalid_channel")
    );
}

#[test]
fn a_message_holding_a_nul_character_is_invalid_content() {
    for content in ["hi\u{0}", "\u{0}", "a\u{0}\u{0}b"] {
        P.invalid(
            "send_message",
            &json!({"channel": "global", "content": content}),
            "invalid_content",
        );
        P.invalid(
            "edit_message",
            &json!({"message_id": PEER, "content": content}),
            "invalid_content",
        );
    }
}

#[test]
fn other_control_characters_and_any_unicode_are_kept_as_they_are() {
    let text = "tab\there\nnew line \u{1} \u{7f} \u{feff} \u{fffd} \u{ffff} \u{10ffff} 🚀";
    let Ok(Command::SendMessage { content, .. }) = P.parse(
        "send_message",
        &json!({"channel": "global", "content": text}),
    ) else {
        panic!("a message of any characters but NUL is valid");
    };
    assert_eq!(content.as_str(), text);
}
