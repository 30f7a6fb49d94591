//! The leaderboards' and achievements' workloads: `submit_score` throughput over HTTP beside raw
//! INSERTs of the same event rows; a board of 100,000 entries read (its top page and around a
//! player) beside the same pages selected straight from the read model; and commands flowing
//! while an achievement's rule is awarded retroactively over the history group's
//! 1,000,000-event log, beside the same commands without the award.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::report::Row;
use crate::setup::{database_url, drop_database, scratch_database, Env};
use crate::workloads::{
    histogram, insert_throughput, latency_rows, micros, ms, Meter, RawEvent, Visibility,
};
use crate::Args;

/// A live entry's `valid_to` (the leaderboards' projection, `OPEN`).
const OPEN: i64 = i64::MAX;
/// The top page's size and the around read's radius.
const TOP: i64 = 10;
const RADIUS: i64 = 5;

pub async fn board_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    submit_rows(args, env, rows).await?;
    read_rows(args, env, rows).await?;
    award_rows(args, env, rows).await
}

async fn define_board(env: &Env, board: &str) -> anyhow::Result<()> {
    let body = json!({ "leaderboard": board, "title": board, "order": "desc", "operator": "best" });
    let (status, answer) = env.command(&env.admin, "define_leaderboard", &body).await?;
    anyhow::ensure!(status == 200, "define_leaderboard: {answer}");
    Ok(())
}

/// Submits a score; its position.
async fn submit(env: &Env, token: &str, body: &Value) -> anyhow::Result<i64> {
    let (status, answer) = env.command(token, "submit_score", body).await?;
    anyhow::ensure!(status == 200, "submit_score answered {status}: {answer}");
    answer["position"].as_i64().context("no position")
}

/// `players` submitting scores to `board` back to back while `meter` runs: each submission's
/// latency while it measures.
async fn submitting(
    env: &Env,
    players: &[String],
    board: &str,
    meter: &Meter,
) -> anyhow::Result<Histogram<u64>> {
    let latency = Mutex::new(histogram());
    let tasks = players.iter().enumerate().map(|(i, token)| {
        let latency = &latency;
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            while meter.running() {
                let body = json!({ "leaderboard": board, "score": rng.gen_range(0..1_000_000) });
                let sent = Instant::now();
                submit(env, token, &body).await?;
                if meter.measuring() {
                    latency
                        .lock()
                        .expect("histogram")
                        .record(micros(sent.elapsed()))?;
                }
                meter.count();
            }
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(tasks).await?;
    let h = latency.lock().expect("histogram").clone();
    Ok(h)
}

/// Submissions to `board` for `duration` (after a warm-up): per second, and their latency.
async fn submissions(
    env: &Env,
    players: &[String],
    board: &str,
    duration: Duration,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let meter = Meter::default();
    let (latency, rate) = tokio::join!(
        submitting(env, players, board, &meter),
        meter.measure(duration)
    );
    Ok((rate, latency?))
}

async fn players(env: &Env, n: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(env.player().await?.0);
    }
    Ok(tokens)
}

/// `submit_score` throughput beside raw single-row INSERTs of `score_submitted` rows.
async fn submit_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    define_board(env, "high_scores").await?;
    let tokens = players(env, args.clients).await?;
    let duration = args.duration();
    eprintln!(
        "submit_score throughput: {} clients, {duration:?}",
        args.clients
    );
    let (rate, _) = submissions(env, &tokens, "high_scores", duration).await?;
    eprintln!("  {rate:.0} submissions/s");
    let event = RawEvent {
        event_type: "score_submitted",
        data: json!({ "leaderboard": "high_scores", "player_id": Uuid::nil(), "season": 1,
                      "score": 123_456, "subscore": 0, "metadata": null }),
    };
    let (scratch, url) = scratch_database(&env.maintenance_url).await?;
    let inserts = insert_throughput(&url, args.clients, duration, &event).await;
    drop_database(&env.maintenance_url, &scratch).await;
    let inserts = inserts?;
    eprintln!("  raw INSERT: {inserts:.0}/s");
    rows.push(
        Row::new(
            &format!(
                "submit_score throughput (over HTTP, {} clients)",
                args.clients
            ),
            rate,
            "raw single-row INSERT of the score_submitted rows",
            inserts,
            "/s",
        )
        .at_least(1.0),
    );
    Ok(())
}

