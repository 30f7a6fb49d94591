//! The chat's reads: `GET /v1/channels/{channel}/messages`, a channel's history, newest first,
//! from the chat read model, and the `channel:<name>` live topic, whose snapshot is the latest page
//! and whose changes are one message per event, each as its stream folds as of that event.
//!
//! A channel is named as a client names it (`global`, `lab:<lab_id>`, `dm:<player_id>` for the
//! caller's conversation with that player, or the canonical `dm:<a>:<b>`). A direct channel is
//! only for its two players: anyone else, admins included, is 403.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use questlog_bus::{Change, ProjectionName, TopicKind};
use questlog_domain::{Actor, App};
use questlog_query_api::as_of::{decode, events_until};
use questlog_query_api::live::{
    changed_ids, invalid_topic, to_value, updates_of, Options, Reading, Source, Topic,
    TopicKindReads, Update,
};
use questlog_query_api::params::{query, Consistency, ReadParams};
use questlog_query_api::snapshot::{answer, begin, checkpoint};
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_store::RecordedEvent;
use questlog_web::{Authenticated, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use questlog_academy::names::PLAYERS;
use questlog_academy::values::PlayerId;
use questlog_academy::StreamId;

use crate::event::Event;
use crate::message_stream;
use crate::names::{CHANNEL_TOPIC, CHAT};
use crate::state::MessageState;
use crate::values::{Channel, MessageId};
use questlog_web::openapi::ApiDocsExt as _;
use utoipa::OpenApi as _;

/// The projections a channel's history is read from (messages, and their senders' names).
pub(crate) const HISTORY: &[ProjectionName] = &[CHAT, PLAYERS];

/// The module's reads in the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(messages))]
struct ApiDoc;

/// Registers the chat's route and topic.
pub(crate) fn register(app: &mut App) {
    app.add_read_routes(Router::new().route("/v1/channels/{channel}/messages", get(messages)))
        .add_topic(ChannelTopics)
        .add_read_projections(HISTORY);
    app.add_api_docs(ApiDoc::openapi());
}
/// The page size unless told otherwise.
pub const DEFAULT_MESSAGES: i64 = 50;
/// The largest page; more (or less than 1) is 422 `invalid_limit`.
pub const MAX_MESSAGES: i64 = 200;

/// One message as every read shows it. A deleted message keeps its place without its content.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageOut {
    message_id: Uuid,
    channel: String,
    sender: Uuid,
    username: Option<String>,
    content: Option<String>,
    deleted: bool,
    /// Its sender was erased: its text is gone.
    erased: bool,
    sent_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    position: i64,
}

/// A page of a channel's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    position: i64,
    channel: String,
    messages: Vec<MessageOut>,
    /// Pass as `before` for the older page; `null` at the channel's start.
    next: Option<Uuid>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// 1–200 (default 50).
    limit: Option<i64>,
    /// The `next` of the newer page: messages before this one.
    before: Option<Uuid>,
}

/// The channel `raw` names for `caller`: a direct channel of two other players is 403, any other
/// malformed name 422 `invalid_channel`.
pub(crate) fn channel_for(raw: &str, caller: PlayerId) -> Result<Channel, ApiError> {
    if let Some(channel) = Channel::from_canonical(raw) {
        if !channel.visible_to(caller) {
            return Err(forbidden());
        }
        return Ok(channel);
    }
    Channel::parse(raw, caller).map_err(|r| ApiError::invalid(r.code, r.detail))
}

fn forbidden() -> ApiError {
    ApiError::Client(Problem::forbidden(
        "a direct channel is only for its two players",
    ))
}

/// `GET /v1/channels/{channel}/messages?limit=50&before=<message_id>`.
#[utoipa::path(get, path = "/v1/channels/{channel}/messages", tag = "chat",
    params(("channel" = String, Path,
        description = "`global`, `lab:<lab_id>`, `dm:<player_id>` or `dm:<a>:<b>`"),
        ReadParams, HistoryParams),
    summary = "A channel's messages, newest first", responses((status = 200, body = History)))]
