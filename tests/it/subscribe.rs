//! Live subscriptions (`GET /v1/subscribe`) spoken to like a client: a real SSE parser over the
//! response body, against the whole application.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::future::join_all;
use futures::{Stream, StreamExt};
use questlog_tests::{position, Player, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// How long a test waits for the next event before failing.
const WAIT: Duration = Duration::from_secs(10);

type Events = Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// One event as a client sees it.
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub kind: String,
    pub id: i64,
    pub data: Value,
}

impl Ev {
    pub(crate) fn topic(&self) -> &str {
        self.data["topic"].as_str().expect("topic")
    }
    pub(crate) fn position(&self) -> i64 {
        self.data["position"].as_i64().expect("position")
    }
}

/// An open subscription.
pub(crate) struct Sub {
    events: Events,
}

impl Sub {
    pub(crate) async fn open(
        app: &TestApp,
        token: &str,
        query: &str,
        last_event_id: Option<i64>,
    ) -> Self {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/subscribe?{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        Self::send(request, query).await
    }

    /// `GET /v1/subscribe?ticket=…` with no other credential, as an `EventSource` would.
    pub(crate) async fn open_ticket(app: &TestApp, ticket: &str) -> Self {
        let query = format!("ticket={ticket}");
        Self::send(
            app.client.get(app.url(&format!("/v1/subscribe?{query}"))),
            &query,
        )
        .await
    }

    /// [`Sub::open`], or `None` when the subscription is refused (as a reconnecting
    /// `EventSource` meets a server that cannot serve it yet).
    pub(crate) async fn try_open(
        app: &TestApp,
        token: &str,
        query: &str,
        last_event_id: Option<i64>,
    ) -> Option<Self> {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/subscribe?{query}")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.ok()?;
        (response.status() == StatusCode::OK).then(|| Self {
            events: Box::pin(response.bytes_stream().eventsource()),
        })
    }

    async fn send(request: reqwest::RequestBuilder, query: &str) -> Self {
        let response = request
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK, "subscribe?{query}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            events: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    /// The next event, failing the test after [`WAIT`].
    pub(crate) async fn next(&mut self) -> Ev {
        self.next_within(WAIT).await
    }

    /// The next event, failing the test after `wait`.
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Ev {
        let event = tokio::time::timeout(wait, self.events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("a well-formed event");
        Ev {
            kind: event.event,
            id: event.id.parse().expect("numeric id"),
            data: serde_json::from_str(&event.data).expect("JSON data"),
        }
    }

    /// The next event, or `None` when the stream ends (or breaks, or sends nothing) within
    /// `wait`.
    pub(crate) async fn try_next_within(&mut self, wait: Duration) -> Option<Ev> {
        let event = tokio::time::timeout(wait, self.events.next())
            .await
            .ok()??
            .ok()?;
        Some(Ev {
            kind: event.event,
            id: event.id.parse().expect("numeric id"),
            data: serde_json::from_str(&event.data).expect("JSON data"),
        })
    }

    /// Events until one satisfies `done`, all of them, failing after [`WAIT`] overall.
    pub(crate) async fn until(&mut self, mut done: impl FnMut(&Ev) -> bool) -> Vec<Ev> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("no event satisfied the condition; saw {seen:#?}"));
            let stop = done(&event);
            seen.push(event);
            if stop {
                return seen;
            }
        }
    }
}

