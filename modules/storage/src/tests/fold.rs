use chrono::{TimeZone as _, Utc};
use questlog_domain::values::PlayerId;
use serde_json::json;
use uuid::Uuid;

use crate::projection::{Op, VersionRow};
use crate::values::{CollectionName, ObjectKey, Owner};
use crate::Event;

#[test]
fn each_version_is_valid_until_the_next_and_a_deletion_has_no_value() {
    let at = |s| Utc.timestamp_opt(s, 0).single().expect("a time");
    let ada = PlayerId(Uuid::from_u128(1));
    let (collection, owner, key) = (
        CollectionName::parse("saves").expect("name"),
        Owner::Player(ada),
        ObjectKey::parse("slot1").expect("key"),
    );
    let write = Event::ObjectWritten {
        collection: collection.clone(),
        owner,
        key: key.clone(),
        version: 1,
        value: questlog_domain::Personal::unsealed(
            json!({"hp": 3}).as_object().cloned().expect("object"),
        ),
        by: ada,
    };
    let mut first = VersionRow::apply(None, &write, at(1), 10).expect("a version");
    assert_eq!(
        (first.version, first.op, first.valid_to),
        (1, Op::Write, None)
    );
    assert_eq!(first.value, Some(json!({"hp": 3})));
    let delete = Event::ObjectDeleted {
        collection: collection.clone(),
        owner,
        key: key.clone(),
        version: 2,
        by: ada,
    };
    let second = VersionRow::apply(Some(&mut first), &delete, at(2), 12).expect("a version");
    assert_eq!(
        first.valid_to,
        Some(12),
        "the first ends where the second starts"
    );
    assert_eq!(
        (
            second.version,
            second.op,
            second.value.clone(),
            second.position
        ),
        (2, Op::Delete, None, 12)
    );
    assert_eq!(second.owner, ada.to_string());
    let other = Event::OwnerKeysAdded {
        collection,
        owner,
        keys: vec![key],
    };
    assert!(VersionRow::apply(None, &other, at(3), 13).is_none());
}
