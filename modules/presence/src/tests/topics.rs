//! The `presence` live topic, parsed among the academy's as the contract names them.

use questlog_academy::values::PlayerId;
use questlog_academy::Academy;
use questlog_domain::{Actor, App, Role};
use questlog_query_api::live::{topics, LiveTopic, Options};
use questlog_query_api::{ApiError, Reads};
use uuid::Uuid;

use crate::Presence;

fn parse(raw: &[&str], options: &Options, caller: Uuid) -> Result<Vec<String>, ApiError> {
    let mut app = App::new();
    app.add_module(&Academy);
    app.add_module(&Presence::default());
    let actor = Actor {
        identity: PlayerId(caller),
        role: Role::Player,
    };
    topics(&Reads::of(&app), raw, options, &actor).map(|t| t.iter().map(LiveTopic::name).collect())
}

fn code(result: Result<Vec<String>, ApiError>) -> Option<String> {
    match result {
        Err(ApiError::Client(p)) => Some(p.code.to_string()),
        _ => None,
    }
}

#[test]
fn presence_parses_beside_the_leaderboard() {
    assert_eq!(
        parse(
            &["leaderboard", "presence"],
            &Options::default(),
            Uuid::new_v4()
        )
        .ok(),
        Some(vec!["leaderboard".to_owned(), "presence".to_owned()])
    );
}

#[test]
fn presence_takes_no_argument() {
    assert_eq!(
        code(parse(&["presence:all"], &Options::default(), Uuid::nil())),
        Some("invalid_topic".to_owned())
    );
}

#[test]
fn the_leaderboard_window_is_checked_with_presence_alone() {
    let options = Options::default().with("leaderboard_limit", "0");
    assert_eq!(
        code(parse(&["presence"], &options, Uuid::nil())),
        Some("invalid_limit".to_owned())
    );
}