/// A subscription must be refused with `status` and `code`.
pub(crate) async fn refused(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    status: StatusCode,
    code: &str,
) {
    let mut request = app.client.get(app.url(&format!("/v1/subscribe?{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request sent");
    assert_eq!(response.status(), status, "subscribe?{query}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["code"], code, "subscribe?{query}: {body}");
}

/// The `GET /metrics` value of `name`.
async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// Checks a topic's sequence: a snapshot first, then changes with strictly increasing ids, each
/// above the snapshot's position; returns the last data.
pub(crate) fn check_sequence(events: &[Ev]) -> Value {
    let (first, rest) = events.split_first().expect("at least the snapshot");
    assert_eq!(first.kind, "snapshot", "{events:#?}");
    assert_eq!(first.id, first.position());
    let mut last = first.id;
    let mut data = first.data["data"].clone();
    for event in rest {
        assert_eq!(event.kind, "change", "{events:#?}");
        assert_eq!(event.id, event.position());
        assert!(
            event.id > last,
            "ids must strictly increase and never repeat the snapshot: {events:#?}"
        );
        last = event.id;
        data = event.data["data"].clone();
    }
    data
}

fn same_board(a: &Value, b: &Value) -> bool {
    a["entries"] == b["entries"] && a["next"] == b["next"]
}

#[tokio::test]
async fn a_subscriber_gets_a_snapshot_then_every_change_after_it() {
    let app = TestApp::spawn().await;
    app.catalog(2, 150).await;
    let ada = app.player("ada").await;
    let bob = app.player("bob").await;
    let out = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    app.read_at(&ada.token, "/v1/leaderboard", position(&out))
        .await;

    let mut board = Sub::open(
        &app,
        &bob.token,
        "topic=leaderboard&leaderboard_limit=5",
        None,
    )
    .await;
    let mut profile = Sub::open(&app, &bob.token, &format!("topic=player:{}", bob.id), None).await;
    let mut presence = Sub::open(&app, &bob.token, "topic=presence", None).await;

    let snapshot = board.next().await;
    assert_eq!(snapshot.kind, "snapshot");
    assert_eq!(snapshot.topic(), "leaderboard");
    assert!(snapshot.position() >= position(&out));
    let read = app
        .read_at(&bob.token, "/v1/leaderboard?limit=5", snapshot.position())
        .await;
    assert_eq!(snapshot.data["data"]["entries"], read["entries"]);
    assert_eq!(snapshot.data["data"]["entries"][0]["username"], "ada");

    let me = profile.next().await;
    assert_eq!(me.kind, "snapshot");
    assert_eq!(me.topic(), format!("player:{}", bob.id));
    assert_eq!(me.data["data"]["xp"], 0);
    assert_eq!(me.data["data"]["username"], "bob");

    let online = presence.next().await;
    assert_eq!(online.kind, "snapshot");
    assert_eq!(online.topic(), "presence");
    assert_eq!(online.data["data"]["online"], json!([]));

    // Bob overtakes Ada.
    app.ok(&bob.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    let out = app
        .ok(&bob.token, "complete_lab", json!({ "lab_id": "lab-2" }))
        .await;
    let p = position(&out);

    let mut seen = vec![snapshot];
    seen.extend(
        board
            .until(|e| e.data["data"]["entries"][0]["xp"] == 300)
            .await,
    );
    let last = check_sequence(&seen);
    // The board changes with XP only, so its last change may be below the command's position.
    assert!(seen.last().is_some_and(|e| e.position() <= p));
    assert_eq!(last["entries"][0]["username"], "bob");
    assert_eq!(last["entries"][1]["username"], "ada");
    assert_eq!(
        seen.last().map(|e| e.data["op"].clone()),
        Some(json!("upsert"))
    );

    let mut mine = vec![me];
    mine.extend(profile.until(|e| e.data["data"]["xp"] == 300).await);
    let last = check_sequence(&mine);
    assert_eq!(last, app.read_at(&bob.token, "/v1/players/me", p).await);
    let change = mine.last().expect("a change");
    assert_eq!(change.data["key"], bob.id.to_string());
    assert_eq!(change.data["op"], "upsert");
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    app.catalog(12, 10).await;
    let ada = app.player("ada").await;
    let topic = format!("topic=player:{}", ada.id);

    let mut sub = Sub::open(&app, &ada.token, &topic, None).await;
    let mut seen = vec![sub.next().await];
    let out = app
        .ok(&ada.token, "complete_lab", json!({ "lab_id": "lab-1" }))
        .await;
    seen.extend(sub.until(|e| e.position() >= position(&out)).await);
    let last_id = seen.last().expect("events").id;
    drop(sub);

    // A burst while the client is away.
    let mut positions = Vec::new();
    for lab in 2..=8 {
        let out = app
            .ok(
                &ada.token,
                "complete_lab",
                json!({ "lab_id": format!("lab-{lab}") }),
            )
            .await;
        positions.push(position(&out));
    }
    let head = *positions.last().expect("positions");
    let expected = app.read_at(&ada.token, "/v1/players/me", head).await;

    let mut resumed = Sub::open(&app, &ada.token, &topic, Some(last_id)).await;
    let replay = resumed.until(|e| e.position() >= head).await;
    assert!(
        replay.iter().all(|e| e.kind == "change"),
        "a resume within retention replays changes, not a snapshot: {replay:#?}"
    );
    let mut previous = last_id;
    for event in &replay {
        assert!(event.id > previous, "repeated or out of order: {replay:#?}");
        previous = event.id;
    }
    // Each change is one of the burst's commands (several in one projector batch coalesce).
    let log: Vec<i64> = {
        let pool = app.db.pool(1);
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT position FROM events WHERE stream_id = $1 AND position > $2 ORDER BY position",
        )
        .bind(format!("player-{}", ada.id))
        .bind(last_id)
        .fetch_all(&pool)
        .await
        .expect("the player's events");
        pool.close().await;
        rows
    };
    for event in &replay {
        assert!(
            log.contains(&event.id),
            "{} is not an event of the player",
            event.id
        );
    }
    assert_eq!(
        replay.last().map(|e| e.data["data"].clone()),
        Some(expected.clone())
    );
    assert_eq!(expected["xp"], 80);
    assert!(metric(&app, "questlog_live_resumes_total").await >= 1);

    // `last_event_id` in the query works the same, for clients that cannot set headers.
    let response = app
        .client
        .get(app.url(&format!(
            "/v1/subscribe?{topic}&last_event_id={last_id}&access_token={}",
            ada.token
        )))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    let mut by_query = Sub {
        events: Box::pin(response.bytes_stream().eventsource()),
    };
    let again = by_query.until(|e| e.position() >= head).await;
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        replay.iter().map(|e| e.id).collect::<Vec<_>>()
    );

    // From before anything this process holds: a fresh snapshot, never a silent skip.
    let mut old = Sub::open(&app, &ada.token, &topic, Some(1)).await;
    let snapshot = old.next().await;
    assert_eq!(snapshot.kind, "snapshot");
    assert_eq!(snapshot.data["data"], expected);
}

/// SpacetimeDB issue #996: subscriptions opened while commands commit must neither lose a
/// change nor repeat one their snapshot already holds.
#[tokio::test]
async fn subscriptions_racing_commands_end_at_the_read_models_state() {
    const ROUNDS: usize = 50;
    let app = TestApp::spawn().await;
    app.catalog(ROUNDS, 10).await;
    let mut players = Vec::new();
    for i in 0..3 {
        players.push(app.player(&format!("racer{i}")).await);
    }
    let watcher = &players[0];
    for round in 1..=ROUNDS {
        let lab = format!("lab-{round}");
        let commands = join_all(players.iter().enumerate().map(|(i, p)| {
            let app = &app;
            let lab = lab.clone();
            async move {
                // The players take turns, so that the board reorders.
                if (round + i) % 3 != 0 {
                    position(
                        &app.ok(&p.token, "complete_lab", json!({ "lab_id": lab }))
                            .await,
                    )
                } else {
                    0
                }
            }
        }));
        let topics = [
            "topic=leaderboard&leaderboard_limit=2".to_owned(),
            format!("topic=player:{}", players[round % 3].id),
            format!("topic=player:{}", players[(round + 1) % 3].id),
        ];
        let subscriptions = join_all(
            topics
                .iter()
                .map(|t| Sub::open(&app, &watcher.token, t, None)),
        );
        let (positions, subs) = tokio::join!(commands, subscriptions);
        let head = positions.into_iter().max().unwrap_or(0);

        let board = app
            .read_at(&watcher.token, "/v1/leaderboard?limit=2", head)
            .await;
        let mut expected = vec![board];
        for i in [round % 3, (round + 1) % 3] {
            expected.push(
                app.read_at(
                    &watcher.token,
                    &format!("/v1/players/{}", players[i].id),
                    head,
                )
                .await,
            );
        }
        for (k, (mut sub, want)) in subs.into_iter().zip(expected).enumerate() {
            let matches = |data: &Value| {
                if k == 0 {
                    same_board(data, &want)
                } else {
                    *data == want
                }
            };
            let mut state = Value::Null;
            let events = sub
                .until(|e| {
                    state = e.data["data"].clone();
                    matches(&state)
                })
                .await;
            let last = check_sequence(&events);
            assert!(
                matches(&last),
                "round {round}, topic {}: {events:#?}",
                topics[k]
            );
        }
    }
}

/// A client that never reads must cost bounded memory and must not slow anyone else down.
#[tokio::test]
async fn a_subscriber_that_never_reads_is_cut_loose_without_delaying_the_others() {
    let app = TestApp::spawn().await;
    let capacity = metric(&app, "questlog_live_queue_capacity").await;
    assert!(
        capacity > 0 && capacity <= 64,
        "per-subscriber queue bound {capacity}"
    );
    let watcher = app.player("watcher").await;
    // Big windows from the start: 80 players on a 100-entry board.
    join_all((0..80).map(|i| {
        let app = &app;
        async move { app.player(&format!("crowd{i:03}")).await }
    }))
    .await;

    // The slow one: a tiny receive buffer, and never a read.
    let address: std::net::SocketAddr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2048).expect("small buffer");
    let mut slow = socket.connect(address).await.expect("connected");
    slow.write_all(
        format!(
            "GET /v1/subscribe?topic=leaderboard&leaderboard_limit=100&access_token={} HTTP/1.1\r\n\
             Host: questlog\r\nAccept: text/event-stream\r\n\r\n",
            watcher.token
        )
        .as_bytes(),
    )
    .await
    .expect("request written");
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&app, "questlog_live_subscribers").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow subscriber never registered"
        );
        tokio::task::yield_now().await;
    }

    let mut fast = Sub::open(
        &app,
        &watcher.token,
        "topic=leaderboard&leaderboard_limit=100",
        None,
    )
    .await;
    assert_eq!(fast.next().await.kind, "snapshot");

    // Changes with big windows until the slow one's queue overflows; the fast one keeps up
    // with every command as it goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let mut n = 0;
    while metric(&app, "questlog_live_lagged_total").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow subscriber was never cut loose"
        );
        n += 1;
        let p = app.identity().await;
        let out = app
            .ok(
                &p.token,
                "register_player",
                json!({ "username": format!("p{n:03}") }),
            )
            .await;
        let want = position(&out);
        fast.until(|e| e.position() >= want).await;
    }
    // What it took (about 250 changes of 10 KiB here) is the kernel's socket buffers, not ours.
    assert!(n > 0);

    // Once cut loose, the slow one holds at most its queue; the fast one still gets each change
    // at once.
    let p = app.identity().await;
    let out = app
        .ok(&p.token, "register_player", json!({ "username": "last" }))
        .await;
    let want = position(&out);
    let events = fast.until(|e| e.position() >= want).await;
    assert!(events.iter().all(|e| e.kind == "change"));
    drop(slow);
}

