//! What the academy's reads share: the decoding of the events they fold, and the registration of
//! every feature's reads on the query API.

use questlog_domain::{App, DomainEvent as _};
use questlog_query_api::{ApiError, QueryApp as _};
use questlog_store::RecordedEvent;

use crate::event::Event;
use crate::stream;

/// The academy's events of recorded ones.
pub(crate) fn decode(recorded: &[RecordedEvent]) -> Result<Vec<Event>, ApiError> {
    recorded
        .iter()
        .map(|e| Event::from_parts(&e.event_type, e.schema_version, e.data.clone()))
        .collect::<Result<_, _>>()
        .map_err(ApiError::Decode)
}

/// Every feature's reads: routes, live topics (in the order `invalid_topic` lists them), state
/// views and the projections they follow.
pub(crate) fn register(app: &mut App) {
    crate::players::register_reads(app);
    crate::presence::register_reads(app);
    crate::catalog::read::register(app);
    crate::labs::register_reads(app);
    crate::chat::read::register(app);
    for kind in [
        stream::CATALOG,
        stream::PLAYER,
        stream::USERNAME,
        stream::LAB,
        stream::MESSAGE,
    ] {
        app.add_state_json::<crate::StreamState>(kind, crate::state_json::stream_state_json);
    }
}
