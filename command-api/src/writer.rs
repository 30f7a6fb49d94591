//! The group-commit writer: one task that decides commands against cached stream states and appends
//! every command that arrived meanwhile in one transaction (one round trip for the whole batch).
//!
//! Why one task: deciding is pure and takes microseconds, while a durable commit takes a disk
//! flush. Folding every waiting command into the next commit lets throughput grow with concurrency
//! instead of being bound by one flush per command. Commands on the same stream in one batch are
//! decided in order against the state the earlier ones left, so concurrent commands for one player
//! never conflict with each other; a conflict with another process's append reloads the streams and
//! decides again, a bounded number of times.
//!
//! One command never fails the others of its batch: when the database refuses a batch's append
//! (a value it cannot store, a constraint, a trigger: nothing was written), the writer decides and
//! appends the batch's commands again one at a time, from fresh states, so only the command at
//! fault gets the error.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use lru::LruCache;
use questlog_domain::{
    decide, Actor, Command, Context, Domain, Event, Rejection, States, StreamId, StreamState,
};
use questlog_store::sealing::{KeyRing, KEY_CONFLICT};
use questlog_store::{
    AppendBatch, EventStore, ExpectedVersion, IdempotencyRecord, IdempotentCommand, NewEvent,
    RecordedEvent, StoreError,
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How many times a batch is decided again after conflicting with another writer.
const MAX_ATTEMPTS: usize = 8;

/// One event of a command's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: serde_json::Value,
}

impl From<RecordedEvent> for EventOut {
    fn from(e: RecordedEvent) -> Self {
        Self {
            position: e.position,
            stream: e.stream_id,
            version: e.stream_version,
            event_type: e.event_type,
            data: e.data,
        }
    }
}

/// The answer to an accepted command.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CommandOutcome {
    pub command_id: Uuid,
    /// The last appended event's position, or the log's head when nothing was appended.
    pub position: i64,
    pub events: Vec<EventOut>,
    /// What the command says of its events beside them ([`Command::result`]), when it says
    /// anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// Why a command was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rejected(Rejection),
    /// The store cannot be reached; nothing was committed, or (if the connection broke during the
    /// commit) the outcome is unknown and a retry with the same idempotency key is safe.
    #[error("the event store is unavailable")]
    Unavailable,
    /// A fault on our side, logged with its cause.
    #[error("the command could not be stored")]
    Internal,
    /// Another request with the same idempotency key committed first; look its answer up.
    #[error("the idempotency key was used meanwhile")]
    IdempotencyRace,
    /// Kept conflicting with other writers after every retry.
    #[error("the command kept conflicting with concurrent writes")]
    Contended,
    /// The writer has stopped (shutting down).
    #[error("the command writer has stopped")]
    Stopped,
}

impl CommandError {
    /// The `outcome` label of `questlog_commands_total` for this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::IdempotencyRace => "idempotency_race",
            Self::Contended => "contended",
            Self::Stopped => "stopped",
        }
    }
}

/// A command on its way to the writer.
pub struct Submission {
    pub actor: Actor,
    pub command: Box<dyn Command>,
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub idempotency: Option<IdempotencyRecord>,
    reply: oneshot::Sender<Result<CommandOutcome, CommandError>>,
}

/// Sends commands to the writer task.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Submission>,
}

/// A command as the handler hands it over.
pub struct Request {
    pub actor: Actor,
    pub command: Box<dyn Command>,
    pub correlation_id: Option<Uuid>,
    pub idempotency: Option<(String, String)>,
}

impl WriterHandle {
    /// Decides and commits a command, waiting for its durable commit.
    ///
    /// # Errors
    /// Whatever [`CommandError`] says.
    pub async fn submit(&self, request: Request) -> Result<CommandOutcome, CommandError> {
        let command_id = Uuid::now_v7();
        let (reply, rx) = oneshot::channel();
        let idempotency = request
            .idempotency
            .map(|(key, request_hash)| IdempotencyRecord {
                identity: request.actor.identity.0,
                key,
                request_hash,
                command_id,
            });
        let submission = Submission {
            actor: request.actor,
            command: request.command,
            command_id,
            correlation_id: request.correlation_id.unwrap_or(command_id),
            idempotency,
            reply,
        };
        let name = submission.command.name();
        let answer = match self.tx.send(submission).await {
            Ok(()) => rx.await.unwrap_or(Err(CommandError::Stopped)),
            Err(_) => Err(CommandError::Stopped),
        };
        let outcome = match &answer {
            Ok(_) => "accepted",
            Err(e) => e.outcome(),
        };
        metrics::counter!("questlog_commands_total", "command" => name, "outcome" => outcome)
            .increment(1);
        answer
    }

