//! Admin commands: refused to player tokens; `grant_achievement` and `revoke_xp`.

use super::{
    achievement, admin, at, complete, history, lab_completed, lab_defined, lab_id, module_defined,
    on_player, player, registered, streak_updated, unlocked,
};
use crate::player::PlayerState;
use crate::stream::fold;
use crate::testing::given;
use crate::values::PlayerId;
use crate::{Actor, Command, Event, RejectionKind, StreamId};

const NOW: &str = "2024-03-01T09:00:00Z";

fn revoke(target: Actor, xp: u32) -> Command {
    Command::RevokeXp {
        player_id: target.identity,
        xp,
        reason: "scripted completions".into(),
    }
}

fn revoked(target: Actor, xp: u32) -> (StreamId, Event) {
    on_player(
        target,
        Event::XpRevoked {
            xp,
            reason: "scripted completions".into(),
        },
    )
}

/// Ada, with 1200 XP from one lab (level 10).
fn ada_at_1200_xp(ada: Actor) -> Vec<(StreamId, Event)> {
    history([
        vec![module_defined(1, &[]), lab_defined("big", 1, 1_200)],
        registered(ada, "ada"),
        vec![
            lab_completed(ada, "big", 1, 1_200),
            on_player(ada, Event::LeveledUp { level: 10 }),
        ],
    ])
}

fn fold_player(actor: Actor, events: &[(StreamId, Event)]) -> PlayerState {
    let stream = StreamId::Player(actor.identity);
    fold(
        PlayerState::evolve,
        events.iter().filter(|(s, _)| *s == stream).map(|(_, e)| e),
    )
}

#[test]
fn admin_commands_sent_with_a_player_token_are_forbidden() {
    let ada = player(1);
    let commands = [
        Command::DefineModule {
            module: 1,
            title: "M".into(),
            requires: vec![],
        },
        Command::DefineLab {
            lab_id: lab_id("intro"),
            module: 1,
            title: "L".into(),
            xp: 100_000,
        },
        Command::GrantAchievement {
            player_id: ada.identity,
            achievement: achievement("level_10"),
        },
        revoke(ada, 10),
    ];
    for cmd in commands {
        assert!(cmd.admin_only(), "{cmd:?}");
        let r = given(ada_at_1200_xp(ada))
            .when(ada, at(NOW), cmd)
            .then_rejected("forbidden");
        assert_eq!(r.kind, RejectionKind::Forbidden);
    }
}

#[test]
fn granting_an_achievement_unlocks_it_for_that_player() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(
            admin(),
            at(NOW),
            Command::GrantAchievement {
                player_id: ada.identity,
                achievement: achievement("bug_hunter"),
            },
        )
        .then(vec![unlocked(ada, "bug_hunter")]);
}

#[test]
fn granting_an_achievement_already_held_appends_nothing() {
    let ada = player(1);
    given(history([
        registered(ada, "ada"),
        vec![unlocked(ada, "bug_hunter")],
    ]))
    .when(
        admin(),
        at(NOW),
        Command::GrantAchievement {
            player_id: ada.identity,
            achievement: achievement("bug_hunter"),
        },
    )
    .then(vec![]);
}

#[test]
fn granting_to_an_unregistered_player_is_player_not_found() {
    let r = given(vec![])
        .when(
            admin(),
            at(NOW),
            Command::GrantAchievement {
                player_id: PlayerId(uuid::Uuid::from_u128(77)),
                achievement: achievement("bug_hunter"),
            },
        )
        .then_rejected("player_not_found");
    assert_eq!(r.kind, RejectionKind::NotFound);
}

#[test]
fn revoking_xp_records_a_compensating_event() {
    let ada = player(1);
    given(ada_at_1200_xp(ada))
        .when(admin(), at(NOW), revoke(ada, 300))
        .then(vec![revoked(ada, 300)]);
}

#[test]
fn revoking_more_xp_than_the_player_has_revokes_only_what_they_have() {
    let ada = player(1);
    given(ada_at_1200_xp(ada))
        .when(admin(), at(NOW), revoke(ada, 5_000))
        .then(vec![revoked(ada, 1_200)]);
}

#[test]
fn revoking_xp_from_a_player_with_none_appends_nothing() {
    let ada = player(1);
    given(registered(ada, "ada"))
        .when(admin(), at(NOW), revoke(ada, 10))
        .then(vec![]);
}

#[test]
fn revoking_xp_from_an_unregistered_player_is_player_not_found() {
    given(vec![])
        .when(admin(), at(NOW), revoke(player(3), 10))
        .then_rejected("player_not_found");
}

#[test]
fn after_a_revocation_the_level_follows_the_remaining_xp() {
    let ada = player(1);
    let mut log = ada_at_1200_xp(ada);
    log.push(revoked(ada, 750));
    let state = fold_player(ada, &log);
    assert_eq!((state.xp, state.level), (450, 4));

    log.push(revoked(ada, 450));
    let state = fold_player(ada, &log);
    assert_eq!((state.xp, state.level), (0, 1));
}

#[test]
fn after_a_revocation_earning_xp_again_levels_up_again() {
    let ada = player(1);
    let log = history([
        ada_at_1200_xp(ada),
        vec![
            lab_defined("small", 1, 100),
            unlocked(ada, "first_lab"),
            unlocked(ada, "level_5"),
            unlocked(ada, "level_10"),
            revoked(ada, 1_000),
        ],
        vec![streak_updated(
            ada,
            "2024-03-01",
            1,
            1,
            "2024-03-01T08:00:00Z",
        )],
    ]);
    given(log).when(ada, at(NOW), complete("small")).then(vec![
        lab_completed(ada, "small", 1, 100),
        on_player(ada, Event::LeveledUp { level: 3 }),
        on_player(ada, Event::ModuleCompleted { module: 1 }),
        unlocked(ada, "first_module"),
    ]);
}
