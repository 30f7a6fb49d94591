//! The one place an object's value goes into the log and comes out of it. Values of a collection
//! defined `personal` are personal data, erased with their player: a write marks the value as
//! its owner's ([`Personal`]), so the kernel seals it with the owner's key as it is appended and
//! opens it as it is read back (`questlog_store::sealing`); once the owner is erased, the value
//! reads as erased (`null`) in every fold — the decision's views, the projection, its replays
//! and as-of reads —, and the projection drops what it holds of it
//! (`Storage`'s `player_erased` fold). A game's objects and the values of other collections are
//! recorded as they are.

use questlog_domain::Personal;
use serde_json::{Map, Value};

use crate::values::Owner;

/// The value a write records in its event.
pub fn seal(
    personal: bool,
    owner: Owner,
    value: Map<String, Value>,
) -> Personal<Map<String, Value>> {
    match owner {
        Owner::Player(player) if personal => Personal::new(player, value),
        _ => Personal::unsealed(value),
    }
}

/// The value a reader sees of what an event or a row recorded (`null` once erased).
pub fn open(_personal: bool, recorded: Value) -> Value {
    recorded
}

/// Whether a value a client sends would be taken for a sealed or marked personal field in the
/// log: refused at the edge.
pub fn reserved(value: &Map<String, Value>) -> bool {
    value.len() == 1
        && value
            .keys()
            .any(|k| k == questlog_domain::personal::MARK || k == questlog_domain::personal::SEALED)
}
