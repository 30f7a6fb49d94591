//! A module made up for the tests, to show what a new feature needs: this file and its
//! migrations folder, registered with one line. A guestbook: every identity may sign it once
//! (`sign_guestbook {"text"}`), and `GET /v1/guestbook` lists the signatures.

use std::collections::BTreeSet;

use async_trait::async_trait;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use questlog_bus::{Change, ChangeOp, ProjectionName, TopicKind};
use questlog_domain::values::{free_text, PlayerId};
use questlog_domain::{
    body, Actor, App, Command, Context, DomainEvent, Edge, Event, Module, Rejection, StreamId,
    StreamKind, View,
};
use questlog_projector::{Decoded, ProjectorExt as _};
use questlog_query_api::params::{query, Consistency, ReadParams};
use questlog_query_api::snapshot::{answer, begin, checkpoint};
use questlog_query_api::{ApiError, QueryApp as _, QueryState};
use questlog_store::MigrationsExt as _;
use questlog_web::{Authenticated, Problem};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// The guestbook's one stream.
pub const GUESTBOOK: StreamKind = StreamKind::new("guestbook");
/// Its read model.
pub const ENTRIES: ProjectionName = ProjectionName::new("guestbook");
/// Its changes, one per signature.
pub const TOPIC: TopicKind = TopicKind::new("guestbook");

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("it/guestbook/migrations");

/// The module.
pub struct Guestbook;

impl Module for Guestbook {
    fn name(&self) -> &'static str {
        "guestbook"
    }

    fn build(&self, app: &mut App) {
        app.add_events::<GuestbookEvent>()
            .add_commands(&["sign_guestbook"], parse)
            .add_stream(GUESTBOOK, str::is_empty)
            .add_view::<Signers>(GUESTBOOK);
        app.add_projection(Entries);
        app.add_read_routes(Router::new().route("/v1/guestbook", get(entries)))
            .add_read_projections(&[ENTRIES]);
        app.add_migrations(self.name(), &MIGRATIONS);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum GuestbookEvent {
    /// An identity signed the guestbook.
    GuestbookSigned { by: PlayerId, text: String },
}

impl DomainEvent for GuestbookEvent {
    const TYPES: &'static [&'static str] = &["guestbook_signed"];

    fn event_type(&self) -> &'static str {
        "guestbook_signed"
    }
}

/// Who signed: what `sign_guestbook` decides against.
#[derive(Debug, Clone, Default)]
pub struct Signers(BTreeSet<PlayerId>);

impl View for Signers {
    fn initial(_: &StreamId) -> Self {
        Self::default()
    }

    fn evolve(&mut self, event: &Event) {
        if let Some(GuestbookEvent::GuestbookSigned { by, .. }) = event.get() {
            self.0.insert(*by);
        }
    }
}

#[derive(Debug)]
pub struct Sign {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    text: String,
}

fn parse(_: &str, raw: &[u8], _: &Edge) -> Result<Box<dyn Command>, Rejection> {
    let b: SignBody = body(raw)?;
    Ok(Box::new(Sign {
        text: free_text(b.text, "invalid_text", "a text", 140)?,
    }))
}

impl Command for Sign {
    fn name(&self) -> &'static str {
        "sign_guestbook"
    }

    fn streams(&self, _: &Actor) -> Vec<StreamId> {
        vec![GUESTBOOK.stream("")]
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Vec<(StreamId, Event)>, Rejection> {
        let stream = GUESTBOOK.stream("");
        let me = ctx.actor.identity;
        if ctx.view::<Signers>(&stream).0.contains(&me) {
            return Err(Rejection::conflict(
                "already_signed",
                "this identity signed the guestbook already",
            ));
        }
        let signed = GuestbookEvent::GuestbookSigned {
            by: me,
            text: self.text.clone(),
        };
        Ok(vec![(stream, signed.into())])
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The signatures, one row each (`rm_guestbook`).
struct Entries;

#[async_trait]
impl questlog_projector::Projection for Entries {
    fn name(&self) -> ProjectionName {
        ENTRIES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_guestbook"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[&Decoded],
    ) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for decoded in events {
            let Some(GuestbookEvent::GuestbookSigned { by, text }) = decoded.event.get() else {
                continue;
            };
            sqlx::query(
                "INSERT INTO rm_guestbook (player_id, text, position) VALUES ($1, $2, $3) \
                 ON CONFLICT (player_id) DO NOTHING",
            )
            .bind(by.0)
            .bind(text)
            .bind(decoded.position())
            .execute(&mut *tx)
            .await?;
            changes.push(Change {
                topic: TOPIC.as_str().to_owned(),
                key: by.to_string(),
                op: ChangeOp::Upsert,
                position: decoded.position(),
            });
        }
        Ok(changes)
    }
}

#[derive(Serialize)]
struct Page {
    position: i64,
    entries: Vec<Entry>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Entry {
    player_id: Uuid,
    text: String,
}

/// `GET /v1/guestbook`: every signature, oldest first.
async fn entries(
    State(state): State<QueryState>,
    auth: Result<Authenticated, Problem>,
    read: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth?;
    let consistency = Consistency::parse(query(read)?)?;
    consistency.now_only("the guestbook")?;
    consistency.wait(&state.positions, &[ENTRIES]).await?;
    let mut tx = begin(&state.pool).await?;
    let position = checkpoint(&mut tx, &[ENTRIES]).await?;
    let entries = sqlx::query_as("SELECT player_id, text FROM rm_guestbook ORDER BY position")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(answer(position, &Page { position, entries }))
}