    /// How many commands are waiting for the writer to take them into a batch.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Where the writer and the scheduled jobs take the time from: the system clock, or a clock a
/// test moves by hand to simulate minutes in a moment.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The time now, to the microsecond (what Postgres keeps, so read models and replays agree
    /// to the digit).
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)().trunc_subsecs(6)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Utc::now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most commands in one commit.
    pub max_batch: usize,
    /// Streams whose folded state is kept in memory.
    pub cache_streams: usize,
    pub clock: Clock,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            cache_streams: 100_000,
            clock: Clock::default(),
        }
    }
}

/// Starts the writer task; it stops when `shutdown` fires, after finishing the batch at hand.
pub fn spawn(
    domain: Arc<Domain>,
    store: Arc<dyn EventStore>,
    config: WriterConfig,
    shutdown: CancellationToken,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.max_batch * 4);
    let cache_size = NonZeroUsize::new(config.cache_streams.max(1)).unwrap_or(NonZeroUsize::MIN);
    let writer = Writer {
        domain,
        store,
        cache: LruCache::new(cache_size),
        max_batch: config.max_batch.max(1),
        clock: config.clock,
        keys: KeyRing::default(),
        answers: Vec::new(),
    };
    let task = tokio::spawn(writer.run(rx, shutdown));
    (WriterHandle { tx }, task)
}

struct Cached {
    version: u64,
    state: Arc<StreamState>,
}

struct Writer {
    domain: Arc<Domain>,
    store: Arc<dyn EventStore>,
    cache: LruCache<StreamId, Cached>,
    max_batch: usize,
    clock: Clock,
    /// The keys personal fields are sealed with (see `questlog_store::sealing`).
    keys: KeyRing,
    /// The events of the batch being appended as the answers show them.
    answers: Vec<Shown>,
}

/// Most subjects' keys the writer keeps before it reads them afresh.
const MAX_KEYS: usize = 100_000;

/// The streams one batch works on: the version each had when read, and the state as the batch's
/// decisions so far have left it.
#[derive(Default)]
struct Overlay {
    streams: HashMap<StreamId, (u64, u64, Arc<StreamState>)>,
    /// The earlier events the submissions name (`Command::earlier_events`), and every event the
    /// batch decided, by stream and version.
    events: HashMap<(StreamId, u64), Event>,
}

impl States for Overlay {
    fn state(&self, stream: &StreamId) -> &StreamState {
        // The writer loads every stream of `Command::streams` before deciding.
        &self.streams[stream].2
    }

