//! Personal data in events, and its erasure (crypto-shredding). A module types a field holding a
//! player's personal data — a name, a text the player wrote, a value the player stored — as
//! [`Personal<T>`], a top-level member of its event's data. The kernel seals such a field with
//! its subject's key as the writer appends it, and opens it as events are read back, before any
//! module decodes them; once the subject is erased its key is gone, and the field reads as erased
//! (`null`) everywhere, in every fold, for every position of the log.
//!
//! The forms one field takes (see ARCHITECTURE.md, "Erasure"):
//! - as a module decides it: `{"$personal": {"subject": <player>, "value": <v>}}` (what
//!   [`Personal::new`] serialises to; only the writer sees it, and seals it);
//! - in the log: `{"$sealed": {"subject": <player>, "box": <base64>}}`;
//! - as read back: `<v>`, or `null` when the subject is erased (and a value recorded before
//!   sealing existed, in plain text, the same).
//!
//! A player's erasure itself is an event, `player_erased` ([`ErasureEvent`]), which names no
//! personal data: read models scrub what they derived from the player's personal fields when
//! they fold it, so a live read model and a replay (where the fields already open as erased)
//! agree.
//!
//! A name that must be found by its value — a unique name a module claims, its stream named for it —
//! cannot be sealed: the log would need the key to find the stream. Such a stream is named for a
//! keyed digest of the name instead ([`NameKey::digest`]), under one key per deployment: the log
//! shows neither the name nor anything its erasure has to destroy.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::event::DomainEvent;
use crate::values::PlayerId;

/// The member that marks a personal field as decided, before the writer seals it.
pub const MARK: &str = "$personal";
/// The member of a sealed field in the log.
pub const SEALED: &str = "$sealed";

/// A player's personal datum: its value, or `None` once its subject is erased.
#[derive(Clone, PartialEq, Eq)]
pub struct Personal<T> {
    /// Whose data it is: known when decided (the writer seals it with that player's key), not
    /// kept when read back (nothing needs it then).
    subject: Option<PlayerId>,
    value: Option<T>,
}

impl<T> Personal<T> {
    /// `subject`'s datum, as a command decides it.
    pub fn new(subject: PlayerId, value: T) -> Self {
        Self {
            subject: Some(subject),
            value: Some(value),
        }
    }

    /// A value recorded as it is (not sealed): for a field that holds personal data only in some
    /// events (a value of a collection that is not personal).
    pub fn unsealed(value: T) -> Self {
        Self {
            subject: None,
            value: Some(value),
        }
    }

    /// A datum whose subject is erased.
    pub fn erased() -> Self {
        Self {
            subject: None,
            value: None,
        }
    }

    /// The value, unless its subject is erased.
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    pub fn is_erased(&self) -> bool {
        self.value.is_none()
    }
}

impl<T: fmt::Debug> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => f.debug_tuple("Personal").field(v).finish(),
            None => f.write_str("Personal(erased)"),
        }
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Marked<'a, T> {
            subject: PlayerId,
            value: &'a T,
        }
        match (&self.subject, &self.value) {
            (Some(subject), Some(value)) => {
                let mut map = std::collections::BTreeMap::new();
                map.insert(
                    MARK,
                    Marked {
                        subject: *subject,
                        value,
                    },
                );
                map.serialize(s)
            }
            (None, Some(value)) => value.serialize(s),
            (_, None) => s.serialize_none(),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        if raw.is_null() {
            return Ok(Self::erased());
        }
        if let Some(marked) = single(&raw, MARK) {
            let subject = marked
                .get("subject")
                .cloned()
                .ok_or_else(|| serde::de::Error::missing_field("subject"))?;
            let value = marked.get("value").cloned().unwrap_or(Value::Null);
            return Ok(Self {
                subject: Some(serde_json::from_value(subject).map_err(serde::de::Error::custom)?),
                value: Some(serde_json::from_value(value).map_err(serde::de::Error::custom)?),
            });
        }
        // A field still sealed (its reader did not open it) reads as unreadable, never as data.
        if single(&raw, SEALED).is_some() {
            return Ok(Self::erased());
        }
        Ok(Self {
            subject: None,
            value: Some(serde_json::from_value(raw).map_err(serde::de::Error::custom)?),
        })
    }
}

/// The object under `key` when `value` is an object with that one member.
pub fn single<'a>(value: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(key)?.as_object(),
        _ => None,
    }
}

/// Whether a value written by a client would be taken for one of the forms above when it is a
/// top-level field of an event (a module storing free JSON refuses it at its edge).
pub fn reserved(value: &Value) -> bool {
    single(value, MARK).is_some() || single(value, SEALED).is_some()
}

