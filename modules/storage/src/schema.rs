//! A collection's JSON Schema (draft 2020-12), checked when the collection is defined and compiled
//! once per view that validates with it. Remote and file references are never fetched (the crate
//! is built without them): a schema must be whole in itself, so a decision stays free of IO.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

/// One way a value fails its collection's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where in the value, as a JSON pointer (`""` is the value itself).
    pub path: String,
    pub message: String,
}

/// The most violations one refusal lists.
pub const MAX_VIOLATIONS: usize = 20;

/// A schema as defined, compiled on first use.
#[derive(Clone)]
pub struct Schema {
    source: Value,
    compiled: Arc<OnceLock<Option<jsonschema::Validator>>>,
}

impl Schema {
    /// The schema `source`, if it compiles.
    ///
    /// # Errors
    /// Why it does not (not a schema, an unknown draft, a reference it cannot resolve).
    pub fn parse(source: &Value) -> Result<Self, String> {
        if !source.is_object() {
            return Err("a schema is a JSON object".to_owned());
        }
        let validator = jsonschema::draft202012::new(source).map_err(|e| e.to_string())?;
        let compiled = OnceLock::new();
        let _ = compiled.set(Some(validator));
        Ok(Self {
            source: source.clone(),
            compiled: Arc::new(compiled),
        })
    }

    /// A schema the log recorded (checked when it was defined); compiled when first used.
    pub fn recorded(source: Value) -> Self {
        Self {
            source,
            compiled: Arc::new(OnceLock::new()),
        }
    }

    pub fn source(&self) -> &Value {
        &self.source
    }

    /// How `value` fails the schema (empty when it meets it), at most [`MAX_VIOLATIONS`].
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        let compiled = self
            .compiled
            .get_or_init(|| jsonschema::draft202012::new(&self.source).ok());
        let Some(validator) = compiled else {
            // Accepted when defined, refused by this build: nothing can meet it.
            return vec![Violation {
                path: String::new(),
                message: "the collection's schema cannot be compiled".to_owned(),
            }];
        };
        validator
            .iter_errors(value)
            .take(MAX_VIOLATIONS)
            .map(|e| Violation {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schema").field(&self.source).finish()
    }
}
