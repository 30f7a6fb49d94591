//! `register_player`, and the rule that player commands need a registered player.

use super::{
    at, complete, lab_defined, module_defined, on_player, player, registered,
    registered_before_digests, tz, username,
};
use crate::catalog::CatalogState;
use crate::player::Registration;
use crate::stream::fold;
use crate::testing::given;
use crate::{Command, Event, PlayerState, RejectionKind, StreamId};

fn register(name: &str) -> Command {
    Command::register_player(username(name), &questlog_domain::testing::NAMES)
}

#[test]
fn a_new_identity_claims_its_username_and_registers() {
    let ada = player(1);
    given(vec![])
        .when(ada, at("2024-03-01T09:00:00Z"), register("Ada"))
        .then(registered(ada, "Ada"));
}

#[test]
fn the_username_is_claimed_on_the_stream_of_the_keyed_digest_of_its_lowercase_form() {
    let ada = player(1);
    let claim = questlog_domain::testing::NAMES.digest("adal");
    assert!(!claim.contains("adal"));
    given(vec![])
        .when(ada, at("2024-03-01T09:00:00Z"), register("AdaL"))
        .then(vec![
            (
                StreamId::Username(claim),
                Event::UsernameClaimed {
                    player_id: ada.identity,
                    username: questlog_domain::Personal::new(ada.identity, username("AdaL")),
                },
            ),
            on_player(
                ada,
                Event::PlayerRegistered {
                    player_id: ada.identity,
                    username: questlog_domain::Personal::new(ada.identity, username("AdaL")),
                },
            ),
        ]);
}

#[test]
fn registering_a_second_time_is_already_registered() {
    let ada = player(1);
    let r = given(registered(ada, "ada"))
        .when(ada, at("2024-03-01T09:00:00Z"), register("ada_again"))
        .then_rejected("already_registered");
    assert_eq!(r.kind, RejectionKind::Conflict);
}

#[test]
fn a_username_held_by_another_player_is_taken() {
    given(registered(player(1), "ada"))
        .when(player(2), at("2024-03-01T09:00:00Z"), register("ada"))
        .then_rejected("username_taken");
}

#[test]
fn a_username_claimed_by_an_earlier_build_under_its_lowercase_name_is_taken() {
    for name in ["ada", "ADA"] {
        let r = given(registered_before_digests(player(1), "Ada"))
            .when(player(2), at("2024-03-01T09:00:00Z"), register(name))
            .then_rejected("username_taken");
        assert_eq!(r.kind, RejectionKind::Conflict);
    }
}

#[test]
fn a_username_is_taken_whatever_its_case() {
    let r = given(registered(player(1), "Ada"))
        .when(player(2), at("2024-03-01T09:00:00Z"), register("aDA"))
        .then_rejected("username_taken");
    assert_eq!(r.kind, RejectionKind::Conflict);
}

#[test]
fn a_username_differing_in_more_than_case_is_free() {
    let grace = player(2);
    given(registered(player(1), "ada"))
        .when(grace, at("2024-03-01T09:00:00Z"), register("ada_"))
        .then(registered(grace, "ada_"));
}

#[test]
fn a_registered_player_starts_at_level_1_with_0_xp_in_utc_with_module_1_unlocked() {
    let ada = player(1);
    let state = fold(
        PlayerState::evolve,
        registered(ada, "ada").iter().map(|(_, e)| e),
    );
    assert_eq!(
        state.registered,
        Some(Registration {
            player_id: ada.identity,
            username: Some(username("ada")),
        })
    );
    assert_eq!((state.level, state.xp), (1, 0));
    assert_eq!(state.timezone, tz("UTC"));
    assert!(state.completed_labs.is_empty() && state.achievements.is_empty());

    let mut catalog = CatalogState::default();
    for (_, e) in [module_defined(1, &[]), module_defined(2, &[1])] {
        catalog.evolve(&e);
    }
    assert_eq!(catalog.unlocked_modules(&state.completed_modules), vec![1]);
}

#[test]
fn player_commands_before_register_are_not_registered() {
    let stranger = player(9);
    let catalog = vec![module_defined(1, &[]), lab_defined("intro", 1, 50)];
    for cmd in [
        Command::SetTimezone {
            timezone: tz("Europe/Paris"),
        },
        complete("intro"),
        Command::UpdateStreak,
    ] {
        let r = given(catalog.clone())
            .when(stranger, at("2024-03-01T09:00:00Z"), cmd)
            .then_rejected("not_registered");
        assert_eq!(r.kind, RejectionKind::NotFound);
    }
}