    fn event(&self, stream: &StreamId, version: u64) -> Option<&Event> {
        self.events.get(&(stream.clone(), version))
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Submission>, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                s = rx.recv() => match s { Some(s) => s, None => break },
                () = shutdown.cancelled() => break,
            };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            self.process(batch).await;
        }
        // Refuse what is still queued rather than leave callers waiting.
        rx.close();
        while let Some(s) = rx.recv().await {
            let _ = s.reply.send(Err(CommandError::Stopped));
        }
    }

    async fn process(&mut self, batch: Vec<Submission>) {
        // A second command with an idempotency key already in this batch waits for the first.
        let mut seen_keys = std::collections::HashSet::new();
        let (pending, duplicates): (Vec<_>, Vec<_>) = batch.into_iter().partition(|s| {
            s.idempotency
                .as_ref()
                .is_none_or(|r| seen_keys.insert((r.identity, r.key.clone())))
        });
        if let Some(each) = self.commit(pending).await {
            // The database refused the batch for something one of its commands carries. Each is
            // decided and appended alone, in order, so only that one gets the error.
            for s in each {
                // A batch of one is never split further: its refusal is its own answer.
                let _ = self.commit(vec![s]).await;
            }
        }
        for s in duplicates {
            let _ = s.reply.send(Err(CommandError::IdempotencyRace));
        }
    }

    /// Decides and appends `pending` as one batch, again after each conflict (a bounded number
    /// of times). Answers every command, unless the database refused a batch of several: those
    /// come back, undecided and in order, to be committed one at a time.
    async fn commit(&mut self, mut pending: Vec<Submission>) -> Option<Vec<Submission>> {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(pending).await {
                Attempt::Done => return None,
                Attempt::Retry(again) if attempt < MAX_ATTEMPTS => pending = again,
                Attempt::Retry(again) => {
                    for s in again {
                        let _ = s.reply.send(Err(CommandError::Contended));
                    }
                    return None;
                }
                Attempt::Isolate(each) => return Some(each),
            }
        }
        None
    }

    /// Loads every stream the submissions read that is not cached (only its latest event for a
    /// kind folded from it), and the earlier events they name.
    async fn load(&mut self, submissions: &[Submission]) -> Result<Overlay, StoreError> {
        let mut overlay = Overlay::default();
        let (mut whole, mut latest) = (Vec::new(), Vec::new());
        let mut earlier = Vec::new();
        for s in submissions {
            for stream in s.command.streams(&s.actor) {
                if overlay.streams.contains_key(&stream) {
                    continue;
                }
                // Taken out of the cache, so the batch owns the only reference and evolving it
                // in place does not copy it; it goes back after a successful append.
                if let Some(c) = self.cache.pop(&stream) {
                    overlay
                        .streams
                        .insert(stream, (c.version, c.version, c.state));
                } else {
                    if self.domain.folds_from_latest(&stream) {
                        latest.push(stream.clone());
                    } else {
                        whole.push(stream.clone());
                    }
                    overlay.streams.insert(
                        stream.clone(),
                        (0, 0, Arc::new(self.domain.initial(&stream))),
                    );
                }
            }
            earlier.extend(s.command.earlier_events(&s.actor));
        }
        for (missing, from_latest) in [(whole, false), (latest, true)] {
            if missing.is_empty() {
                continue;
            }
            let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
            let mut recorded = if from_latest {
                self.store.read_latest(&names).await?
            } else {
                self.store.read_streams(&names).await?
            };
            self.store.open(&self.domain, &mut recorded).await?;
            for (stream, version, event) in self.decoded(&missing, &names, recorded)? {
                let entry = overlay.streams.get_mut(stream).expect("inserted above");
                Arc::make_mut(&mut entry.2).evolve(&event);
                entry.0 = version;
                entry.1 = version;
            }
        }
        if !earlier.is_empty() {
            let streams: Vec<StreamId> = earlier.iter().map(|(s, _)| s.clone()).collect();
            let wanted: Vec<(String, i64)> = earlier
                .iter()
                .map(|(s, v)| (s.to_string(), i64::try_from(*v).unwrap_or(i64::MAX)))
                .collect();
            let names: Vec<String> = wanted.iter().map(|(s, _)| s.clone()).collect();
            let mut recorded = self.store.read_versions(&wanted).await?;
            self.store.open(&self.domain, &mut recorded).await?;
            for (stream, version, event) in self.decoded(&streams, &names, recorded)? {
                overlay.events.insert((stream.clone(), version), event);
            }
        }
        Ok(overlay)
    }

    /// Recorded events of `streams` (written as `names`), decoded: each with its stream and
    /// version.
    fn decoded<'s>(
        &self,
        streams: &'s [StreamId],
        names: &[String],
        recorded: Vec<RecordedEvent>,
    ) -> Result<Vec<(&'s StreamId, u64, Event)>, StoreError> {
        let by_name: HashMap<&str, &StreamId> =
            names.iter().map(String::as_str).zip(streams).collect();
        recorded
            .into_iter()
            .filter_map(|r| by_name.get(r.stream_id.as_str()).map(|s| (*s, r)))
            .map(|(stream, r)| {
                let event = self
                    .domain
                    .decode(&r.event_type, r.schema_version, &r.data)
                    .map_err(|e| StoreError::Decode(e.to_string()))?;
                Ok((stream, u64::try_from(r.stream_version).unwrap_or(0), event))
            })
            .collect()
    }

    /// Decides the submissions in order against the streams' states and appends what they
    /// decided in one statement. A refusal is answered only once the batch's outcome is known:
    /// it was decided against the effects of the commands before it, which count only if they
    /// commit.
    async fn attempt(&mut self, submissions: Vec<Submission>) -> Attempt {
        let mut overlay = match self.load(&submissions).await {
            Ok(o) => o,
            Err(e) => {
                fail_all(submissions, &e);
                return Attempt::Done;
            }
        };
        let now = self.clock.now();
        let mut batch = AppendBatch {
            at: Some(now),
            ..AppendBatch::default()
        };
        let mut decided: Vec<(Submission, Verdict)> = Vec::with_capacity(submissions.len());
        for s in submissions {
            let ctx = Context {
                actor: s.actor,
                now,
                states: &overlay,
            };
            let events = match decide(s.command.as_ref(), &ctx) {
                Ok(events) => events,
                Err(rejection) => {
                    decided.push((s, Verdict::Refused(rejection)));
                    continue;
                }
            };
            let first = batch.events.len();
            let metadata = json!({
                "command_id": s.command_id,
                "command": s.command.name(),
                "correlation_id": s.correlation_id,
                "causation_id": s.command_id,
                "identity": s.actor.identity,
                "role": s.actor.role,
            });
            for (stream, event) in &events {
                let entry = overlay
                    .streams
                    .get_mut(stream)
                    .expect("decide only writes to the streams the command reads");
                Arc::make_mut(&mut entry.2).evolve(event);
                entry.1 += 1;
                overlay
                    .events
                    .insert((stream.clone(), entry.1), event.clone());
                batch.events.push(NewEvent {
                    event_id: Uuid::now_v7(),
                    stream_id: stream.to_string(),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    data: event.data(),
                    metadata: metadata.clone(),
                });
            }
            batch.beside.extend(s.command.beside(&s.actor));
            if let Some(record) = &s.idempotency {
                batch.idempotent.push(IdempotentCommand {
                    record: record.clone(),
                    first_event: first,
                    event_count: events.len(),
                });
            }
            let count = events.len();
            let decided_events: Vec<_> = events.into_iter().map(|(_, e)| e).collect();
            let result = s.command.result(&decided_events);
            decided.push((
                s,
                Verdict::Accepted {
                    first,
                    count,
                    result,
                },
            ));
        }
        if decided
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Refused(_)))
        {
            // Every command was refused: nothing changed, so the states go back as they were.
            for (stream, (read, _, state)) in overlay.streams {
                self.cache.put(
                    stream,
                    Cached {
                        version: read,
                        state,
                    },
                );
            }
            for (s, verdict) in decided {
                if let Verdict::Refused(rejection) = verdict {
                    let _ = s.reply.send(Err(CommandError::Rejected(rejection)));
                }
            }
            return Attempt::Done;
        }
        if let Err(e) = self.seal(&mut batch).await {
            fail_all(decided.into_iter().map(|(s, _)| s), &e);
            return Attempt::Done;
        }
        batch.expectations = overlay
            .streams
            .iter()
            .map(|(stream, (read, _, _))| (stream.to_string(), ExpectedVersion::at(*read)))
            .collect();
        let mut answers = std::mem::take(&mut self.answers);
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::histogram!("questlog_append_batch_commands").record(decided.len() as f64);
            metrics::histogram!("questlog_append_batch_events").record(answers.len() as f64);
        }
        let started = std::time::Instant::now();
        let appended = self.store.append(batch).await;
        metrics::histogram!("questlog_append_duration_seconds").record(started.elapsed());
        match appended {
            Ok(appended) => {
                for (stream, (_, version, state)) in overlay.streams {
                    self.cache.put(stream, Cached { version, state });
                }
                for (s, verdict) in decided {
                    let (first, count, result) = match verdict {
                        Verdict::Accepted {
                            first,
                            count,
                            result,
                        } => (first, count, result),
                        Verdict::Refused(rejection) => {
                            let _ = s.reply.send(Err(CommandError::Rejected(rejection)));
                            continue;
                        }
                    };
                    // Each event is one command's: its answer takes it.
                    let out = (first..first + count)
                        .map(|i| {
                            let shown = std::mem::take(&mut answers[i]);
                            EventOut {
                                position: appended.positions[i],
                                stream: shown.stream,
                                version: appended.versions[i],
                                event_type: shown.event_type,
                                data: shown.data,
                            }
                        })
                        .collect::<Vec<_>>();
                    let position = out.last().map_or(appended.head, |e| e.position);
                    let _ = s.reply.send(Ok(CommandOutcome {
                        command_id: s.command_id,
                        position,
                        events: out,
                        result,
                    }));
                }
                Attempt::Done
            }
            Err(StoreError::Conflict(conflicts)) => {
                tracing::debug!(?conflicts, "append conflicted; deciding again");
                for c in &conflicts {
                    if let Some(subject) = c.strip_prefix(KEY_CONFLICT) {
                        if let Ok(subject) = Uuid::parse_str(subject) {
                            self.keys.forget(subject);
                        }
                    }
                }
                metrics::counter!("questlog_append_conflicts_total").increment(1);
                // The streams were taken out of the cache to decide: left out, they are read
                // afresh for the next attempt.
                let raced: Vec<&str> = conflicts
                    .iter()
                    .filter_map(|c| c.strip_prefix("idempotency_key: "))
                    .collect();
                let mut again = Vec::with_capacity(decided.len());
                for (s, _) in decided {
                    let lost_race = s
                        .idempotency
                        .as_ref()
                        .is_some_and(|r| raced.contains(&r.key.as_str()));
                    let own = conflicts.iter().find_map(|c| s.command.conflict(c));
                    if lost_race {
                        let _ = s.reply.send(Err(CommandError::IdempotencyRace));
                    } else if let Some(rejection) = own {
                        let _ = s.reply.send(Err(CommandError::Rejected(rejection)));
                    } else {
                        again.push(s);
                    }
                }
                Attempt::Retry(again)
            }
            // Nothing was written, and one command's data may be the cause: decide each alone
            // from fresh states (the batch's streams are out of the cache).
            Err(e) if e.is_refusal() && decided.len() > 1 => {
                tracing::warn!(
                    error = %e,
                    cause = ?std::error::Error::source(&e),
                    commands = decided.len(),
                    "the database refused a batch; committing its commands one at a time"
                );
                Attempt::Isolate(decided.into_iter().map(|(s, _)| s).collect())
            }
            Err(e) => {
                // The outcome may be unknown (the connection may have broken around the
                // commit): the streams stay out of the cache, to be read afresh.
                fail_all(decided.into_iter().map(|(s, _)| s), &e);
                Attempt::Done
            }
        }
    }
}

