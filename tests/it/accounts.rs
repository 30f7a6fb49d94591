//! Accounts and sessions over HTTP: registration and upgrade of an anonymous identity, login and
//! its lockout, refresh-token rotation and reuse, logout, logout everywhere, password change,
//! expiry of access tokens, and the limit on anonymous identities per address. Time is simulated
//! where it matters: the app's clock is moved by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use questlog_command_api::Clock;
use questlog_tests::{event_count, store_args, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A clock a test moves by hand.
#[derive(Clone)]
struct Manual(Arc<AtomicI64>);

impl Manual {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(Utc::now().timestamp_micros())))
    }
    fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).expect("small");
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
    fn clock(&self) -> Clock {
        let at = self.0.clone();
        Clock::new(move || {
            DateTime::from_timestamp_micros(at.load(Ordering::SeqCst)).expect("in range")
        })
    }
}

async fn spawn_with_clock(clock: &Manual) -> TestApp {
    let db = TestDb::create().await;
    let store = store_args(&db);
    let hooks = questlog::app::Hooks {
        clock: Some(clock.clock()),
        ..Default::default()
    };
    TestApp::spawn_custom(db, store, hooks).await
}

/// An answer: status, `Retry-After`, JSON body (`null` when empty).
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut request = app.client.post(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    Answer {
        status,
        retry_after,
        body,
    }
}

async fn register(app: &TestApp, token: Option<&str>, body: Value) -> Answer {
    post(app, "/v1/accounts/register", token, Some(body)).await
}

