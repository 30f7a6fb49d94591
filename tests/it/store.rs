//! The event log itself: append-only at the database level, expected versions, gap-free tailing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use questlog_store::{
    AppendBatch, EventStore, ExpectedVersion, NewEvent, PgEventStore, StoreError,
};
use questlog_tests::TestDb;
use serde_json::json;
use uuid::Uuid;

fn event(stream: &str, n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        stream_id: stream.to_owned(),
        event_type: "test_happened".to_owned(),
        schema_version: 1,
        data: json!({ "n": n }),
        metadata: json!({}),
    }
}

fn batch(expect: Option<(&str, ExpectedVersion)>, events: Vec<NewEvent>) -> AppendBatch {
    AppendBatch {
        expectations: expect.map(|(s, v)| (s.to_owned(), v)).into_iter().collect(),
        events,
        idempotent: vec![],
        ..AppendBatch::default()
    }
}

#[tokio::test]
async fn the_log_refuses_update_delete_and_truncate() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.pool(2));
    store
        .append(batch(None, vec![event("s-1", 1)]))
        .await
        .expect("append");
    for sql in [
        "UPDATE events SET data = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(sql).execute(store.pool()).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.read_all(0, 10).await.expect("read").len(), 1);
}

#[tokio::test]
async fn an_append_with_a_stale_expected_version_is_a_typed_conflict_and_writes_nothing() {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.pool(2));
    let first = store
        .append(batch(
            Some(("s-1", ExpectedVersion::NoStream)),
            vec![event("s-1", 1), event("s-1", 2)],
        ))
        .await
        .expect("first append");
    assert_eq!(first.versions, vec![1, 2]);
    assert_eq!(first.positions, vec![1, 2]);

    let again = store
        .append(batch(
            Some(("s-1", ExpectedVersion::NoStream)),
            vec![event("s-1", 3)],
        ))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let stale = store
        .append(batch(
            Some(("s-1", ExpectedVersion::Exact(1))),
            vec![event("s-1", 3)],
        ))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");

    let exact = store
        .append(batch(
            Some(("s-1", ExpectedVersion::Exact(2))),
            vec![event("s-1", 3)],
        ))
        .await
        .expect("exact version");
    assert_eq!(exact.versions, vec![3]);
    let any = store
        .append(batch(
            Some(("s-1", ExpectedVersion::Any)),
            vec![event("s-1", 4)],
        ))
        .await
        .expect("any version");
    assert_eq!(any.versions, vec![4]);
    assert_eq!(
        store
            .read_streams(&["s-1".to_owned()])
            .await
            .expect("read")
            .len(),
        4
    );
}

/// Positions are handed out before commit; a concurrent writer can commit a higher position first.
/// A reader that tails by position must still see every event exactly once.
#[tokio::test]
async fn a_reader_tailing_the_log_sees_every_event_of_concurrent_writers_exactly_once() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 700;
    let db = TestDb::create().await;
    let store = Arc::new(PgEventStore::new(db.pool(WRITERS as u32 + 2)));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let stream = format!("w-{w}");
            for n in 0..PER_WRITER {
                // Small batches of varying size keep commits interleaving.
                let events = (0..=(n % 3)).map(|k| event(&stream, n * 10 + k)).collect();
                store
                    .append(batch(Some((stream.as_str(), ExpectedVersion::Any)), events))
                    .await
                    .expect("append");
            }
        }));
    }
    let expected_total: usize = (0..PER_WRITER).map(|n| n % 3 + 1).sum::<usize>() * WRITERS;
    assert!(expected_total >= 5_000);

    let writers_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let writers_done = writers_done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(expected_total);
            let mut after = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                // Read the flag before the page: an empty page after the writers finished is the end.
                let finished = writers_done.load(Ordering::SeqCst);
                let page = store.read_all(after, 500).await.expect("read");
                if let Some(last) = page.last() {
                    after = last.position;
                } else if finished {
                    break;
                } else {
                    tokio::task::yield_now().await;
                }
                seen.extend(page.into_iter().map(|e| (e.position, e.event_id)));
            }
            seen
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    writers_done.store(true, Ordering::SeqCst);
    let seen = reader.await.expect("reader");

    let all = store.read_all(0, i64::MAX).await.expect("read all");
    assert_eq!(all.len(), expected_total);
    let unique: HashSet<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique.len(), seen.len(), "the reader saw an event twice");
    let missed: Vec<i64> = all
        .iter()
        .filter(|e| !unique.contains(&e.event_id))
        .map(|e| e.position)
        .collect();
    assert!(
        missed.is_empty(),
        "the reader skipped {} events, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(10)]
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "the reader saw positions out of order"
    );
}

#[tokio::test]
async fn an_append_the_database_refuses_is_a_refusal_and_writes_nothing_but_a_lost_connection_is_not(
) {
    let db = TestDb::create().await;
    let store = PgEventStore::new(db.pool(2));
    store
        .append(batch(None, vec![event("s-1", 1)]))
        .await
        .expect("append");
    // jsonb cannot hold a NUL: Postgres refuses the statement (SQLSTATE 22P05).
    let mut poisoned = event("s-2", 2);
    poisoned.data = json!({ "text": "a\u{0}b" });
    let refused = store
        .append(batch(None, vec![event("s-2", 1), poisoned]))
        .await
        .expect_err("a NUL in jsonb is refused");
    assert!(refused.is_refusal(), "{refused:?}");
    assert!(!matches!(refused, StoreError::Unavailable(_)));
    assert_eq!(store.head().await.expect("head"), 1, "nothing was written");

    let target = questlog_tests::admin_database_url();
    let host = target
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .expect("host:port in the test database URL");
    let proxy = questlog_tests::faults::PgProxy::start(&host).await;
    let away = PgEventStore::new(questlog_store::connect(&proxy.url_for(&db.url), 1).expect("url"));
    proxy.cut();
    let lost = away
        .append(batch(None, vec![event("s-3", 1)]))
        .await
        .expect_err("no database to append to");
    assert!(matches!(lost, StoreError::Unavailable(_)), "{lost:?}");
    assert!(!lost.is_refusal());
}

#[tokio::test]
async fn a_database_migrated_with_a_module_starts_without_it_and_with_it_again() {
    let db = TestDb::create().await;
    let pool = db.pool(1);
    let recorded = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("the applied migrations")
    };
    let applied = recorded(pool.clone()).await;
    let kernel: Vec<i64> = questlog_store::MIGRATOR.iter().map(|m| m.version).collect();
    let academy: Vec<i64> = applied
        .iter()
        .copied()
        .filter(|v| !kernel.contains(v))
        .collect();
    assert!(
        !academy.is_empty(),
        "the academy's migrations ran: {applied:?}"
    );

    // A binary that no longer runs the module: its applied migrations are left alone.
    questlog_store::migrator(&questlog_domain::App::new())
        .await
        .expect("a migrator")
        .run(&pool)
        .await
        .expect("the kernel alone starts on a database its modules migrated");
    // And one that runs it again finds nothing to do.
    questlog_store::migrator(&questlog::modules::app())
        .await
        .expect("a migrator")
        .run(&pool)
        .await
        .expect("the app starts again");
    assert_eq!(recorded(pool.clone()).await, applied);
    pool.close().await;
}

#[tokio::test]
async fn a_modules_migrations_run_in_version_order_with_the_kernels_on_an_empty_database() {
    let migrator = questlog_store::migrator(&questlog::modules::app())
        .await
        .expect("a migrator");
    let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(versions, sorted);
    assert!(versions.len() > questlog_store::MIGRATOR.iter().count());
}
