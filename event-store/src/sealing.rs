//! Crypto-shredding: the one place personal data is sealed on its way into the log and opened on
//! its way out (see [`questlog_domain::personal`] for the forms a personal field takes).
//!
//! Every player whose personal data the log holds has a key in `subject_keys`, beside the log:
//! 32 random bytes, made by the writer the first time a batch seals something of the player's
//! and stored by that batch's own append (`questlog_beside_subject_key`, so the key exists exactly
//! when the first event sealed with it does). A field is sealed with XChaCha20-Poly1305 under a
//! random 24-byte nonce, with the subject, the stream and the field as associated data (a box
//! copied into another stream or field does not open). Erasure destroys the key
//! (`questlog_beside_subject_erased`: the row keeps the player, its key becomes NULL): every box
//! sealed for the player then reads as erased, in every read, fold and replay, for all time.
//!
//! Keys are never cached across reads: every page of events read back loads the keys its sealed
//! fields name (one indexed query), so an erasure committed by another process holds for the next
//! read anywhere. The writer keeps the keys it seals with, which is safe: a box sealed with a
//! destroyed key is as unreadable as one whose key was destroyed after it.
//!
//! Names a stream is named for (a claim on a unique name) are not sealed but digested, under the
//! deployment's name key ([`name_key`], `questlog_domain::NameKey`): one row beside the log, made
//! by the first process that serves commands and the same for every process after it.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use questlog_domain::personal::{single, MARK, SEALED};
use questlog_domain::{Beside, LegacyField};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::archive::{ArchiveSection, Column};
use crate::{RecordedEvent, StoreError};

/// The beside kind that stores a new subject key (`questlog_beside_subject_key`).
pub const BESIDE_SUBJECT_KEY: &str = "subject_key";
/// The beside kind that destroys a subject's key (`questlog_beside_subject_erased`).
pub const BESIDE_SUBJECT_ERASED: &str = "subject_erased";
/// The conflict a batch gets when another process stored a key for one of its new subjects
/// first: the writer forgets the key it made and seals again with the stored one.
pub const KEY_CONFLICT: &str = "subject_key: ";

const NONCE: usize = 24;

/// The deployment's name key (`name_key`), made on first use: read when a row is there, else made
/// of 32 random bytes and stored — a process racing another keeps the row stored first, so every
/// process of the deployment digests names alike, restart after restart.
///
/// # Errors
/// When the database cannot be read or written, or the stored key is not 32 bytes of hex.
pub async fn name_key(pool: &sqlx::PgPool) -> Result<questlog_domain::NameKey, StoreError> {
    use chacha20poly1305::aead::rand_core::RngCore as _;
    let mut fresh = [0u8; 32];
    OsRng.fill_bytes(&mut fresh);
    sqlx::query("INSERT INTO name_key (key) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(hex::encode(fresh))
        .execute(pool)
        .await?;
    let stored: String = sqlx::query_scalar("SELECT key FROM name_key")
        .fetch_one(pool)
        .await?;
    let bytes: [u8; 32] = hex::decode(&stored)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            StoreError::Decode("the name key (name_key) is not 32 bytes of hex".to_owned())
        })?;
    Ok(questlog_domain::NameKey::new(bytes))
}

/// The name key travels with the log (a module whose streams are named for digests registers it):
/// an import without it would name new claims under another key, and a name claimed before the
/// move would be free again.
pub const NAME_KEY_ARCHIVE: ArchiveSection = ArchiveSection {
    line: "name_key",
    count: "name_keys",
    noun: "name key",
    plural: "name keys",
    table: "name_key",
    columns: &[("key", Column::Text), ("created_at", Column::Timestamptz)],
    order_by: &["key"],
};

/// Subjects' keys as far as they are known: `None` for an erased subject.
#[derive(Default, Clone)]
pub struct KeyRing {
    keys: HashMap<Uuid, Option<[u8; 32]>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        write!(f, "KeyRing({} subjects)", self.keys.len())
    }
}

impl KeyRing {
    /// The keys of `subjects` (those that have one; an erased subject's is `None`).
    ///
    /// # Errors
    /// When the query fails.
    pub async fn load(conn: &mut PgConnection, subjects: &[Uuid]) -> Result<Self, StoreError> {
        let mut ring = Self::default();
        ring.load_missing(conn, subjects).await?;
        Ok(ring)
    }

