//! The log's history workloads on a generated log: rebuilding every read model from it, and the
//! leaderboard as of past positions.
//!
//! The log is written straight into a scratch database (players registering, then completing
//! labs round after round, so the leaderboard keeps changing), as `questlog import` would bring a
//! real one. Every projection is rebuilt from it by `questlog replay --to`'s code, twice: page by
//! page by the projections' `apply` (the live projector's path) and folded in memory with bulk
//! writes (the path `replay` and `verify` take); `verify` then checks the second against the
//! first. The baseline is a streaming scan of the same log decoding every payload into a fold
//! that does nothing. Then a query API of its own serves the leaderboard live and as of random
//! past positions.

use questlog_academy::DomainEvent as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use questlog::config::{ServeArgs, StoreArgs};
use questlog::Application;
use questlog_academy::{Event, Role};
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use questlog_projector::replay::Fold;

use crate::report::Row;
use crate::setup::{drop_database, scratch_database, SECRET};
use crate::workloads::{histogram, micros};
use crate::Args;

/// Lab completions per player.
const ROUNDS: i64 = 98;

pub async fn history_rows(args: &Args, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let events = if args.quick {
        20_000
    } else {
        args.history_events
    };
    let (name, url) = scratch_database(&args.database_url).await?;
    let outcome = measure(args, &url, events, rows).await;
    drop_database(&args.database_url, &name).await;
    outcome
}

async fn measure(args: &Args, url: &str, events: i64, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    eprintln!("generating a log of {events} events");
    let head = generate(&mut conn, events).await?;

    eprintln!("raw scan of the log, decoding every payload");
    let started = Instant::now();
    let scanned = scan(&mut conn).await?;
    let scan_rate = rate(scanned, started.elapsed());
    eprintln!("  {scan_rate:.0} events/s");

    let app = questlog::modules::app();
    let all = questlog_projector::Projections::of(&app);
    let chosen: Vec<&dyn questlog_projector::Projection> = all.iter().map(AsRef::as_ref).collect();
    let domain = app.domain();
    // The live projector's path (each projection's `apply`, page by page), then the bulk one.
    for (fold, schema, what) in [
        (Fold::Pages, "bench_pages", "page by page, by `apply`"),
        (
            Fold::Bulk,
            "bench_rebuild",
            "folded in memory, written by COPY",
        ),
    ] {
        eprintln!("rebuilding every projection from the log, {what}");
        let started = Instant::now();
        // As `questlog replay` runs: the log read on a connection of its own.
        questlog_projector::replay::build_as_of(
            &mut conn,
            Some(PgConnection::connect(url).await?),
            &domain,
            schema,
            &chosen,
            head,
            fold,
            &mut |_, _| {},
        )
        .await?;
        let rebuild_rate = rate(u64::try_from(head).unwrap_or(0), started.elapsed());
        eprintln!("  {rebuild_rate:.0} events/s");
        let row = Row::new(
            &format!("rebuild of every projection, {what} ({head} events)"),
            rebuild_rate,
            "streaming scan decoding every payload",
            scan_rate,
            "events/s",
        );
        rows.push(if fold == Fold::Bulk {
            row.at_least(0.7)
        } else {
            row
        });
    }

    // The read models rebuilt by the live projector's path go live, their checkpoints at the
    // head; `verify` then checks the bulk fold against them.
    for table in chosen.iter().flat_map(|p| p.tables()) {
        sqlx::query(&format!(
            "INSERT INTO public.{table} SELECT * FROM bench_pages.{table}"
        ))
        .execute(&mut conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, position) SELECT unnest($1::text[]), $2",
    )
    .bind(chosen.iter().map(|p| p.name().as_str()).collect::<Vec<_>>())
    .bind(head)
    .execute(&mut conn)
    .await?;
    sqlx::query("DROP SCHEMA bench_rebuild, bench_pages CASCADE")
        .execute(&mut conn)
        .await?;
    sqlx::query("ANALYZE").execute(&mut conn).await?;

    eprintln!("verifying every projection against the log");
    let started = Instant::now();
    let checks = questlog_projector::verify::verify(
        &mut conn,
        Some(PgConnection::connect(url).await?),
        &domain,
        &all,
        Fold::Bulk,
        &mut |_, _| {},
    )
    .await?;
    let verify_rate = rate(u64::try_from(head).unwrap_or(0), started.elapsed());
    eprintln!("  {verify_rate:.0} events/s");
    anyhow::ensure!(
        !checks
            .iter()
            .any(questlog_projector::verify::TableCheck::drifted),
        "the bulk rebuild differs from the page-by-page one: {checks:?}"
    );
    rows.push(
        Row::new(
            &format!("verify of every projection ({head} events)"),
            verify_rate,
            "streaming scan decoding every payload",
            scan_rate,
            "events/s",
        )
        .at_least(0.7),
    );
    conn.close().await?;

    let (live, as_of) = leaderboard_reads(args, url, head).await?;
    rows.push(
        Row::new(
            &format!("as-of leaderboard read p99 ({head}-event log)"),
            live_ms(&as_of),
            "live leaderboard read p99",
            live_ms(&live),
            "ms",
        )
        .at_most(5.0),
    );
    Ok(())
}

