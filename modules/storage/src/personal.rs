//! The one place an object's value goes into the log and comes out of it. Values of a collection
//! defined `personal` are personal data, erased with their player: per-player encryption of these
//! values (crypto-shredding) belongs here, so that every write seals them and every read — the
//! routes, the live topic, as-of reads, the decision's views — opens them through these two
//! functions. Today both pass the value through unchanged.

use serde_json::{Map, Value};

/// The value a write records in its event.
pub fn seal(_personal: bool, value: Map<String, Value>) -> Map<String, Value> {
    value
}

/// The value a reader sees of what an event or a row recorded.
pub fn open(_personal: bool, recorded: Value) -> Value {
    recorded
}
