//! Presence: who is online and in which lab. The rule is the player stream's (`came_online`,
//! `current_lab_changed`, `went_offline`, folded by `PlayerState::evolve`); this feature holds its
//! read model.

pub mod projection;