#[tracing::instrument(skip_all, fields(channel = tracing::field::Empty))]
pub(crate) async fn messages(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    channel: Result<Path<String>, PathRejection>,
    read: Result<Query<ReadParams>, QueryRejection>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Authenticated(actor) = auth?;
    let consistency = Consistency::parse(query(read)?)?;
    let params = query(params)?;
    let Path(raw) = channel?;
    let channel = channel_for(&raw, actor.identity)?;
    tracing::Span::current().record("channel", tracing::field::display(&channel));
    let limit = params.limit.unwrap_or(DEFAULT_MESSAGES);
    if !(1..=MAX_MESSAGES).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            format!("limit is 1 to {MAX_MESSAGES}"),
        ));
    }
    // Every message sent up to that point is in the read model once chat has applied it.
    if let Some(position) = consistency
        .as_of_applied(&state.pool, &state.positions, HISTORY)
        .await?
    {
        let mut tx = begin(&state.pool).await?;
        let history = history_as_of(&mut tx, &channel, position, params.before, limit).await?;
        tx.commit().await?;
        return Ok(answer(position, &history.ok_or_else(unknown_cursor)?));
    }
    consistency.wait(&state.positions, HISTORY).await?;

    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, HISTORY).await?;
    let history = read_history(&mut tx, &channel, position, params.before, limit).await?;
    tx.commit().await?;
    Ok(answer(position, &history.ok_or_else(unknown_cursor)?))
}