/// The decided data with every personal field as its plain value: what a command's answer shows
/// of the events it appended.
pub fn plain(mut data: Value) -> Value {
    if let Value::Object(map) = &mut data {
        for field in map.values_mut() {
            if let Some(marked) = single(field, MARK) {
                *field = marked.get("value").cloned().unwrap_or(Value::Null);
            }
        }
    }
    data
}

/// A personal field recorded before sealing existed, in plain text: the event type, the field
/// and the field naming its subject. Such a field reads as erased once its subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyField {
    pub event_type: &'static str,
    pub field: &'static str,
    pub subject: &'static str,
}

/// The kernel's erasure event. It carries no personal data: only whose data is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ErasureEvent {
    /// Every personal datum of the player is erased: its key is destroyed, so what the log holds
    /// sealed for it reads as erased, and read models drop what they derived from it.
    PlayerErased { player_id: PlayerId },
}

impl DomainEvent for ErasureEvent {
    const TYPES: &'static [&'static str] = &["player_erased"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::PlayerErased { .. } => "player_erased",
        }
    }
}

/// The player an event erases, if it is `player_erased`.
pub fn erased_player(event: &crate::Event) -> Option<PlayerId> {
    event
        .get::<ErasureEvent>()
        .map(|ErasureEvent::PlayerErased { player_id }| *player_id)
}

/// The deployment's key for names a stream id must find without showing them (a claim on a
/// unique name): 32 bytes kept beside the log (`name_key`, made once by the first process that serves
/// commands, carried by `questlog export`), the same for every process and every restart. A
/// stream is named for [`NameKey::digest`] of the name, so the log, NATS, exports and admin views
/// show a digest, never the name. It keeps the name from whoever reads the log without the key;
/// whoever holds the key too can still test a guessed name against it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NameKey([u8; 32]);

impl NameKey {
    /// The key of these bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its bytes, for the one place that stores it.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HMAC-SHA256 of `name` (already normalised by its module, e.g. lowercased) under this key,
    /// as 64 lowercase hex digits.
    pub fn digest(&self, name: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any size");
        mac.update(name.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `key` has the form of a [`NameKey::digest`]: 64 lowercase hex digits.
    pub fn is_digest(key: &str) -> bool {
        key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself.
        f.write_str("NameKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn ada() -> PlayerId {
        PlayerId(Uuid::from_u128(7))
    }

    #[test]
    fn a_decided_datum_is_marked_with_its_subject_for_the_writer_to_seal() {
        let data = serde_json::to_value(Personal::new(ada(), "Ada".to_owned())).unwrap();
        assert_eq!(
            data,
            json!({"$personal": {"subject": ada(), "value": "Ada"}})
        );
        let back: Personal<String> = serde_json::from_value(data).unwrap();
        assert_eq!(back, Personal::new(ada(), "Ada".to_owned()));
    }

    #[test]
    fn an_opened_datum_reads_as_its_value_and_null_reads_as_erased() {
        let opened: Personal<String> = serde_json::from_value(json!("Ada")).unwrap();
        assert_eq!(opened.value().map(String::as_str), Some("Ada"));
        let erased: Personal<String> = serde_json::from_value(Value::Null).unwrap();
        assert!(erased.is_erased());
        assert_eq!(serde_json::to_value(&erased).unwrap(), Value::Null);
    }

    #[test]
    fn a_field_left_sealed_never_reads_as_data() {
        let sealed = json!({"$sealed": {"subject": ada(), "box": "AAAA"}});
        let read: Personal<Value> = serde_json::from_value(sealed).unwrap();
        assert!(read.is_erased());
    }

    #[test]
    fn an_answer_shows_personal_fields_plain() {
        let data = json!({"player_id": ada(), "name": Personal::new(ada(), "Ada")});
        assert_eq!(plain(data), json!({"player_id": ada(), "name": "Ada"}));
    }

    #[test]
    fn a_name_s_digest_is_keyed_and_shows_nothing_of_the_name() {
        let one = NameKey::new([1; 32]);
        let other = NameKey::new([2; 32]);
        let digest = one.digest("ada");
        assert!(NameKey::is_digest(&digest), "{digest}");
        assert_eq!(
            digest,
            one.digest("ada"),
            "the same key and name, the same digest"
        );
        assert_ne!(digest, one.digest("bob"));
        assert_ne!(
            digest,
            other.digest("ada"),
            "another deployment's key, another digest"
        );
        assert!(!digest.contains("ada"));
        assert!(!NameKey::is_digest("ada"));
        assert!(!NameKey::is_digest(&digest.to_uppercase()));
        assert_eq!(format!("{one:?}"), "NameKey(..)");
    }
}
