//! Chat messages (`rm_messages`), announced on `channel:<canonical channel>`: a message's row is
//! its stream folded by the domain's own `MessageState::evolve`, with the log's times.

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use questlog_bus::{Change, ChangeOp, ProjectionName};
use questlog_projector::rows::{RowSink, Rows};
use questlog_projector::{Bulk, Decoded, FoldMap, Projection};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use questlog_academy::values::PlayerId;

use crate::event::Event;
use crate::message_of;
use crate::names::{CHANNEL_TOPIC, CHAT};
use crate::state::{Message, MessageState};
use crate::values::{Channel, MessageContent};

/// A row of `rm_messages`. A deleted message keeps its row, without content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// Where it was sent, by whom, and its text now (`None` once deleted).
    pub message: Message,
    pub sent_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    /// The position it was sent at (the channel's history is ordered by it).
    pub position: i64,
}

impl MessageRow {
    /// Folds one event of a message's stream, recorded at `at` and `position`, into its row
    /// (`None` before it is sent): the message by `MessageState::evolve`, the times from the log.
    /// Returns whether a row is there to announce.
    pub fn apply(row: &mut Option<Self>, event: &Event, at: DateTime<Utc>, position: i64) -> bool {
        match event {
            // A message is sent once; its row is never replaced.
            Event::MessageSent { .. } if row.is_some() => true,
            Event::MessageSent { .. } => {
                let mut state = MessageState::default();
                state.evolve(event);
                *row = state.sent.map(|message| Self {
                    message,
                    sent_at: at,
                    edited_at: None,
                    position,
                });
                row.is_some()
            }
            Event::MessageEdited { .. } | Event::MessageDeleted { .. } => {
                let Some(current) = row else {
                    return false;
                };
                let mut state = MessageState {
                    sent: Some(current.message.clone()),
                };
                state.evolve(event);
                if let Some(message) = state.sent {
                    current.message = message;
                }
                if matches!(event, Event::MessageEdited { .. }) {
                    current.edited_at = Some(at);
                }
                true
            }
        }
    }
}

/// Chat messages (`rm_messages`).
pub struct Chat;

#[async_trait]
impl Projection for Chat {
    fn name(&self) -> ProjectionName {
        CHAT
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_messages"]
    }

    fn bulk(&self) -> Option<Box<dyn Bulk>> {
        Some(Box::<Rebuild>::default())
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let (touched, ids) = questlog_projector::touched(events, of_message);
        let erased = questlog_projector::erasures(events);
        if touched.is_empty() && erased.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = load(tx, &ids).await?;
        let mut changes = Vec::new();
        for (id, event, decoded) in touched {
            let row = rows.entry(id).or_default();
            if MessageRow::apply(row, event, decoded.recorded.recorded_at, decoded.position()) {
                if let Some(row) = row {
                    changes.push(Change {
                        topic: CHANNEL_TOPIC.topic(&row.message.channel),
                        key: id.to_string(),
                        op: ChangeOp::Upsert,
                        position: decoded.position(),
                    });
                }
            }
        }
        save(tx, &rows).await?;
        // An erased sender's texts are gone, as a replay (where they open as erased) has them.
        for (sender, position) in erased {
            changes.extend(erase(tx, sender, position).await?);
        }
        Ok(changes)
    }
}

/// `rm_messages`: one row per message sent (its text gone once deleted).
const MESSAGE_ROWS: Rows = Rows {
    table: "rm_messages",
    columns: &[
        "message_id",
        "channel",
        "sender",
        "content",
        "deleted",
        "sent_at",
        "edited_at",
        "position",
    ],
    key: &["message_id"],
    update: &["content", "deleted", "edited_at"],
};

