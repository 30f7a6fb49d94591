//! The `lab:` topic beside the academy's: parsed as the contract names it, for its player or an
//! admin.

use questlog_academy::Academy;
use questlog_domain::{Actor, App, Role};
use questlog_query_api::live::{topics, LiveTopic, Options};
use questlog_query_api::{ApiError, Reads};
use uuid::Uuid;

use crate::LabSessions;

fn parse(raw: &[&str], caller: Uuid) -> Result<Vec<String>, ApiError> {
    let mut app = App::new();
    app.add_module(&Academy).add_module(&LabSessions);
    let actor = Actor {
        identity: questlog_academy::values::PlayerId(caller),
        role: Role::Player,
    };
    topics(&Reads::of(&app), raw, &Options::default(), &actor)
        .map(|t| t.iter().map(LiveTopic::name).collect())
}

fn code(result: Result<Vec<String>, ApiError>) -> Option<String> {
    match result {
        Err(ApiError::Client(p)) => Some(p.code.to_string()),
        _ => None,
    }
}

#[test]
fn a_lab_topic_names_the_player_and_the_lab() {
    let me = Uuid::new_v4();
    assert_eq!(
        parse(&["lab:me:intro"], me).ok(),
        Some(vec![format!("lab:{me}:intro")])
    );
    assert_eq!(
        parse(&[&format!("lab:{me}:intro"), "player:me"], me).ok(),
        Some(vec![format!("lab:{me}:intro"), format!("player:{me}")])
    );
}

#[test]
fn a_malformed_lab_topic_is_refused() {
    for raw in [
        "lab",
        "lab:",
        "lab:me",
        "lab:me:",
        "lab:42:intro",
        "lab:me:a b",
    ] {
        assert_eq!(
            code(parse(&[raw], Uuid::nil())),
            Some("invalid_topic".to_owned()),
            "{raw:?} must be refused"
        );
    }
}

#[test]
fn another_players_lab_session_is_forbidden() {
    let other = Uuid::new_v4();
    assert_eq!(
        code(parse(&[&format!("lab:{other}:intro")], Uuid::new_v4())),
        Some("forbidden".to_owned())
    );
}