/// A board of many entries: its top page and a page around a player, over HTTP and selected
/// straight from the read model.
async fn read_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let entries: usize = if args.quick {
        2_000
    } else {
        args.board_entries
    };
    define_board(env, "big").await?;
    eprintln!(
        "filling a board with {entries} entries over HTTP, {} clients",
        args.clients
    );
    let started = Instant::now();
    let ids: Vec<Uuid> = (0..entries).map(|_| Uuid::new_v4()).collect();
    let next = AtomicUsize::new(0);
    let tasks = (0..args.clients).map(|_| {
        let (next, ids) = (&next, &ids);
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else {
                    return anyhow::Ok(());
                };
                // Scores spread with ties, as a real board has.
                let score = (i * 7919) % 50_000;
                let body = json!({ "leaderboard": "big", "player_id": id, "score": score });
                submit(env, &env.admin, &body).await?;
            }
        }
    });
    futures::future::try_join_all(tasks).await?;
    let mut conn = PgConnection::connect(&database_url(&env.maintenance_url, &env.db_name)).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rm_leaderboard_entries WHERE leaderboard = 'big' AND valid_to = $1",
        )
        .bind(OPEN)
        .fetch_one(&mut conn)
        .await?;
        if live == i64::try_from(entries)? {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the board never held {entries} entries"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "  filled and projected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE rm_leaderboard_entries")
        .execute(&mut conn)
        .await?;
    let season: i32 =
        sqlx::query_scalar("SELECT season FROM rm_leaderboards WHERE leaderboard = 'big'")
            .fetch_one(&mut conn)
            .await?;
    let token = env.player().await?.0;
    let reads = if args.quick { 30 } else { 1_000 };
    eprintln!("board reads: {reads} top pages and {reads} around reads, over HTTP and direct");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut top_http, mut top_direct) = (histogram(), histogram());
    let (mut around_http, mut around_direct) = (histogram(), histogram());
    let top_url = format!("{}/v1/leaderboards/big?limit={TOP}", env.base);
    for round in 0..reads {
        let started = Instant::now();
        let page = env.get(&token, &top_url).await?;
        top_http.record(micros(started.elapsed()))?;
        let started = Instant::now();
        let direct = direct_top(&mut conn, season).await?;
        top_direct.record(micros(started.elapsed()))?;
        if round == 0 {
            anyhow::ensure!(
                entry_ids(&page["entries"]) == direct,
                "the top page and the direct SELECT disagree"
            );
        }
        let player = ids[rng.gen_range(0..ids.len())];
        let url = format!(
            "{}/v1/leaderboards/big/players/{player}?radius={RADIUS}",
            env.base
        );
        let started = Instant::now();
        let around = env.get(&token, &url).await?;
        around_http.record(micros(started.elapsed()))?;
        let started = Instant::now();
        let (rank, neighbours) = direct_around(&mut conn, season, player).await?;
        around_direct.record(micros(started.elapsed()))?;
        if round == 0 {
            let listed = around["entries"].as_array().context("entries")?;
            let mine = listed
                .iter()
                .find(|e| e["player_id"].as_str() == Some(&player.to_string()))
                .context("the player is not around itself")?;
            anyhow::ensure!(
                mine["rank"].as_i64() == Some(rank)
                    && entry_ids(&around["entries"]).len() == neighbours,
                "the around read and the direct SELECT disagree: {around}"
            );
        }
    }
    conn.close().await?;
    latency_rows(
        rows,
        &format!("board top page ({TOP}), {entries} entries"),
        &top_http,
        "the same page by a direct indexed SELECT",
        &top_direct,
    );
    latency_rows(
        rows,
        &format!("board around a player (radius {RADIUS}), {entries} entries"),
        &around_http,
        "the same rank and neighbours by direct SELECTs",
        &around_direct,
    );
    Ok(())
}

