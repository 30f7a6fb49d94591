//! The domain's tests: given events, when a command, then events or a rejection; proptest for the
//! arithmetic. The fixtures they share are `crate::fixtures`.

mod admin;
mod catalog;
mod complete_lab;
mod parse;
mod register_player;
mod rules;
mod serde_round_trip;
mod set_timezone;
mod update_streak;

pub(crate) use crate::fixtures::*;
