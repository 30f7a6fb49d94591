//! Values every module shares: the identity of a player, and the checks on text the log must be
//! able to store. A module's own newtypes live in its crate, each built through a fallible `parse`.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Rejection;

/// A player id *is* the identity that registered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlayerId(pub Uuid);

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether Postgres can store `text`, in a `text` column or as a string or key inside `jsonb`. A
/// UTF-8 database refuses exactly one character, NUL (U+0000); a Rust string is always valid
/// UTF-8, so there is nothing else to refuse.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// Whether Postgres can store every key and string of `value` as `jsonb` (see [`storable`]).
/// Numbers need no check: serde_json only holds finite ones, which `jsonb`'s numeric takes
/// whole.
pub fn storable_json(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    // A stack rather than recursion: the depth is the sender's to choose.
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) if !storable(s) => return false,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if !map.keys().all(|k| storable(k)) {
                    return false;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    true
}

/// Free text of 1 to `max` characters: not only white space, and storable (no NUL).
///
/// # Errors
/// `code`, naming `what`, when blank, too long or holding a NUL.
pub fn free_text(
    raw: String,
    code: &'static str,
    what: &str,
    max: usize,
) -> Result<String, Rejection> {
    if raw.trim().is_empty() || raw.chars().count() > max {
        return Err(Rejection::invalid(
            code,
            format!("{what} is 1 to {max} characters, not blank"),
        ));
    }
    if !storable(&raw) {
        return Err(nul_refused(code, what));
    }
    Ok(raw)
}

/// The refusal of text holding a NUL character, with the field's own code.
pub fn nul_refused(code: &'static str, what: &str) -> Rejection {
    Rejection::invalid(code, format!("{what} cannot hold a NUL character (U+0000)"))
}
