//! questlog's read side over HTTP: the read models the projectors keep (players and leaderboard,
//! presence, catalog) and admin views of the log, with read-your-writes.

pub mod positions;

pub use positions::{spawn_listener, NotCaughtUp, Positions, WaitError};