    /// Loads the keys of the `subjects` this ring does not know yet.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn load_missing(
        &mut self,
        conn: &mut PgConnection,
        subjects: &[Uuid],
    ) -> Result<(), StoreError> {
        let missing: Vec<Uuid> = subjects
            .iter()
            .filter(|s| !self.keys.contains_key(s))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT player_id, key FROM subject_keys WHERE player_id = ANY($1)")
                .bind(&missing)
                .fetch_all(conn)
                .await?;
        for (subject, key) in rows {
            let key = key
                .and_then(|k| STANDARD.decode(k).ok())
                .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok());
            self.keys.insert(subject, key);
        }
        Ok(())
    }

    /// Forgets what it knows of `subject` (its key is read again when next needed).
    pub fn forget(&mut self, subject: Uuid) {
        self.keys.remove(&subject);
    }

    /// How many subjects it knows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals every personal field `data` marks (a top-level member in the marked form), for an
    /// event of `stream`. A subject without a key gets one, returned as the beside write that
    /// stores it with the batch; an erased subject's field is recorded as erased (`null`): its
    /// data is never written.
    pub fn seal(&mut self, data: &mut Value, stream: &str) -> Vec<Beside> {
        let mut new_keys = Vec::new();
        let Value::Object(map) = data else {
            return new_keys;
        };
        for (field, value) in map.iter_mut() {
            let Some(marked) = single(value, MARK) else {
                continue;
            };
            let subject = marked
                .get("subject")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            let plain = marked.get("value").cloned().unwrap_or(Value::Null);
            let Some(subject) = subject else {
                *value = Value::Null;
                continue;
            };
            let key = match self.keys.get(&subject) {
                Some(Some(key)) => *key,
                Some(None) => {
                    *value = Value::Null;
                    continue;
                }
                None => {
                    let key: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
                    self.keys.insert(subject, Some(key));
                    new_keys.push(Beside {
                        kind: BESIDE_SUBJECT_KEY,
                        item: json!({ "player_id": subject, "key": STANDARD.encode(key) }),
                    });
                    key
                }
            };
            *value = seal_value(&key, subject, stream, field, &plain);
        }
        new_keys
    }

    /// Opens every sealed field of `event`'s data (the plain value, or `null` when the subject's
    /// key is gone), and reads as erased the plain-text personal fields recorded before sealing
    /// whose subject is erased.
    pub fn open(&self, legacy: &[LegacyField], event: &mut RecordedEvent) {
        let Value::Object(map) = &mut event.data else {
            return;
        };
        for (field, value) in map.iter_mut() {
            if let Some(sealed) = single(value, SEALED) {
                *value = self.open_value(sealed, &event.stream_id, field);
            }
        }
        for legacy in legacy.iter().filter(|l| l.event_type == event.event_type) {
            if let Some(subject) = legacy_subject(map, legacy.subject) {
                if matches!(self.keys.get(&subject), Some(None)) {
                    if let Some(v) = map.get_mut(legacy.field) {
                        *v = Value::Null;
                    }
                }
            }
        }
    }

    fn open_value(&self, sealed: &Map<String, Value>, stream: &str, field: &str) -> Value {
        let subject = sealed
            .get("subject")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        let sealed_box = sealed.get("box").and_then(Value::as_str);
        let (Some(subject), Some(sealed_box)) = (subject, sealed_box) else {
            return Value::Null;
        };
        let Some(Some(key)) = self.keys.get(&subject) else {
            return Value::Null;
        };
        open_value(key, subject, stream, field, sealed_box).unwrap_or(Value::Null)
    }
}

fn legacy_subject(map: &Map<String, Value>, field: &str) -> Option<Uuid> {
    map.get(field)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn aad(subject: Uuid, stream: &str, field: &str) -> String {
    format!("{subject}\n{stream}\n{field}")
}

fn seal_value(key: &[u8; 32], subject: Uuid, stream: &str, field: &str, plain: &Value) -> Value {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let msg = serde_json::to_vec(plain).unwrap_or_default();
    let aad = aad(subject, stream, field);
    // Encryption fails only for messages over 256 GiB.
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &msg,
                aad: aad.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    json!({ SEALED: { "subject": subject, "box": STANDARD.encode(bytes) } })
}

fn open_value(
    key: &[u8; 32],
    subject: Uuid,
    stream: &str,
    field: &str,
    sealed_box: &str,
) -> Option<Value> {
    let bytes = STANDARD.decode(sealed_box).ok()?;
    if bytes.len() < NONCE {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE);
    let aad = aad(subject, stream, field);
    let plain = XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: aad.as_bytes(),
            },
        )
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