fn entry_ids(entries: &Value) -> Vec<Uuid> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["player_id"].as_str()?.parse().ok())
        .collect()
}

/// The live entries of board `big` in `season` (the rank index's partial condition).
const LIVE: &str =
    "FROM rm_leaderboard_entries e LEFT JOIN rm_players p ON p.player_id = e.player_id
    WHERE e.leaderboard = 'big' AND e.season = $1 AND e.valid_to = 9223372036854775807";
const DOWN: &str = "ORDER BY e.sort_score DESC, e.sort_subscore DESC, e.reached, e.player_id";
const COLUMNS: &str = "e.player_id, p.username, e.score, e.subscore, e.metadata, e.updated_at";

/// An entry as a page lists it.
type EntryRow = (
    Uuid,
    Option<String>,
    i64,
    i64,
    Option<Value>,
    chrono::DateTime<chrono::Utc>,
);

/// The top page, selected through the rank index.
async fn direct_top(conn: &mut PgConnection, season: i32) -> anyhow::Result<Vec<Uuid>> {
    let rows: Vec<EntryRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} {LIVE} {DOWN} LIMIT {TOP}"))
            .bind(season)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// A player's rank (1 + the entries ahead of it) and the entries `RADIUS` either side of it,
/// itself included: how many.
async fn direct_around(
    conn: &mut PgConnection,
    season: i32,
    player: Uuid,
) -> anyhow::Result<(i64, usize)> {
    const AHEAD: &str = "(e.sort_score > $2 OR (e.sort_score = $2 AND e.sort_subscore > $3)
        OR (e.sort_score = $2 AND e.sort_subscore = $3 AND (e.reached, e.player_id) < ($4, $5)))";
    const BEHIND: &str = "(e.sort_score < $2 OR (e.sort_score = $2 AND e.sort_subscore < $3)
        OR (e.sort_score = $2 AND e.sort_subscore = $3 AND (e.reached, e.player_id) > ($4, $5)))";
    let (score, subscore, reached): (i64, i64, i64) = sqlx::query_as(
        "SELECT sort_score, sort_subscore, reached FROM rm_leaderboard_entries
          WHERE leaderboard = 'big' AND season = $1 AND player_id = $2
            AND valid_to = 9223372036854775807",
    )
    .bind(season)
    .bind(player)
    .fetch_one(&mut *conn)
    .await?;
    let count = format!("SELECT count(*) {LIVE} AND {AHEAD}");
    let above = format!(
        "SELECT count(*) FROM (SELECT e.player_id {LIVE} AND {AHEAD}
          ORDER BY e.sort_score, e.sort_subscore, e.reached DESC, e.player_id DESC
          LIMIT {RADIUS}) n"
    );
    let below = format!(
        "SELECT count(*) FROM (SELECT e.player_id {LIVE} AND {BEHIND} {DOWN} LIMIT {RADIUS}) n"
    );
    let mut found = Vec::with_capacity(3);
    for sql in [&count, &above, &below] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(season)
            .bind(score)
            .bind(subscore)
            .bind(reached)
            .bind(player)
            .fetch_one(&mut *conn)
            .await?;
        found.push(n);
    }
    Ok((found[0] + 1, usize::try_from(found[1] + 1 + found[2])?))
}

/// How long a scan of the log's events of `event_type` takes, counting their players: the
/// floor under an award's statement.
async fn scan(conn: &mut PgConnection, event_type: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let _: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT metadata->>'identity') FROM events WHERE event_type = $1",
    )
    .bind(event_type)
    .fetch_one(conn)
    .await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The rules awarded over the log, one after the other: id, goal, the event type counted.