fn live_ms(h: &hdrhistogram::Histogram<u64>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let v = h.value_at_quantile(0.99) as f64;
    v / 1000.0
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n / elapsed.as_secs_f64()
}

/// Writes about `events` events: every player registers, then each round every player completes
/// one more lab (its metadata naming the player, as a command's does). Returns the log's head.
pub async fn generate(conn: &mut PgConnection, events: i64) -> anyhow::Result<i64> {
    let players = (events / (ROUNDS + 2)).max(1);
    sqlx::query(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
         SELECT gen_random_uuid(), s.stream, 1, s.kind, 1, s.data, '{}'::jsonb,
                timestamptz '2026-01-01' + (row_number() OVER (ORDER BY i, s.ord)) * interval '1 ms'
           FROM generate_series(1, $1::bigint) AS i,
                LATERAL (SELECT md5('p' || i)::uuid AS id) p,
                LATERAL (VALUES
                    (1, 'username-p' || i, 'username_claimed', jsonb_build_object('player_id', p.id, 'username', 'p' || i)),
                    (2, 'player-' || p.id, 'player_registered', jsonb_build_object('player_id', p.id, 'username', 'p' || i))
                ) AS s(ord, stream, kind, data)
          ORDER BY i, s.ord",
    )
    .bind(players)
    .execute(&mut *conn)
    .await
    .context("generating registrations")?;
    // A round at a time, so that memory stays small and the leaderboard changes all along.
    for round in 1..=ROUNDS {
        sqlx::query(
            "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
             SELECT gen_random_uuid(), 'player-' || md5('p' || i)::uuid, 1 + $2, 'lab_completed', 1,
                    jsonb_build_object('lab_id', 'lab-' || $2, 'module', 1, 'xp', 10 + (i * 7 + $2 * 13) % 90),
                    jsonb_build_object('command', 'complete_lab', 'role', 'player', 'identity', md5('p' || i)::uuid),
                    timestamptz '2026-01-01' + (($2 + 1) * $1 + i) * interval '1 ms'
               FROM generate_series(1, $1::bigint) AS i
              ORDER BY i",
        )
        .bind(players)
        .bind(round)
        .execute(&mut *conn)
        .await
        .context("generating completions")?;
    }
    sqlx::query("ANALYZE events").execute(&mut *conn).await?;
    Ok(sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(&mut *conn)
        .await?)
}

/// The baseline: the whole log read in pages, every payload decoded, folded into nothing.
async fn scan(conn: &mut PgConnection) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut seen = 0_u64;
    let mut checksum = 0_u64;
    loop {
        let page = questlog_store::read_after(&mut *conn, after, 2000).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for recorded in &page {
            let event = Event::from_parts(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.data,
            )?;
            // A fold that does nothing, kept so the decoding is not optimised away.
            checksum = checksum.wrapping_add(event.event_type().len() as u64);
            seen += 1;
        }
        after = last;
    }
    std::hint::black_box(checksum);
    Ok(seen)
}

/// The live leaderboard's top 10, and the top 10 as of random past positions: their latencies.
async fn leaderboard_reads(
    args: &Args,
    url: &str,
    head: i64,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> {
    let id = Uuid::new_v4().simple().to_string();
    let store = StoreArgs {
        database_url: url.to_owned(),
        nats_url: args.nats_url.clone(),
        nats_prefix: format!("benchhist{id}"),
        token_secret: Some(SECRET.to_owned()),
        token_ttl_days: 1,
    };
    let serve = ServeArgs {
        service: Some(questlog::config::Service::QueryApi),
        ..ServeArgs::on("127.0.0.1:0".parse()?)
    };
    let shutdown = CancellationToken::new();
    let app = Application::build(&store, &serve, shutdown.clone()).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let task = tokio::spawn(app.run());
    let token = questlog_web::TokenKeys::new(SECRET.as_bytes(), chrono::Duration::days(1))
        .issue(Uuid::new_v4(), Role::Player);
    let client = reqwest::Client::new();
    let reads = if args.quick { 50 } else { 1000 };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut live = histogram();
    let mut as_of = histogram();
    eprintln!("leaderboard reads: {reads} live, {reads} as of random past positions");
    for _ in 0..reads {
        let at = rng.gen_range(1..=head);
        for (path, h) in [
            ("/v1/leaderboard?limit=10".to_owned(), &mut live),
            (format!("/v1/leaderboard?limit=10&as_of={at}"), &mut as_of),
        ] {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await?;
            h.record(micros(started.elapsed()))?;
        }
    }
    shutdown.cancel();
    let _ = task.await;
    if let Ok(client) = async_nats::connect(&args.nats_url).await {
        let js = async_nats::jetstream::new(client);
        let _ = js
            .delete_stream(questlog_bus::Names::new(&store.nats_prefix).events_stream())
            .await;
    }
    Ok((live, as_of))
}