/// The subjects whose keys opening `events` needs: those of sealed fields, and those of the
/// plain-text personal fields recorded before sealing.
pub fn subjects(legacy: &[LegacyField], events: &[RecordedEvent]) -> Vec<Uuid> {
    let mut subjects = Vec::new();
    for event in events {
        let Value::Object(map) = &event.data else {
            continue;
        };
        for value in map.values() {
            if let Some(sealed) = single(value, SEALED) {
                if let Some(s) = sealed
                    .get("subject")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
                {
                    subjects.push(s);
                }
            }
        }
        for legacy in legacy.iter().filter(|l| l.event_type == event.event_type) {
            subjects.extend(legacy_subject(map, legacy.subject));
        }
    }
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}

/// Opens `events` as read back from the log (see [`KeyRing::open`]), with the keys as this
/// connection sees them now. Every reader of the log that hands events to the modules calls it,
/// once per page.
///
/// # Errors
/// When the keys cannot be read.
pub async fn open_all(
    conn: &mut PgConnection,
    legacy: &[LegacyField],
    events: &mut [RecordedEvent],
) -> Result<(), StoreError> {
    let subjects = subjects(legacy, events);
    if subjects.is_empty() {
        return Ok(());
    }
    let ring = KeyRing::load(conn, &subjects).await?;
    for event in events.iter_mut() {
        ring.open(legacy, event);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use questlog_domain::values::PlayerId;
    use questlog_domain::Personal;

    fn recorded(stream: &str, event_type: &str, data: Value) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            event_id: Uuid::nil(),
            stream_id: stream.to_owned(),
            stream_version: 1,
            event_type: event_type.to_owned(),
            schema_version: 1,
            data,
            metadata: Value::Null,
            recorded_at: chrono::Utc::now(),
        }
    }

    fn ada() -> Uuid {
        Uuid::from_u128(42)
    }

    fn sealed_event(ring: &mut KeyRing) -> (RecordedEvent, Vec<Beside>) {
        let mut data = json!({
            "player_id": ada(),
            "name": Personal::new(PlayerId(ada()), "Ada"),
        });
        let new_keys = ring.seal(&mut data, "subject-1");
        (recorded("subject-1", "profile_created", data), new_keys)
    }

    #[test]
    fn a_sealed_field_opens_with_its_key_and_reads_erased_without_it() {
        let mut ring = KeyRing::default();
        let (event, new_keys) = sealed_event(&mut ring);
        assert_eq!(new_keys.len(), 1, "the first seal makes the subject's key");
        assert!(!event.data.to_string().contains("Ada"), "{}", event.data);
        let mut opened = event.clone();
        ring.open(&[], &mut opened);
        assert_eq!(opened.data["name"], json!("Ada"));
        let mut erased = KeyRing::default();
        erased.keys.insert(ada(), None);
        let mut gone = event;
        erased.open(&[], &mut gone);
        assert_eq!(gone.data["name"], Value::Null);
    }

    #[test]
    fn a_box_copied_into_another_stream_does_not_open() {
        let mut ring = KeyRing::default();
        let (mut event, _) = sealed_event(&mut ring);
        event.stream_id = "subject-2".to_owned();
        ring.open(&[], &mut event);
        assert_eq!(event.data["name"], Value::Null);
    }

    #[test]
    fn an_erased_subject_s_new_data_is_never_written() {
        let mut ring = KeyRing::default();
        ring.keys.insert(ada(), None);
        let (event, new_keys) = sealed_event(&mut ring);
        assert!(new_keys.is_empty());
        assert_eq!(event.data["name"], Value::Null);
    }

    #[test]
    fn plain_text_recorded_before_sealing_reads_erased_once_its_subject_is() {
        let legacy = [LegacyField {
            event_type: "profile_created",
            field: "name",
            subject: "player_id",
        }];
        let event = recorded(
            "subject-1",
            "profile_created",
            json!({"player_id": ada(), "name": "Ada"}),
        );
        assert_eq!(subjects(&legacy, std::slice::from_ref(&event)), vec![ada()]);
        let mut kept = event.clone();
        KeyRing::default().open(&legacy, &mut kept);
        assert_eq!(kept.data["name"], json!("Ada"));
        let mut erased = KeyRing::default();
        erased.keys.insert(ada(), None);
        let mut gone = event;
        erased.open(&legacy, &mut gone);
        assert_eq!(gone.data["name"], Value::Null);
    }
}
