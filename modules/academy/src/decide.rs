//! `decide`: a command and the state of the streams it reads in, the events it causes out.

use chrono::{DateTime, Utc};

use questlog_domain::{Context, Personal, Rejection};

use crate::context::AcademyContext as _;

use crate::command::Command;
use crate::event::Event;
use crate::player::PlayerState;
use crate::rules::level_for_xp;
use crate::stream::{StreamId, UsernameHolder};
use crate::values::{Achievement, PlayerId};

fn username_holder(ctx: &Context<'_>, key: &str) -> Option<PlayerId> {
    ctx.view::<UsernameHolder>(&StreamId::Username(key.to_owned()).id())
        .0
}

/// The events a command causes, each with the stream it lands on, or why it is refused.
///
/// # Errors
/// A [`Rejection`] with the contract's code when the command may not happen now.
/// The admin-only check comes first, in the kernel's [`questlog_domain::decide`].
pub fn decide(cmd: &Command, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
    let me = ctx.actor.identity;
    let mine = |events: Vec<Event>| {
        events
            .into_iter()
            .map(|e| (StreamId::Player(me), e))
            .collect()
    };
    match cmd {
        Command::RegisterPlayer { username, claims } => {
            if ctx.player(me).is_registered() {
                return Err(Rejection::conflict(
                    "already_registered",
                    "this identity already has a player",
                ));
            }
            // Taken when claimed under either key: a digest, or the name an earlier build
            // claimed it under.
            if claims.iter().any(|key| username_holder(ctx, key).is_some()) {
                return Err(Rejection::conflict(
                    "username_taken",
                    format!("the username {username} is taken"),
                ));
            }
            Ok(vec![
                (
                    StreamId::Username(claims[0].clone()),
                    Event::UsernameClaimed {
                        player_id: me,
                        username: Personal::new(me, username.clone()),
                    },
                ),
                (
                    StreamId::Player(me),
                    Event::PlayerRegistered {
                        player_id: me,
                        username: Personal::new(me, username.clone()),
                    },
                ),
            ])
        }
        Command::SetTimezone { timezone } => {
            let player = ctx.registered_self()?;
            if player.timezone == *timezone {
                return Ok(vec![]);
            }
            Ok(mine(vec![Event::TimezoneSet {
                timezone: *timezone,
            }]))
        }
        Command::CompleteLab { lab_id } => {
            let player = ctx.registered_self()?;
            let catalog = ctx.catalog();
            let lab = ctx.unlocked_lab(player, lab_id)?;
            if player.completed_labs.contains(lab_id) {
                return Err(Rejection::conflict(
                    "lab_already_completed",
                    format!("lab {lab_id} is already completed"),
                ));
            }
            let mut events = vec![Event::LabCompleted {
                lab_id: lab_id.clone(),
                module: lab.module,
                xp: lab.xp,
            }];
            // Summaries, not a clone of the player: deciding stays O(labs in the module).
            let xp = player.xp.saturating_add(u64::from(lab.xp));
            let level = level_for_xp(xp);
            if level > player.level {
                events.push(Event::LeveledUp { level });
            }
            let module_done = catalog
                .labs_of(lab.module)
                .all(|(id, _)| id == lab_id || player.completed_labs.contains(id));
            let new_module = module_done && !player.completed_modules.contains(&lab.module);
            if new_module {
                events.push(Event::ModuleCompleted { module: lab.module });
            }
            let streak = streak_events(player, ctx.now);
            let after = Progress {
                labs: player.completed_labs.len() + 1,
                modules: player.completed_modules.len() + usize::from(new_module),
                xp,
                streak: streak_now(player, streak.as_ref()),
            };
            events.extend(streak);
            events.extend(new_achievements(player, &after));
            Ok(mine(events))
        }
        Command::UpdateStreak => {
            let player = ctx.registered_self()?;
            let streak = streak_events(player, ctx.now);
            let after = Progress {
                streak: streak_now(player, streak.as_ref()),
                ..Progress::of(player)
            };
            let mut events: Vec<Event> = streak.into_iter().collect();
            events.extend(new_achievements(player, &after));
            Ok(mine(events))
        }
        Command::DefineModule {
            module,
            title,
            requires,
        } => {
            let catalog = ctx.catalog();
            // Before the unknown-module check: a new module that requires itself is a cycle, not a
            // requirement on an undefined module.
            if catalog.would_cycle(*module, requires) {
                return Err(Rejection::invalid(
                    "module_cycle",
                    format!("module {module} would end up requiring itself"),
                ));
            }
            // Not found, as for `define_lab`: one code, one status.
            if let Some(unknown) = requires.iter().find(|r| !catalog.modules.contains_key(r)) {
                return Err(Rejection::not_found(
                    "unknown_module",
                    format!("module {module} requires module {unknown}, which is not defined"),
                ));
            }
            let unchanged = catalog
                .modules
                .get(module)
                .is_some_and(|m| m.title == *title && m.requires == *requires);
            if unchanged {
                return Ok(vec![]);
            }
            Ok(vec![(
                StreamId::Catalog,
                Event::ModuleDefined {
                    module: *module,
                    title: title.clone(),
                    requires: requires.clone(),
                },
            )])
        }
        Command::DefineLab {
            lab_id,
            module,
            title,
            xp,
        } => {
            let catalog = ctx.catalog();
            if !catalog.modules.contains_key(module) {
                return Err(Rejection::not_found(
                    "unknown_module",
                    format!("module {module} is not defined: define_module first"),
                ));
            }
            let unchanged = catalog
                .labs
                .get(lab_id)
                .is_some_and(|l| l.module == *module && l.title == *title && l.xp == *xp);
            if unchanged {
                return Ok(vec![]);
            }
            Ok(vec![(
                StreamId::Catalog,
                Event::LabDefined {
                    lab_id: lab_id.clone(),
                    module: *module,
                    title: title.clone(),
                    xp: *xp,
                },
            )])
        }
        Command::GrantAchievement {
            player_id,
            achievement,
        } => {
            let player = ctx.registered_other(*player_id)?;
            if player.achievements.contains(achievement) {
                return Ok(vec![]);
            }
            Ok(vec![(
                StreamId::Player(*player_id),
                Event::AchievementUnlocked {
                    achievement: achievement.clone(),
                },
            )])
        }
        Command::RevokeXp {
            player_id,
            xp,
            reason,
        } => {
            let player = ctx.registered_other(*player_id)?;
            let revoked = u64::from(*xp).min(player.xp);
            if revoked == 0 {
                return Ok(vec![]);
            }
            Ok(vec![(
                StreamId::Player(*player_id),
                Event::XpRevoked {
                    xp: u32::try_from(revoked).unwrap_or(*xp),
                    reason: reason.clone(),
                },
            )])
        }
    }
}

