//! `Command::parse` of `heartbeat`: the edge where a name and a JSON body become a command of
//! valid values.

use questlog_academy::fixtures::lab_id;
use questlog_academy::values::PlayerId;
use questlog_domain::{Command as _, Edge, Rejection, RejectionKind};
use serde_json::json;

use crate::command::COMMAND_NAMES;
use crate::Command;

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
        "heartbeat" => json!({"current_lab": "intro-1"}),
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
fn a_valid_body_parses_into_its_values() {
    assert_eq!(
        parse("heartbeat", &valid_body("heartbeat")),
        Ok(Command::Heartbeat {
            current_lab: Some(lab_id("intro-1")),
        })
    );
}

#[test]
fn the_reapers_command_is_not_a_name_clients_send() {
    rejected(
        "go_offline",
        &json!({"player_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "last_seen": "2024-03-01T09:00:00Z"}),
        "unknown_command",
        RejectionKind::NotFound,
    );
}

#[test]
fn a_heartbeat_names_its_lab_or_null_explicitly() {
    assert_eq!(
        parse("heartbeat", &json!({"current_lab": null})),
        Ok(Command::Heartbeat { current_lab: None })
    );
    bad_request("heartbeat", &json!({}));
    bad_request("heartbeat", &json!({"current_lab": 5}));
    invalid(
        "heartbeat",
        &json!({"current_lab": "no spaces"}),
        "invalid_lab_id",
    );
}