/// A page of `channel`'s history as it stood at `position`: the messages sent up to there, each
/// as its own stream folded by the domain up to there (an edit or a deletion after it undone).
async fn history_as_of(
    conn: &mut PgConnection,
    channel: &Channel,
    position: i64,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Option<History>, ApiError> {
    let Some(mut history) = page(conn, channel, position, before, limit, position).await? else {
        return Ok(None);
    };
    let streams: Vec<String> = history
        .messages
        .iter()
        .map(|m| message_stream(MessageId(m.message_id)).to_string())
        .collect();
    let recorded = events_until(
        conn,
        &streams,
        position,
        <Event as questlog_domain::DomainEvent>::LEGACY_PERSONAL,
    )
    .await?;
    for message in &mut history.messages {
        fold_message(message, &recorded, position)?;
    }
    Ok(Some(history))
}

/// Sets what edits and deletions change of `message` as its stream, among `recorded`, folds up
/// to `position`.
fn fold_message(
    message: &mut MessageOut,
    recorded: &[RecordedEvent],
    position: i64,
) -> Result<(), ApiError> {
    let stream = message_stream(MessageId(message.message_id)).to_string();
    let mine: Vec<_> = recorded
        .iter()
        .filter(|e| e.stream_id == stream && e.position <= position)
        .cloned()
        .collect();
    let mut state = MessageState::default();
    for event in decode::<Event>(&mine)? {
        state.evolve(&event);
    }
    let sent = state.sent;
    message.deleted = sent.as_ref().is_some_and(|m| m.deleted);
    let content = sent.and_then(|m| m.content);
    message.erased = !message.deleted && content.is_none();
    message.content = content.map(|c| c.as_str().to_owned());
    message.edited_at = mine
        .iter()
        .rev()
        .find(|e| e.event_type == "message_edited")
        .map(|e| e.recorded_at);
    Ok(())
}

fn unknown_cursor() -> ApiError {
    ApiError::not_found(
        "message_not_found",
        "before names no message of this channel",
    )
}

const MESSAGE_COLUMNS: &str =
    "m.message_id, m.channel, m.sender, p.username, m.content, m.deleted, \
     (m.content IS NULL AND NOT m.deleted) AS erased, \
     m.sent_at, m.edited_at, m.position \
     FROM rm_messages m LEFT JOIN rm_players p ON p.player_id = m.sender";

/// A page of `channel`'s history in this snapshot, newest first, older than the message `before`
/// (`None` when `before` is no message of the channel). The read behind the route and the
/// `channel:<name>` topic's snapshot.
pub(crate) async fn read_history(
    conn: &mut PgConnection,
    channel: &Channel,
    position: i64,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Option<History>, ApiError> {
    page(conn, channel, position, before, limit, i64::MAX).await
}

/// The page, of the messages sent at or below `sent_until`.
async fn page(
    conn: &mut PgConnection,
    channel: &Channel,
    position: i64,
    before: Option<Uuid>,
    limit: i64,
    sent_until: i64,
) -> Result<Option<History>, ApiError> {
    let name = channel.to_string();
    let below = match before {
        None => i64::MAX,
        Some(id) => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM rm_messages WHERE message_id = $1 AND channel = $2 AND position <= $3",
            )
            .bind(id)
            .bind(&name)
            .bind(sent_until)
            .fetch_optional(&mut *conn)
            .await?;
            match found {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.channel = $1 AND m.position < $2 AND m.position <= $4 \
         ORDER BY m.position DESC LIMIT $3"
    );
    let mut messages: Vec<MessageOut> = sqlx::query_as(&sql)
        .bind(&name)
        .bind(below)
        .bind(limit)
        .bind(sent_until)
        .fetch_all(&mut *conn)
        .await?;
    senders_registered_since(conn, &mut messages).await?;
    let full = i64::try_from(messages.len()).unwrap_or(i64::MAX) == limit;
    let next = if full {
        messages.last().map(|m| m.message_id)
    } else {
        None
    };
    Ok(Some(History {
        position,
        channel: name,
        messages,
        next,
    }))
}

/// Names the senders the players read model has not registered yet in this snapshot (it may lag
/// the chat's) from their registrations in the log: a sender registers before its first message,
/// and a name never changes, so a message shows its sender's name at any position it exists.
async fn senders_registered_since(
    conn: &mut PgConnection,
    messages: &mut [MessageOut],
) -> Result<(), ApiError> {
    let streams: Vec<String> = messages
        .iter()
        .filter(|m| m.username.is_none())
        .map(|m| StreamId::Player(PlayerId(m.sender)).to_string())
        .collect();
    if streams.is_empty() {
        return Ok(());
    }
    let registrations: Vec<sqlx::types::Json<RecordedEvent>> = sqlx::query_scalar(
        "SELECT jsonb_build_object('position', position, 'event_id', event_id, \
                'stream_id', stream_id, 'stream_version', stream_version, \
                'event_type', event_type, 'schema_version', schema_version, 'data', data, \
                'metadata', metadata, 'recorded_at', recorded_at) FROM events
          WHERE stream_id = ANY($1) AND stream_version = 1 AND event_type = 'player_registered'",
    )
    .bind(&streams)
    .fetch_all(&mut *conn)
    .await?;
    // The name as the keys have it now: an erased sender's stays unknown.
    let mut registrations: Vec<RecordedEvent> = registrations.into_iter().map(|e| e.0).collect();
    questlog_store::sealing::open_all(
        &mut *conn,
        <questlog_academy::Event as questlog_domain::DomainEvent>::LEGACY_PERSONAL,
        &mut registrations,
    )
    .await?;
    for message in messages.iter_mut().filter(|m| m.username.is_none()) {
        let stream = StreamId::Player(PlayerId(message.sender)).to_string();
        message.username = registrations
            .iter()
            .find(|e| e.stream_id == stream)
            .and_then(|e| e.data.get("username")?.as_str().map(str::to_owned));
    }
    Ok(())
}

/// Messages each as of a position, as a page as of it shows them (`None`: not sent by then): the
/// `channel:<name>` live topic's changes, each exactly the as-of read at its position.
pub(crate) async fn messages_as_of(
    conn: &mut PgConnection,
    at: &[(Uuid, i64)],
) -> Result<Vec<Option<MessageOut>>, ApiError> {
    let ids: Vec<Uuid> = at.iter().map(|(id, _)| *id).collect();
    let sql = format!("SELECT {MESSAGE_COLUMNS} WHERE m.message_id = ANY($1)");
    let mut rows: Vec<MessageOut> = sqlx::query_as(&sql)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    senders_registered_since(conn, &mut rows).await?;
    let streams: Vec<String> = rows
        .iter()
        .map(|m| message_stream(MessageId(m.message_id)).to_string())
        .collect();
    let until = at.iter().map(|(_, p)| *p).max().unwrap_or(0);
    let recorded = events_until(
        conn,
        &streams,
        until,
        <Event as questlog_domain::DomainEvent>::LEGACY_PERSONAL,
    )
    .await?;
    at.iter()
        .map(|(id, position)| {
            let Some(row) = rows
                .iter()
                .find(|m| m.message_id == *id && m.position <= *position)
            else {
                return Ok(None);
            };
            let mut message = row.clone();
            fold_message(&mut message, &recorded, *position)?;
            Ok(Some(message))
        })
        .collect()
}

/// The `channel` topic kind: `channel:<channel>`, any channel name `send_message` takes. A
/// canonical direct channel parses whoever names it; the topic refuses it to anyone but its two
/// players.
struct ChannelTopics;

impl TopicKindReads for ChannelTopics {
    fn kind(&self) -> TopicKind {
        CHANNEL_TOPIC
    }

    fn form(&self) -> &'static str {
        "channel:<channel>"
    }

    fn parse(
        &self,
        raw: &str,
        rest: Option<&str>,
        caller: &Actor,
        _options: &Options,
    ) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        let Some(name) = rest else {
            return Ok(None);
        };
        let channel = Channel::from_canonical(name)
            .map_or_else(|| Channel::parse(name, caller.identity), Ok)
            .map_err(|r| invalid_topic(format!("{raw:?}: {}", r.detail)))?;
        Ok(Some(Arc::new(ChannelTopic(channel))))
    }
}