/// Activity now: a `StreakUpdated` when it moves the streak on the player's local day.
fn streak_events(player: &PlayerState, now: DateTime<Utc>) -> Option<Event> {
    let today = now.with_timezone(&player.timezone.0).date_naive();
    player
        .streak
        .after_activity(today)
        .map(|s| Event::StreakUpdated {
            day: today,
            streak: s.current,
            longest: s.longest,
            at: now,
        })
}

/// The current streak once `update` (if any) is applied.
fn streak_now(player: &PlayerState, update: Option<&Event>) -> u32 {
    match update {
        Some(Event::StreakUpdated { streak, .. }) => *streak,
        _ => player.streak.current,
    }
}

/// What the built-in achievements look at, after a decision.
struct Progress {
    labs: usize,
    modules: usize,
    xp: u64,
    streak: u32,
}

impl Progress {
    fn of(player: &PlayerState) -> Self {
        Self {
            labs: player.completed_labs.len(),
            modules: player.completed_modules.len(),
            xp: player.xp,
            streak: player.streak.current,
        }
    }
}

/// The built-in achievements `after` has earned that `before` had not.
fn new_achievements(before: &PlayerState, after: &Progress) -> Vec<Event> {
    let level = level_for_xp(after.xp);
    let earned = [
        (Achievement::FIRST_LAB, after.labs >= 1),
        (Achievement::TEN_LABS, after.labs >= 10),
        (Achievement::FIRST_MODULE, after.modules >= 1),
        (Achievement::STREAK_7, after.streak >= 7),
        (Achievement::STREAK_30, after.streak >= 30),
        (Achievement::LEVEL_5, level >= 5),
        (Achievement::LEVEL_10, level >= 10),
    ];
    earned
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(name, _)| Achievement::builtin(name))
        .filter(|a| !before.achievements.contains(a))
        .map(|achievement| Event::AchievementUnlocked { achievement })
        .collect()
}