async fn load(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> anyhow::Result<BTreeMap<Uuid, Option<MessageRow>>> {
    MESSAGE_ROWS
        .load(tx, ids, |row| {
            let channel: String = row.try_get("channel")?;
            Ok((
                row.try_get("message_id")?,
                Some(MessageRow {
                    message: Message {
                        channel: Channel::from_canonical(&channel)
                            .with_context(|| format!("a stored channel {channel:?}"))?,
                        sender: PlayerId(row.try_get("sender")?),
                        content: row
                            .try_get::<Option<String>, _>("content")?
                            .map(|c| MessageContent::parse(&c).context("a stored message"))
                            .transpose()?,
                        deleted: row.try_get("deleted")?,
                    },
                    sent_at: row.try_get("sent_at")?,
                    edited_at: row.try_get("edited_at")?,
                    position: row.try_get("position")?,
                }),
            ))
        })
        .await
}

async fn save(
    tx: &mut PgConnection,
    rows: &BTreeMap<Uuid, Option<MessageRow>>,
) -> anyhow::Result<()> {
    let present: Vec<(&Uuid, &MessageRow)> = rows
        .iter()
        .filter_map(|(id, row)| row.as_ref().map(|r| (id, r)))
        .collect();
    MESSAGE_ROWS
        .upsert(tx, present, |mut b, (id, row)| row.put(&mut b, *id))
        .await
}

impl MessageRow {
    /// Message `id`'s row in [`MESSAGE_ROWS`]' columns.
    fn put(&self, out: &mut impl RowSink, id: Uuid) {
        let m = &self.message;
        out.put(id)
            .put(m.channel.to_string())
            .put(m.sender.0)
            .put(m.content.as_ref().map(|c| c.as_str().to_owned()))
            .put(m.deleted)
            .put(self.sent_at)
            .put(self.edited_at)
            .put(self.position);
    }
}

/// Drops an erased sender's texts, as a replay (where they open as erased) has them; the
/// messages' changes, at the erasure's `position`.
async fn erase(tx: &mut PgConnection, sender: Uuid, position: i64) -> anyhow::Result<Vec<Change>> {
    let scrubbed: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE rm_messages SET content = NULL \
          WHERE sender = $1 AND content IS NOT NULL RETURNING message_id, channel",
    )
    .bind(sender)
    .fetch_all(&mut *tx)
    .await?;
    scrubbed
        .into_iter()
        .map(|(id, channel)| {
            let channel = Channel::from_canonical(&channel)
                .with_context(|| format!("a stored channel {channel:?}"))?;
            Ok(Change {
                topic: CHANNEL_TOPIC.topic(&channel),
                key: id.to_string(),
                op: ChangeOp::Upsert,
                position,
            })
        })
        .collect()
}

/// A rebuild of every message's row, folded in memory by [`MessageRow::apply`] and written once;
/// with the senders erased (their texts dropped once every row is written).
#[derive(Default)]
struct Rebuild(FoldMap<Uuid, Option<MessageRow>>, Vec<(Uuid, i64)>);

#[async_trait]
impl Bulk for Rebuild {
    fn fold(&mut self, events: &[&Decoded]) -> anyhow::Result<()> {
        self.1.extend(questlog_projector::erasures(events));
        for decoded in events {
            if let Some((id, event)) = of_message(decoded) {
                let row = self.0.entry(id).or_default();
                MessageRow::apply(row, event, decoded.recorded.recorded_at, decoded.position());
            }
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, conn: &mut PgConnection) -> anyhow::Result<()> {
        let present: Vec<(&Uuid, &MessageRow)> = self
            .0
            .iter()
            .filter_map(|(id, row)| row.as_ref().map(|r| (id, r)))
            .collect();
        MESSAGE_ROWS
            .copy()
            .send_all(conn, present, |line, (id, row)| row.put(line, *id))
            .await?;
        for (sender, position) in &self.1 {
            erase(conn, *sender, *position).await?;
        }
        Ok(())
    }
}

/// The message whose stream `decoded` is on, with its chat event.
fn of_message(decoded: &Decoded) -> Option<(Uuid, &Event)> {
    let event = decoded.event.get::<Event>()?;
    message_of(&decoded.recorded.stream_id).map(|id| (id.0, event))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::values::MessageId;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("a time")
    }

    fn text(s: &str) -> MessageContent {
        MessageContent::parse(s).expect("content")
    }

    #[test]
    fn a_message_row_is_sent_once_edited_and_deleted_without_its_text() {
        let message_id = MessageId(Uuid::from_u128(7));
        let sender = PlayerId(Uuid::from_u128(1));
        let mut row = None;
        let edit = Event::MessageEdited {
            message_id,
            content: questlog_domain::Personal::new(sender, text("hello!")),
        };
        assert!(
            !MessageRow::apply(&mut row, &edit, at(1), 1),
            "nothing sent"
        );
        let sent = Event::MessageSent {
            message_id,
            channel: Channel::Global,
            sender,
            content: questlog_domain::Personal::new(sender, text("hello")),
        };
        assert!(MessageRow::apply(&mut row, &sent, at(2), 2));
        assert!(MessageRow::apply(&mut row, &edit, at(3), 3));
        assert!(MessageRow::apply(&mut row, &sent, at(4), 4), "sent once");
        let edited = MessageRow {
            message: Message {
                channel: Channel::Global,
                sender,
                content: Some(text("hello!")),
                deleted: false,
            },
            sent_at: at(2),
            edited_at: Some(at(3)),
            position: 2,
        };
        assert_eq!(row.as_ref(), Some(&edited));
        let deleted = Event::MessageDeleted {
            message_id,
            by: sender,
        };
        assert!(MessageRow::apply(&mut row, &deleted, at(5), 5));
        assert_eq!(
            row,
            Some(MessageRow {
                message: Message {
                    content: None,
                    deleted: true,
                    ..edited.message
                },
                ..edited
            })
        );
    }
}