const RULES: [(&str, i64, &str); 3] = [
    ("five_labs", 5, "lab_completed"),
    ("fifty_labs", 50, "lab_completed"),
    ("registered", 1, "player_registered"),
];

/// Commands flowing while achievements' rules are awarded retroactively over the history
/// group's log, beside the same commands without an award.
async fn award_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let events = if args.quick {
        20_000
    } else {
        args.history_events
    };
    let mut conn = PgConnection::connect(&database_url(&env.maintenance_url, &env.db_name)).await?;
    eprintln!("appending the history group's log of {events} events");
    let started = Instant::now();
    let head = crate::history::generate(&mut conn, events).await?;
    eprintln!(
        "  {:.1} s; waiting for every projection to fold it",
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let behind: i64 =
            sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE position < $1")
                .bind(head)
                .fetch_one(&mut conn)
                .await?;
        if behind == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the projections never reached {head}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("  folded after {:.1} s", started.elapsed().as_secs_f64());
    let log: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut conn)
        .await?;
    sqlx::query("ANALYZE events").execute(&mut conn).await?;
    let mut scans = Vec::with_capacity(RULES.len());
    for (_, _, counted) in RULES {
        scans.push(scan(&mut conn, counted).await?);
    }
    conn.close().await?;

    define_board(env, "during").await?;
    let tokens = players(env, args.clients).await?;
    let duration = args.duration();
    eprintln!(
        "submit_score without an award: {} clients, {duration:?}",
        args.clients
    );
    let (quiet_rate, quiet) = submissions(env, &tokens, "during", duration).await?;
    eprintln!("  {quiet_rate:.0}/s");

    // Three rules over the log, one after the other, while the same commands flow.
    let meter = Meter::default();
    let awards = async {
        let mut took = Vec::new();
        for (id, goal, counted) in RULES {
            let body = json!({ "achievement": id, "title": id, "goal": goal,
                               "rule": { "count": counted } });
            let awarded = Visibility::watch(env, "achievements").await?;
            let sent = Instant::now();
            let (status, answer) = env.command(&env.admin, "define_achievement", &body).await?;
            anyhow::ensure!(status == 200, "define_achievement: {answer}");
            let position = answer["position"].as_i64().context("no position")?;
            awarded.sent(position, sent)?;
            let h = awarded.finish().await?;
            took.push(ms(&h, 1.0));
        }
        meter.stop();
        anyhow::Ok(took)
    };
    meter.start();
    let started = Instant::now();
    let (took, during) = tokio::join!(awards, submitting(env, &tokens, "during", &meter));
    let (took, during, elapsed) = (took?, during?, started.elapsed());
    #[allow(clippy::cast_precision_loss)]
    let during_rate = during.len() as f64 / elapsed.as_secs_f64();
    eprintln!(
        "  awards took {took:?} ms; {during_rate:.0} submissions/s meanwhile ({} in {elapsed:?})",
        during.len()
    );
    for (((id, _, counted), took), scan) in RULES.iter().zip(&took).zip(&scans) {
        rows.push(Row::new(
            &format!("retroactive award `{id}` over a {log}-event log: define sent → awarded"),
            *took,
            &format!("a scan of the log's `{counted}` events counting their players"),
            *scan,
            "ms",
        ));
    }
    rows.push(
        Row::new(
            &format!(
                "submit_score throughput while the awards run ({} clients)",
                args.clients
            ),
            during_rate,
            "the same without an award (same run)",
            quiet_rate,
            "/s",
        )
        .at_least(0.5),
    );
    rows.push(Row::new(
        "submit_score p99 while the awards run",
        ms(&during, 0.99),
        "the same without an award (same run)",
        ms(&quiet, 0.99),
        "ms",
    ));
    Ok(())
}
