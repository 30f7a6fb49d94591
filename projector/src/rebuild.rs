//! Read models folded in memory straight from the log, through the same code the projectors run:
//! the reference a live read model is checked against.

use questlog_academy::DomainEvent as _;
use std::collections::BTreeMap;

use questlog_academy::{Event, StreamId};
use questlog_store::RecordedEvent;
use uuid::Uuid;

use crate::projections::PlayerRow;

/// Every player's row as a full replay of `events` (in log order) produces it.
///
/// # Errors
/// When an event cannot be decoded.
pub fn fold_players<'a>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<BTreeMap<Uuid, PlayerRow>, questlog_domain::DecodeError> {
    let mut rows: BTreeMap<Uuid, PlayerRow> = BTreeMap::new();
    for recorded in events {
        let Ok(StreamId::Player(id)) = recorded.stream_id.parse::<StreamId>() else {
            continue;
        };
        let event = Event::from_parts(
            &recorded.event_type,
            recorded.schema_version,
            recorded.data.clone(),
        )?;
        rows.entry(id.0)
            .or_insert_with(|| PlayerRow::new(recorded.position))
            .apply(&event, recorded.position);
    }
    rows.retain(|_, row| row.state.is_registered());
    Ok(rows)
}