/// A chat channel's messages, canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChannelTopic(Channel);

impl Topic for ChannelTopic {
    fn name(&self) -> String {
        CHANNEL_TOPIC.topic(&self.0)
    }

    fn authorize(&self, actor: &Actor) -> Result<(), ApiError> {
        if self.0.visible_to(actor.identity) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    fn projections(&self) -> &'static [ProjectionName] {
        &[CHAT]
    }

    fn sources(&self) -> Vec<Source> {
        vec![Source::all(self.name())]
    }

    fn snapshot<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        reading: &'a mut Reading,
    ) -> BoxFuture<'a, Result<(i64, Value), ApiError>> {
        async move {
            let position = reading.checkpoint(CHAT);
            let history = read_history(conn, &self.0, position, None, DEFAULT_MESSAGES).await?;
            Ok((position, history.map_or(Value::Null, |h| to_value(&h))))
        }
        .boxed()
    }

    fn changed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        _reading: &'a mut Reading,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<Vec<Update>, ApiError>> {
        async move {
            // One update per changed message, keyed by its id, as of its change.
            let at = changed_ids(changes);
            let rows = messages_as_of(conn, &at).await?;
            Ok(updates_of(at, rows))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use questlog_domain::Role;

    fn parse(raw: &str, caller: Uuid) -> Result<Option<Arc<dyn Topic>>, ApiError> {
        let actor = Actor {
            identity: PlayerId(caller),
            role: Role::Player,
        };
        let rest = raw.strip_prefix("channel:");
        ChannelTopics.parse(raw, rest, &actor, &Options::default())
    }

    #[test]
    fn a_direct_channel_topic_is_the_pairs_whoever_names_it_and_only_theirs() {
        let (ada, bob, eve) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let dm = Channel::direct(PlayerId(ada), PlayerId(bob));
        let name = |t: Result<Option<Arc<dyn Topic>>, ApiError>| t.ok().flatten().map(|t| t.name());
        assert_eq!(
            name(parse(&format!("channel:dm:{bob}"), ada)),
            Some(format!("channel:{dm}"))
        );
        assert_eq!(
            name(parse(&format!("channel:dm:{ada}"), bob)),
            Some(format!("channel:{dm}"))
        );
        let canonical = parse(&format!("channel:{dm}"), eve)
            .ok()
            .flatten()
            .expect("parses");
        let actor = |id| Actor {
            identity: PlayerId(id),
            role: Role::Admin,
        };
        assert!(canonical.authorize(&actor(ada)).is_ok());
        assert!(matches!(
            canonical.authorize(&actor(eve)),
            Err(ApiError::Client(p)) if p.code == "forbidden"
        ));
    }

    #[test]
    fn a_malformed_channel_topic_is_refused() {
        for raw in ["channel:", "channel:room", "channel:dm:42"] {
            assert!(
                matches!(parse(raw, Uuid::nil()), Err(ApiError::Client(p)) if p.code == "invalid_topic"),
                "{raw:?} must be refused"
            );
        }
    }
}