impl Writer {
    /// Seals the personal fields of the batch's events, keeping each event's data with its
    /// fields plain for the commands' answers. Keys the writer does not hold are read first; a
    /// subject that has none gets one, stored by the batch's own append.
    async fn seal(&mut self, batch: &mut AppendBatch) -> Result<(), StoreError> {
        self.answers = batch
            .events
            .iter()
            .map(|e| Shown {
                stream: e.stream_id.clone(),
                event_type: e.event_type.clone(),
                data: questlog_domain::personal::plain(e.data.clone()),
            })
            .collect();
        let subjects = marked_subjects(&batch.events);
        if subjects.is_empty() {
            return Ok(());
        }
        if self.keys.len() > MAX_KEYS {
            self.keys = KeyRing::default();
        }
        self.store.load_keys(&mut self.keys, &subjects).await?;
        for event in &mut batch.events {
            let new_keys = self.keys.seal(&mut event.data, &event.stream_id);
            batch.beside.extend(new_keys);
        }
        Ok(())
    }
}

/// An event of the batch being appended as its command's answer shows it: its personal fields
/// plain (the log holds them sealed).
#[derive(Default)]
struct Shown {
    stream: String,
    event_type: String,
    data: serde_json::Value,
}

/// The subjects of the personal fields the events mark.
fn marked_subjects(events: &[NewEvent]) -> Vec<Uuid> {
    let mut subjects: Vec<Uuid> = events
        .iter()
        .filter_map(|e| e.data.as_object())
        .flat_map(|map| map.values())
        .filter_map(|v| questlog_domain::personal::single(v, questlog_domain::personal::MARK))
        .filter_map(|m| m.get("subject")?.as_str()?.parse().ok())
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}

/// What deciding one command of a batch came to.
enum Verdict {
    /// Its events are `count` of the batch's, from index `first`.
    Accepted {
        first: usize,
        count: usize,
        result: Option<serde_json::Value>,
    },
    Refused(Rejection),
}

enum Attempt {
    /// Every command is answered.
    Done,
    /// The append conflicted: decide these again, in order, from fresh states.
    Retry(Vec<Submission>),
    /// The database refused the batch: commit each of these alone, in order.
    Isolate(Vec<Submission>),
}

fn fail_all(submissions: impl IntoIterator<Item = Submission>, error: &StoreError) {
    tracing::error!(error = %error, cause = ?std::error::Error::source(error), "append failed");
    for s in submissions {
        let answer = match error {
            StoreError::Unavailable(_) => CommandError::Unavailable,
            _ => CommandError::Internal,
        };
        let _ = s.reply.send(Err(answer));
    }
}
