//! `Command::parse` of `heartbeat`: the edge where a name and a JSON body become a command of
//! valid values.

use questlog_academy::fixtures::lab_id;
use questlog_domain::testing::Parsing;
use questlog_domain::RejectionKind;
use serde_json::json;

use crate::command::COMMAND_NAMES;
use crate::Command;

/// The parser under test.
const P: Parsing<Command> = Parsing(Command::parse);

/// A valid body for each command name.
fn valid_body(name: &str) -> serde_json::Value {
    match name {
        "heartbeat" => json!({"current_lab": "intro-1"}),
        other => panic!("no valid body written for {other}"),
    }
}

#[test]
fn every_command_name_parses_a_valid_body_into_the_command_of_that_name() {
    P.each_parses_as_named(COMMAND_NAMES, valid_body);
}

#[test]
fn a_valid_body_parses_into_its_values() {
    assert_eq!(
        P.parse("heartbeat", &valid_body("heartbeat")),
        Ok(Command::Heartbeat {
            current_lab: Some(lab_id("intro-1")),
        })
    );
}

#[test]
fn the_reapers_command_is_not_a_name_clients_send() {
    P.rejected(
        "go_offline",
        &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "last_seen": "2024-03-01T09:00:00Z"}),
        "unknown_command",
        RejectionKind::NotFound,
    );
}

#[test]
fn a_heartbeat_names_its_lab_or_null_explicitly() {
    assert_eq!(
        P.parse("heartbeat", &json!({"current_lab": null})),
        Ok(Command::Heartbeat { current_lab: None })
    );
    P.bad_request("heartbeat", &json!({}));
    P.bad_request("heartbeat", &json!({"current_lab": 5}));
    P.invalid(
        "heartbeat",
        &json!({"current_lab": "no spaces"}),
        "invalid_lab_id",
    );
}
