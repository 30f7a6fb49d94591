//! The query API alone, for tests of its reads: served on port 0 against a database of its own,
//! with read models written directly with SQL and announcements published by hand, spoken to over
//! HTTP like a client would. (The whole application is [`crate::TestApp`].)

use std::time::Duration;

use questlog_academy::rules::level_for_xp;
use questlog_academy::Role;
use questlog_bus::{ChangeAnnouncement, Names};
use questlog_query_api::{router, Positions, QueryState};
use questlog_web::problem::route_not_found;
use questlog_web::TokenKeys;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{nats_url, TestDb, TEST_SECRET};

/// An answer: status, headers and the JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `Questlog-Position` header.
    pub fn position(&self) -> i64 {
        self.headers
            .get("questlog-position")
            .expect("a Questlog-Position header")
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("an integer")
    }

    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
    }
}

/// The query API served on port 0 against its own database and NATS prefix.
pub struct TestApi {
    pub address: String,
    pub client: reqwest::Client,
    pub keys: TokenKeys,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub names: Names,
    pub positions: Positions,
    shutdown: CancellationToken,
    // Declared last: dropped after the server is told to stop.
    _db: TestDb,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApi {
    pub async fn spawn() -> Self {
        let db = TestDb::create().await;
        let pool = db.pool(4);
        let nats = questlog_bus::connect(&nats_url())
            .await
            .expect("NATS reachable");
        let names = Names::new(&db.nats_prefix);
        let shutdown = CancellationToken::new();
        let positions =
            Positions::spawn_listener(nats.clone(), names.clone(), pool.clone(), shutdown.clone());
        tokio::time::timeout(Duration::from_secs(10), positions.listening())
            .await
            .expect("the listener subscribes");
        let keys = TokenKeys::new(TEST_SECRET.as_bytes(), chrono::Duration::days(1));
        // The query API of the binary's own modules.
        let state = QueryState::new(
            pool.clone(),
            keys.clone(),
            positions.clone(),
            &questlog::modules::app(),
        );
        let address = serve(state, shutdown.clone()).await;
        Self {
            address,
            client: reqwest::Client::new(),
            keys,
            pool,
            nats,
            names,
            positions,
            shutdown,
            _db: db,
        }
    }

    pub fn player_token(&self, id: Uuid) -> String {
        self.keys.issue(id, Role::Player)
    }

    pub fn admin_token(&self) -> String {
        self.keys.issue(Uuid::new_v4(), Role::Admin)
    }

    /// A token of some player, for reads that do not care who asks.
    pub fn any_token(&self) -> String {
        self.player_token(Uuid::new_v4())
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        get(&self.client, &format!("{}{path}", self.address), token).await
    }

    pub async fn set_checkpoint(&self, projection: &str, position: i64) {
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, $2)
             ON CONFLICT (projection) DO UPDATE SET position = $2, updated_at = clock_timestamp()",
        )
        .bind(projection)
        .bind(position)
        .execute(&self.pool)
        .await
        .expect("checkpoint written");
    }

    /// Publishes what a projector announces after a commit.
    pub async fn announce(&self, projection: &str, position: i64) {
        let announcement = ChangeAnnouncement {
            projection: projection.to_owned(),
            position,
            previous: None,
            log: None,
            changes: Vec::new(),
        };
        self.nats
            .publish(
                self.names.changes_subject(projection),
                serde_json::to_vec(&announcement).expect("JSON").into(),
            )
            .await
            .expect("published");
        self.nats.flush().await.expect("flushed");
    }

    /// A player row with the given leaderboard key and plain defaults for the rest.
    pub async fn insert_player(&self, id: Uuid, username: &str, xp: i64, xp_position: i64) {
        sqlx::query(
            "INSERT INTO rm_players (player_id, username, xp, level, xp_position, streak,
                 longest_streak, timezone, completed_labs, completed_modules, achievements,
                 updated_position)
             VALUES ($1, $2, $3, $4, $5, 0, 0, 'UTC', '{}', '{}', '{}', $5)",
        )
        .bind(id)
        .bind(username)
        .bind(xp)
        .bind(i32::try_from(level_for_xp(u64::try_from(xp).expect("xp >= 0"))).expect("level"))
        .bind(xp_position)
        .execute(&self.pool)
        .await
        .expect("player inserted");
    }

    /// Waits (with a deadline) until `n` reads are waiting for a position.
    pub async fn until_waiting(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.positions.waiting() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the read starts waiting");
    }
}

/// Serves `state` on 127.0.0.1:0 until `shutdown`; returns its base URL.
pub async fn serve(state: QueryState, shutdown: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let app = router(state).fallback(route_not_found);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    address
}

pub async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> Answer {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("a JSON body");
    Answer {
        status,
        headers,
        body,
    }
}
