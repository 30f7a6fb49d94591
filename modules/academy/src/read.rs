//! The registration of every feature's reads on the query API.

use questlog_domain::App;
use questlog_query_api::QueryApp as _;
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

use crate::{state_json, stream};

/// The academy's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    crate::players::profile::route,
    crate::players::leaderboard::page,
    crate::players::leaderboard::around,
    crate::catalog::read::labs,
))]
struct Reads;

/// Every feature's reads: routes, live topics (in the order `invalid_topic` lists them), state
/// views and the projections they follow.
pub(crate) fn register(app: &mut App) {
    crate::players::register_reads(app);
    crate::catalog::read::register(app);
    app.add_api_docs(Reads::openapi());
    app.add_state_json(stream::CATALOG, state_json::catalog)
        .add_state_json(stream::PLAYER, state_json::player)
        .add_state_json(stream::USERNAME, state_json::username);
}

#[cfg(test)]
mod tests {
    use questlog_domain::{Actor, Role};
    use questlog_query_api::live::{topics, LiveTopic, Options};
    use questlog_query_api::{ApiError, Reads};
    use uuid::Uuid;

    use super::*;
    use crate::values::PlayerId;

    fn parse(raw: &[&str], options: &Options, caller: Uuid) -> Result<Vec<String>, ApiError> {
        let mut app = App::new();
        app.add_module(&crate::Academy);
        let actor = Actor {
            identity: PlayerId(caller),
            role: Role::Player,
        };
        topics(&Reads::of(&app), raw, options, &actor)
            .map(|t| t.iter().map(LiveTopic::name).collect())
    }

    fn code(result: Result<Vec<String>, ApiError>) -> Option<String> {
        match result {
            Err(ApiError::Client(p)) => Some(p.code.to_string()),
            _ => None,
        }
    }

    #[test]
    fn topics_parse_as_the_contract_names_them() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        let none = Options::default();
        assert_eq!(
            parse(&["leaderboard"], &none, me).ok(),
            Some(vec!["leaderboard".to_owned()])
        );
        assert_eq!(
            parse(&[&format!("player:{other}"), "player:me"], &none, me).ok(),
            Some(vec![format!("player:{other}"), format!("player:{me}")])
        );
        // Duplicates count once; two windows of the leaderboard are two topics of one name.
        assert_eq!(
            parse(&["player:me", &format!("player:{me}")], &none, me)
                .ok()
                .map(|t| t.len()),
            Some(1)
        );
    }

    #[test]
    fn an_unknown_or_malformed_topic_is_refused() {
        for raw in [
            "",
            "leaderboards",
            "leaderboard:top",
            "presence:all",
            "player:",
            "player:42",
            "channel",
            "channel:",
            "channel:room",
            "channel:dm:42",
            "lab:me",
            ":",
        ] {
            assert_eq!(
                code(parse(&[raw], &Options::default(), Uuid::nil())),
                Some("invalid_topic".to_owned()),
                "{raw:?} must be refused"
            );
        }
    }

    #[test]
    fn the_leaderboard_window_is_checked_whichever_topics_are_named() {
        let options = |v: &str| Options::default().with("leaderboard_limit", v);
        assert!(parse(&["leaderboard"], &options("100"), Uuid::nil()).is_ok());
        assert_eq!(
            code(parse(&["player:me"], &options("0"), Uuid::nil())),
            Some("invalid_limit".to_owned())
        );
        assert_eq!(
            code(parse(&["leaderboard"], &options("101"), Uuid::nil())),
            Some("invalid_limit".to_owned())
        );
        assert_eq!(
            code(parse(&["leaderboard"], &options("ten"), Uuid::nil())),
            Some("bad_request".to_owned())
        );
    }
}