async fn login(app: &TestApp, email: &str, password: &str) -> Answer {
    post(
        app,
        "/v1/accounts/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Answer {
    post(
        app,
        "/v1/identity/refresh",
        None,
        Some(json!({ "refresh_token": refresh_token })),
    )
    .await
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {body}"))
}

/// A session as the client keeps it.
struct Session {
    identity: String,
    access: String,
    refresh: String,
}

fn session(answer: &Answer) -> Session {
    Session {
        identity: text(&answer.body, "identity").to_owned(),
        access: text(&answer.body, "access_token").to_owned(),
        refresh: text(&answer.body, "refresh_token").to_owned(),
    }
}

const PASSWORD: &str = "a long and unusual passphrase";

async fn account(app: &TestApp, email: &str) -> Session {
    let answer = register(app, None, json!({ "email": email, "password": PASSWORD })).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    session(&answer)
}

async fn command_status(
    app: &TestApp,
    token: &str,
    name: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.command(token, name, &body).await
}

#[tokio::test]
async fn a_registered_account_plays_with_its_access_token_and_its_email_is_taken() {
    let app = TestApp::spawn().await;
    let answer = register(
        &app,
        None,
        json!({ "email": "Ada@Example.org", "password": PASSWORD, "username": "ada" }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["expires_in"], 900);
    let ada = session(&answer);
    let (status, out) = command_status(
        &app,
        &ada.access,
        "register_player",
        json!({ "username": "ada" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["events"][0]["data"]["player_id"], ada.identity);

    let before = event_count(&app.db).await;
    for (body, status, code) in [
        (
            json!({ "email": "ada@EXAMPLE.org", "password": PASSWORD }),
            StatusCode::CONFLICT,
            "email_taken",
        ),
        (
            json!({ "email": "bob@example.org", "password": PASSWORD, "username": "ADA" }),
            StatusCode::CONFLICT,
            "username_taken",
        ),
        (
            json!({ "email": "not an email", "password": PASSWORD }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({ "email": "bob@example", "password": PASSWORD }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({ "email": "bob\u{0}@example.org", "password": PASSWORD }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({ "email": "bob@example.org", "password": "short1!" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({ "email": "bob@example.org", "password": "Password123" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({ "email": "bob@example.org", "password": "correct\u{0}horse battery" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password",
        ),
        (
            json!({ "email": "bob@example.org", "password": PASSWORD, "username": "b\u{0}b" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_username",
        ),
        (
            json!({ "email": "bob@example.org", "password": PASSWORD, "extra": 1 }),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let answer = register(&app, None, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(answer.body["code"], code, "{body}: {}", answer.body);
    }
    assert_eq!(
        event_count(&app.db).await,
        before,
        "a refused registration appends nothing"
    );
    let answer = login(&app, "ADA@example.ORG", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["identity"], ada.identity);
}

#[tokio::test]
async fn an_anonymous_identity_upgrades_to_an_account_and_keeps_its_progress() {
    let app = TestApp::spawn().await;
    app.catalog(2, 100).await;
    let anonymous = app.player("grace").await;
    let at = app.complete_labs(&anonymous.token, [1]).await;
    let answer = register(
        &app,
        Some(&anonymous.token),
        json!({ "email": "grace@example.org", "password": PASSWORD }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let grace = session(&answer);
    assert_eq!(grace.identity, anonymous.id.to_string());
    let profile = app.read_at(&grace.access, "/v1/players/me", at).await;
    assert_eq!(profile["xp"], 100);
    assert_eq!(profile["username"], "grace");
    // The account logs in to the same player later, from anywhere.
    let again = session(&login(&app, "grace@example.org", PASSWORD).await);
    assert_eq!(again.identity, grace.identity);
    let at = app.complete_labs(&again.access, [2]).await;
    let profile = app.read_at(&again.access, "/v1/players/me", at).await;
    assert_eq!(profile["xp"], 200);
    // Upgraded once only.
    let answer = register(
        &app,
        Some(&anonymous.token),
        json!({ "email": "grace2@example.org", "password": PASSWORD }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.body["code"], "already_registered");
    // The registration is a fact in the log.
    let (_, _, stream) = app
        .get(
            &app.admin_token(),
            &format!("/v1/admin/streams/account-{}", grace.identity),
        )
        .await;
    assert_eq!(
        stream["events"][0]["type"], "account_registered",
        "{stream}"
    );
    assert_eq!(stream["events"][0]["data"]["upgraded"], true);
    assert!(
        !stream.to_string().contains("grace@example.org"),
        "the email is not in the log: {stream}"
    );
    // A forged or expired token does not silently make a new identity.
    let expired = app.keys.issue_for(
        uuid::Uuid::new_v4(),
        questlog_academy::Role::Player,
        chrono::Duration::seconds(-5),
    );
    let answer = register(
        &app,
        Some(&expired),
        json!({ "email": "late@example.org", "password": PASSWORD }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    account(&app, "ada@example.org").await;
    let wrong = login(&app, "ada@example.org", "not the passphrase").await;
    let unknown = login(&app, "nobody@example.org", PASSWORD).await;
    let malformed = login(&app, "nobody", PASSWORD).await;
    for answer in [&wrong, &unknown, &malformed] {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert_eq!(answer.body["code"], "invalid_credentials");
    }
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
}

#[tokio::test]
async fn five_failures_lock_an_email_for_15_minutes_known_or_not() {
    let clock = Manual::new();
    let app = spawn_with_clock(&clock).await;
    account(&app, "ada@example.org").await;
    for email in ["ada@example.org", "nobody@example.org"] {
        for _ in 0..5 {
            let answer = login(&app, email, "a wrong passphrase").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
            clock.advance(Duration::from_secs(60));
        }
        // Locked: even the right password is refused, with how long to wait.
        let answer = login(&app, email, PASSWORD).await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            answer.body
        );
        assert_eq!(answer.body["code"], "locked");
        // The first failure was 5 minutes ago: 10 minutes to go.
        assert_eq!(answer.retry_after, Some(600), "{email}");
    }
    // Another email is not locked.
    let other = account(&app, "bob@example.org").await;
    assert!(!other.access.is_empty());
    // Ada's first failure was 10 minutes ago now: 5 minutes to go.
    let answer = login(&app, "ada@example.org", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.retry_after, Some(300));
    clock.advance(Duration::from_secs(299));
    assert_eq!(
        login(&app, "ada@example.org", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.advance(Duration::from_secs(1));
    // The oldest failure left the window: one more try is allowed, and it succeeds.
    let answer = login(&app, "ada@example.org", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // A success forgives the failures: four more wrong ones do not lock.
    for _ in 0..4 {
        assert_eq!(
            login(&app, "ada@example.org", "wrong again").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app, "ada@example.org", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let app = TestApp::spawn().await;
    let first = account(&app, "ada@example.org").await;
    let other = session(&login(&app, "ada@example.org", PASSWORD).await);
    let answer = refresh(&app, &first.refresh).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let second = session(&answer);
    assert_eq!(second.identity, first.identity);
    assert_ne!(second.refresh, first.refresh);
    let (status, out) = command_status(
        &app,
        &second.access,
        "register_player",
        json!({ "username": "ada" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    // The rotated token again: someone holds a copy. The session ends…
    let answer = refresh(&app, &first.refresh).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["code"], "refresh_reused");
    // …so its newest token is refused too,
    let answer = refresh(&app, &second.refresh).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["code"], "unauthorized");
    // and the identity's other session is untouched.
    assert_eq!(refresh(&app, &other.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_are_refused_where_the_other_kind_belongs_and_forgeries_everywhere() {
    let app = TestApp::spawn().await;
    let ada = account(&app, "ada@example.org").await;
    let before = event_count(&app.db).await;
    // A refresh token is not an access token.
    let (status, body) = command_status(
        &app,
        &ada.refresh,
        "register_player",
        json!({ "username": "ada" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = app.get(&ada.refresh, "/v1/players/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An access token is not a refresh token, in the body or as a Bearer token.
    assert_eq!(
        refresh(&app, &ada.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = post(&app, "/v1/identity/refresh", Some(&ada.access), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    // Forged: signed with another secret, or tampered with.
    let forged = questlog_web::TokenKeys::new(
        b"someone else's secret of 32 bytes or more",
        chrono::Duration::days(1),
    )
    .issue_session(
        ada.identity.parse().expect("uuid"),
        questlog_academy::Role::Player,
        uuid::Uuid::new_v4(),
        1,
    );
    for token in [forged.refresh_token.as_str(), "abc.def.ghi", ""] {
        let answer = refresh(&app, token).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{token}: {}",
            answer.body
        );
    }
    let (status, _) = command_status(
        &app,
        &forged.access_token,
        "register_player",
        json!({ "username": "mallory" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(event_count(&app.db).await, before, "nothing was appended");
    // The genuine refresh token still works.
    assert_eq!(refresh(&app, &ada.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn access_tokens_expire_after_15_minutes_and_refresh_tokens_after_30_days() {
    let clock = Manual::new();
    let app = spawn_with_clock(&clock).await;
    let ada = account(&app, "ada@example.org").await;
    clock.advance(Duration::from_secs(14 * 60));
    let (status, _, _) = app.get(&ada.access, "/v1/labs").await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(Duration::from_secs(61));
    let (status, body) = command_status(
        &app,
        &ada.access,
        "register_player",
        json!({ "username": "ada" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = app.get(&ada.access, "/v1/labs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The refresh token renews it.
    let renewed = session(&refresh(&app, &ada.refresh).await);
    let (status, body) = command_status(
        &app,
        &renewed.access,
        "register_player",
        json!({ "username": "ada" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A refresh token unused for 30 days has expired.
    clock.advance(Duration::from_secs(30 * 24 * 3600 + 1));
    let answer = refresh(&app, &renewed.refresh).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.body["code"], "unauthorized");
}

/// The sessions `auth_sessions` holds for `identity`, by when they were opened.
async fn sessions_of(app: &TestApp, identity: &str) -> Vec<uuid::Uuid> {
    let pool = app.db.pool(1);
    let ids = sqlx::query_scalar(
        "SELECT session_id FROM auth_sessions WHERE identity = $1::uuid ORDER BY created_at, session_id",
    )
    .bind(identity)
    .fetch_all(&pool)
    .await
    .expect("the sessions");
    pool.close().await;
    ids
}

#[tokio::test]
async fn sessions_past_their_refresh_expiry_or_long_ended_are_pruned_and_live_ones_still_refresh() {
    let clock = Manual::new();
    let db = TestDb::create().await;
    let store = store_args(&db);
    let hooks = questlog::app::Hooks {
        clock: Some(clock.clock()),
        job_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let app = TestApp::spawn_custom(db, store, hooks).await;
    // Three sessions: one kept alive by refreshing, one left to expire, one logged out.
    let kept = account(&app, "ada@example.org").await;
    let left = session(&login(&app, "ada@example.org", PASSWORD).await);
    let ended = session(&login(&app, "ada@example.org", PASSWORD).await);
    let answer = post(&app, "/v1/accounts/logout", Some(&ended.access), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert_eq!(sessions_of(&app, &kept.identity).await.len(), 3);

    // 20 days on, the first is refreshed: its refresh token now runs 30 days from here.
    clock.advance(Duration::from_secs(20 * 24 * 3600));
    let kept = session(&refresh(&app, &kept.refresh).await);
    // 11 more days: the second's refresh token has expired, the third ended a month ago.
    clock.advance(Duration::from_secs(11 * 24 * 3600));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left_now = sessions_of(&app, &kept.identity).await;
        if left_now.len() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired and ended sessions are still there: {left_now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The live one stays, and still refreshes; the pruned ones are refused as before.
    let answer = refresh(&app, &kept.refresh).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let again = session(&answer);
    let (status, _, _) = app.get(&again.access, "/v1/labs").await;
    assert_eq!(status, StatusCode::OK);
    for gone in [&left, &ended] {
        let answer = refresh(&app, &gone.refresh).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert_eq!(answer.body["code"], "unauthorized");
    }
    assert_eq!(sessions_of(&app, &kept.identity).await.len(), 1);
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_all_every_one() {
    let app = TestApp::spawn().await;
    let first = account(&app, "ada@example.org").await;
    let second = session(&login(&app, "ada@example.org", PASSWORD).await);
    let third = session(&login(&app, "ada@example.org", PASSWORD).await);
    let answer = post(&app, "/v1/accounts/logout", Some(&first.access), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert_eq!(
        refresh(&app, &first.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    let second = session(&refresh(&app, &second.refresh).await);
    let answer = post(&app, "/v1/accounts/logout_all", Some(&second.access), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["ended"], 2);
    assert_eq!(
        refresh(&app, &second.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &third.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Logging in again opens a new session.
    let again = session(&login(&app, "ada@example.org", PASSWORD).await);
    assert_eq!(refresh(&app, &again.refresh).await.status, StatusCode::OK);
    // An identity's own token belongs to no session.
    let anonymous = app.identity().await;
    let answer = post(&app, "/v1/accounts/logout", Some(&anonymous.token), None).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.body["code"], "no_session");
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_the_old_password() {
    let app = TestApp::spawn().await;
    let mine = account(&app, "ada@example.org").await;
    let other = session(&login(&app, "ada@example.org", PASSWORD).await);
    let change = |current: &str, new: &str| json!({ "current": current, "new": new });
    let before = event_count(&app.db).await;
    for (body, status, code) in [
        (
            change("wrong passphrase", "a brand new passphrase"),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            change(PASSWORD, "short"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            change(PASSWORD, "iloveyou2024"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
    ] {
        let answer = post(
            &app,
            "/v1/accounts/password",
            Some(&mine.access),
            Some(body),
        )
        .await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["code"], code);
    }
    assert_eq!(event_count(&app.db).await, before);
    let answer = post(
        &app,
        "/v1/accounts/password",
        Some(&mine.access),
        Some(change(PASSWORD, "a brand new passphrase")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["ended"], 1);
    assert_eq!(event_count(&app.db).await, before + 1, "password_changed");
    assert_eq!(
        refresh(&app, &other.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refresh(&app, &mine.refresh).await.status, StatusCode::OK);
    assert_eq!(
        login(&app, "ada@example.org", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "ada@example.org", "a brand new passphrase")
            .await
            .status,
        StatusCode::OK
    );
    // An identity without an account has no password to change.
    let anonymous = app.identity().await;
    let answer = post(
        &app,
        "/v1/accounts/password",
        Some(&anonymous.token),
        Some(change(PASSWORD, "a brand new passphrase")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["code"], "no_account");
}

async fn create_identity(app: &TestApp, forwarded: Option<&str>) -> Answer {
    let mut request = app.client.post(app.url("/v1/identity"));
    if let Some(address) = forwarded {
        request = request.header("x-forwarded-for", address);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Answer {
        status,
        retry_after,
        body: response.json().await.expect("JSON"),
    }
}

async fn spawn_limited(trusted_header: Option<&str>) -> TestApp {
    let db = TestDb::create().await;
    let store = store_args(&db);
    let mut serve = TestApp::serve_args();
    serve.sessions.identity_per_minute = std::num::NonZeroU32::new(1).expect("positive");
    serve.sessions.identity_burst = std::num::NonZeroU32::new(3).expect("positive");
    serve.sessions.trusted_proxy_header = trusted_header.map(str::to_owned);
    TestApp::spawn_serving(db, store, questlog::app::Hooks::default(), serve).await
}

#[tokio::test]
async fn anonymous_identities_are_limited_per_client_address() {
    let app = spawn_limited(None).await;
    for _ in 0..3 {
        // A header no proxy was configured for is not believed: every one counts for 127.0.0.1.
        let spoofed = format!("198.51.100.{}", rand::random::<u8>());
        assert_eq!(
            create_identity(&app, Some(&spoofed)).await.status,
            StatusCode::CREATED
        );
    }
    let answer = create_identity(&app, Some("203.0.113.99")).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["code"], "rate_limited");
    let wait = answer.retry_after.expect("Retry-After");
    assert!((1..=60).contains(&wait), "{wait}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_counts_the_address_it_forwards() {
    let app = spawn_limited(Some("X-Forwarded-For")).await;
    for _ in 0..3 {
        // The client's own entries come first; the proxy appends the address it saw.
        assert_eq!(
            create_identity(&app, Some("10.9.9.9, 198.51.100.7"))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let answer = create_identity(&app, Some("10.1.1.1, 198.51.100.7")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.body["code"], "rate_limited");
    assert_eq!(
        create_identity(&app, Some("198.51.100.8")).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn an_export_holds_everything_about_the_caller_and_nothing_about_others() {
    let app = TestApp::spawn().await;
    app.catalog(1, 100).await;
    let anonymous = app.player("ada").await;
    app.complete_labs(&anonymous.token, [1]).await;
    let ada = session(
        &register(
            &app,
            Some(&anonymous.token),
            json!({ "email": "ada@example.org", "password": PASSWORD, "username": "ada_l" }),
        )
        .await,
    );
    let bob = app.player("bob").await;
    let mine = app
        .ok(
            &ada.access,
            "send_message",
            json!({ "channel": "global", "content": "hello from ada" }),
        )
        .await;
    let to_ada = app
        .ok(
            &bob.token,
            "send_message",
            json!({ "channel": format!("dm:{}", ada.identity), "content": "psst, ada" }),
        )
        .await;
    let last = app
        .ok(
            &bob.token,
            "send_message",
            json!({ "channel": "global", "content": "bob's own words" }),
        )
        .await;
    app.caught_up(questlog_tests::position(&last)).await;
    let (status, position, export) = app.get(&ada.access, "/v1/players/me/export").await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert!(position.is_some_and(|p| p >= questlog_tests::position(&last)));
    assert_eq!(export["player_id"], ada.identity);
    assert_eq!(export["account"]["email"], "ada@example.org");
    assert_eq!(export["account"]["username"], "ada_l");
    let types: Vec<&str> = export["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    for wanted in [
        "player_registered",
        "lab_completed",
        "account_registered",
        "message_sent",
    ] {
        assert!(types.contains(&wanted), "{wanted} in {types:?}");
    }
    let text = export.to_string();
    assert!(text.contains("hello from ada"), "its own message");
    assert!(text.contains("psst, ada"), "a direct message to it");
    assert!(
        !text.contains("bob's own words"),
        "another player's message"
    );
    assert!(!text.contains("argon2"), "never the password hash");
    assert_eq!(export["read_models"]["rm_players"][0]["username"], "ada");
    assert!(
        export["read_models"]["rm_messages"]
            .as_array()
            .expect("messages")
            .len()
            >= 2
    );
    assert_eq!(export["sessions"].as_array().expect("sessions").len(), 1);
    assert!(
        export["beside"].get("accounts").is_none(),
        "covered by the module's own part"
    );
    let _ = (mine, to_ada);
    // An export reads the whole log: twice a minute at most.
    let (status, _, _) = app.get(&ada.access, "/v1/players/me/export").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = app.get(&ada.access, "/v1/players/me/export").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    // Another identity's export is its own.
    let (status, _, theirs) = app.get(&bob.token, "/v1/players/me/export").await;
    assert_eq!(status, StatusCode::OK);
    assert!(theirs["account"].is_null());
    assert!(!theirs.to_string().contains("hello from ada"));
    let (status, _, _) = app.get("", "/v1/players/me/export").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