#[tokio::test]
async fn a_subscription_is_refused_before_the_stream_opens() {
    let app = TestApp::spawn().await;
    let ada = app.player("ada").await;
    let t = Some(ada.token.as_str());
    refused(
        &app,
        None,
        "topic=leaderboard",
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    refused(
        &app,
        Some("not-a-token"),
        "topic=leaderboard",
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    refused(&app, t, "", StatusCode::BAD_REQUEST, "invalid_topic").await;
    refused(
        &app,
        t,
        "topic=weather",
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;
    refused(
        &app,
        t,
        "topic=player:42",
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;
    refused(
        &app,
        t,
        "topic=leaderboard&topic=nope",
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;
    refused(
        &app,
        t,
        "topic=leaderboard&leaderboard_limit=0",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_limit",
    )
    .await;
    refused(
        &app,
        t,
        "topic=leaderboard&leaderboard_limit=101",
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_limit",
    )
    .await;
    refused(
        &app,
        t,
        "topic=leaderboard&leaderboard_limit=ten",
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;

    // `access_token` in the query, as EventSource clients send it, and `player:me`.
    let response = app
        .client
        .get(app.url(&format!(
            "/v1/subscribe?topic=player:me&topic=presence&access_token={}",
            ada.token
        )))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    let mut sub = Sub {
        events: Box::pin(response.bytes_stream().eventsource()),
    };
    let first = sub.next().await;
    let second = sub.next().await;
    let mut topics = [first.topic().to_owned(), second.topic().to_owned()];
    topics.sort();
    assert_eq!(
        topics,
        [format!("player:{}", ada.id), "presence".to_owned()]
    );
    assert!([&first, &second].iter().all(|e| e.kind == "snapshot"));
}

/// What `GET <path>?as_of=<at>` answers: the body, or `Null` for a 404 (a player not registered
/// by then, as a live topic's `null`).
async fn as_of(app: &TestApp, token: &str, path: &str, at: i64) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, header, body) = app.get(token, &format!("{path}{sep}as_of={at}")).await;
    if status == StatusCode::NOT_FOUND {
        return Value::Null;
    }
    assert_eq!(status, StatusCode::OK, "GET {path} as of {at}: {body}");
    assert_eq!(header, Some(at), "GET {path} as of {at}");
    body
}

/// How a client applies a topic's changes to its copy.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Each change is the whole new value (a profile, the leaderboard's window).
    Whole,
    /// Each change is one row of the list named, keyed by the field named (`op: "delete"`
    /// removes it).
    Rows(&'static str, &'static str),
}

impl Shape {
    /// The client's copy after `event`.
    fn apply(self, copy: &mut Value, event: &Ev) {
        let data = &event.data["data"];
        match self {
            Self::Rows(list, key) if event.kind == "change" => {
                let rows = copy[list].as_array_mut().expect("a list of rows");
                rows.retain(|row| row[key] != event.data["key"]);
                if event.data["op"] == "upsert" {
                    rows.push(data.clone());
                }
            }
            Self::Rows(..) | Self::Whole => *copy = data.clone(),
        }
    }

    /// What a copy and a read must agree on: a whole value exactly, or the same rows.
    fn compared(self, value: &Value) -> Value {
        match self {
            Self::Whole => value.clone(),
            Self::Rows(list, key) => {
                let mut rows = value[list].as_array().cloned().unwrap_or_default();
                rows.sort_by_key(|row| row[key].to_string());
                Value::Array(rows)
            }
        }
    }

    /// Whether a copy holds what a read at a later position answers (but for its `position`).
    fn settled(self, copy: &Value, read: &Value) -> bool {
        let unlabelled = |v: &Value| {
            let mut v = self.compared(v);
            if let Some(fields) = v.as_object_mut() {
                fields.remove("position");
            }
            v
        };
        unlabelled(copy) == unlabelled(read)
    }
}

/// The issue "Trust at the seams": a browser on `player:me` was sent its registration labelled
/// `@6` that already carried the XP and achievement of position 9. Players register, complete
/// labs, keep their streak, come online and chat while others subscribe to them, to the board, to
/// presence and to the channel, and an admin extends the catalog (which a profile reads through
/// a second projection). A client applying every event in order must hold, at each one, exactly
/// what the matching read answers as of the event's position, field by field; and each topic
/// ends at the read models' state.
#[tokio::test]
async fn a_client_folding_live_events_holds_the_read_as_of_each_events_position() {
    const ROUNDS: usize = 12;
    const LABS: usize = 3;
    let app = TestApp::spawn().await;
    let admin = app.catalog(LABS, 40).await;
    let watcher = app.player("watcher").await;
    for round in 0..ROUNDS {
        let racers: Vec<Player> = join_all((0..3).map(|_| app.identity())).await;
        let topics = [
            (
                format!("topic=player:{}", racers[0].id),
                format!("/v1/players/{}", racers[0].id),
                Shape::Whole,
            ),
            (
                format!("topic=player:{}", racers[1].id),
                format!("/v1/players/{}", racers[1].id),
                Shape::Whole,
            ),
            (
                "topic=leaderboard&leaderboard_limit=100".to_owned(),
                "/v1/leaderboard?limit=100".to_owned(),
                Shape::Whole,
            ),
            (
                "topic=presence".to_owned(),
                "/v1/presence".to_owned(),
                Shape::Rows("online", "player_id"),
            ),
            (
                "topic=channel:global".to_owned(),
                "/v1/channels/global/messages".to_owned(),
                Shape::Rows("messages", "message_id"),
            ),
        ];
        let commands = join_all(racers.iter().enumerate().map(|(i, racer)| {
            let app = &app;
            async move {
                let name = format!("r{round}n{i}");
                let mut head = position(
                    &app.ok(&racer.token, "register_player", json!({ "username": name }))
                        .await,
                );
                for lab in 1..=LABS {
                    let lab = format!("lab-{lab}");
                    for (command, body) in [
                        ("complete_lab", json!({ "lab_id": lab })),
                        ("update_streak", json!({})),
                        ("heartbeat", json!({ "current_lab": lab })),
                    ] {
                        head = head.max(position(&app.ok(&racer.token, command, body).await));
                    }
                    if lab == "lab-2" {
                        let sent = app
                            .ok(
                                &racer.token,
                                "send_message",
                                json!({ "channel": "global", "content": format!("{name} here") }),
                            )
                            .await;
                        let id = sent["events"][0]["data"]["message_id"].clone();
                        let edit = json!({ "message_id": id, "content": format!("{name} there") });
                        head =
                            head.max(position(&app.ok(&racer.token, "edit_message", edit).await));
                    }
                }
                head
            }
        }));
        let catalog = async {
            let module = round + 2;
            let define =
                json!({ "module": module, "title": format!("M{module}"), "requires": [1] });
            position(&app.ok(&admin, "define_module", define).await)
        };
        let subscriptions = join_all(
            topics
                .iter()
                .map(|(t, _, _)| Sub::open(&app, &watcher.token, t, None)),
        );
        let (heads, module, subs) = tokio::join!(commands, catalog, subscriptions);
        let head = heads.into_iter().max().unwrap_or(0).max(module);

        for (mut sub, (topic, path, shape)) in subs.into_iter().zip(&topics) {
            let want = app.read_at(&watcher.token, path, head).await;
            let mut copy = Value::Null;
            let events = sub
                .until(|e| {
                    shape.apply(&mut copy, e);
                    shape.settled(&copy, &want)
                })
                .await;
            check_sequence(&events);
            let mut copy = Value::Null;
            for event in &events {
                shape.apply(&mut copy, event);
                let read = as_of(&app, &watcher.token, path, event.position()).await;
                assert_eq!(
                    shape.compared(&copy),
                    shape.compared(&read),
                    "round {round}, {topic}: after the {} labelled {}, the client's copy is not \
                     {path} as of {}: {events:#?}",
                    event.kind,
                    event.position(),
                    event.position(),
                );
            }
        }
    }
}
