//! The storage module's workloads: `put_object` throughput over HTTP beside raw INSERTs of the
//! same event rows; a filtered, sorted listing of a 100,000-object collection beside the same
//! page selected straight from the read model; and one large object written many times (its
//! puts, the log's growth, the projection's lag, its reads, and what folding its whole stream
//! costs a writer that has not cached it) beside a small object written as often.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::distributions::Alphanumeric;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::report::Row;
use crate::setup::{database_url, drop_database, scratch_database, Env};
use crate::workloads::{
    histogram, insert_throughput, latency_rows, micros, ms, Meter, RawEvent, Visibility,
};
use crate::Args;

/// The classes of the listing's characters.
const CLASSES: [&str; 5] = ["mage", "warrior", "rogue", "cleric", "ranger"];
/// The listing the issue names, and the page size.
const LISTING: &str = "class=mage&level[gte]=5&sort=level&order=desc&limit=20";
const PAGE: i64 = 20;

pub async fn storage_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    put_rows(args, env, rows).await?;
    listing_rows(args, env, rows).await?;
    large_rows(args, env, rows).await
}

/// Defines a collection (as the admin).
async fn define(env: &Env, body: &Value) -> anyhow::Result<()> {
    let (status, answer) = env.command(&env.admin, "define_collection", body).await?;
    anyhow::ensure!(status == 200, "define_collection: {answer}");
    Ok(())
}

/// `n` random alphanumeric characters: filler that compresses about as little as a real save's
/// packed data.
fn filler(rng: &mut impl Rng, n: usize) -> String {
    rng.sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A cloud save of about `bytes` bytes of JSON, its `version`-th write.
fn save(rng: &mut impl Rng, bytes: usize, version: usize) -> Map<String, Value> {
    let Value::Object(mut value) = json!({
        "level": version % 100,
        "scene": "harbour",
        "position": { "x": 12.5, "y": 3.0, "z": -7.25 },
        "written": version,
    }) else {
        unreachable!("an object literal");
    };
    let head = Value::Object(value.clone()).to_string().len() + r#","data":"""#.len();
    value.insert(
        "data".to_owned(),
        Value::String(filler(rng, bytes.saturating_sub(head))),
    );
    value
}

/// The event `put_object` appends for a value, as the raw INSERT baseline writes it.
fn written_event(value: &Map<String, Value>) -> RawEvent {
    RawEvent {
        event_type: "object_written",
        data: json!({
            "collection": "saves",
            "owner": Uuid::nil(),
            "key": "slot-1",
            "version": 1,
            "value": value,
            "by": Uuid::nil(),
        }),
    }
}

/// Puts an object; its position.
async fn put(env: &Env, token: &str, body: &Value) -> anyhow::Result<i64> {
    let (status, answer) = env.command(token, "put_object", body).await?;
    anyhow::ensure!(status == 200, "put_object answered {status}: {answer}");
    answer["position"].as_i64().context("no position")
}

/// `put_object` throughput: `clients` players each rewriting their own saves back to back,
/// beside raw single-row INSERTs of the same `object_written` rows.
async fn put_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const SAVE_BYTES: usize = 1024;
    define(env, &json!({ "collection": "saves" })).await?;
    let duration = args.duration();
    let mut players = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        players.push(env.player().await?.0);
    }
    eprintln!(
        "put_object throughput: {} clients, {SAVE_BYTES}-byte saves, {duration:?}",
        args.clients
    );
    let meter = Meter::default();
    let tasks = players.iter().enumerate().map(|(i, token)| {
        let meter = &meter;
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let mut n = 0;
            while meter.running() {
                n += 1;
                let body = json!({
                    "collection": "saves",
                    "key": format!("slot-{}", n % 3),
                    "value": save(&mut rng, SAVE_BYTES, n),
                });
                put(env, token, &body).await?;
                meter.count();
            }
            anyhow::Ok(())
        }
    });
    let (outcome, puts) = tokio::join!(
        futures::future::try_join_all(tasks),
        meter.measure(duration)
    );
    outcome?;
    eprintln!("  {puts:.0} puts/s");

    eprintln!("raw INSERT of the same rows: {} clients", args.clients);
    let event = written_event(&save(
        &mut rand::rngs::StdRng::seed_from_u64(0),
        SAVE_BYTES,
        1,
    ));
    let (scratch, url) = scratch_database(&env.maintenance_url).await?;
    let inserts = insert_throughput(&url, args.clients, duration, &event).await;
    drop_database(&env.maintenance_url, &scratch).await;
    let inserts = inserts?;
    eprintln!("  {inserts:.0} inserts/s");
    rows.push(
        Row::new(
            &format!(
                "put_object throughput ({SAVE_BYTES}-byte saves over HTTP, {} clients)",
                args.clients
            ),
            puts,
            "raw single-row INSERT of the object_written rows",
            inserts,
            "/s",
        )
        .at_least(1.0),
    );
    Ok(())
}

/// A filtered, sorted listing of a large public collection over HTTP, beside the same page and
/// total selected straight from the read model through the collection's indexes.
async fn listing_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let objects: usize = if args.quick {
        2_000
    } else {
        args.storage_objects
    };
    let per_owner = 100;
    define(
        env,
        &json!({ "collection": "characters", "read": "public", "max_objects": per_owner,
                 "indexed": ["class", "level"] }),
    )
    .await?;
    eprintln!(
        "loading {objects} characters ({} owners) over HTTP, {} clients",
        objects / per_owner,
        args.clients
    );
    let started = Instant::now();
    let owners: Vec<Uuid> = (0..objects.div_ceil(per_owner))
        .map(|_| Uuid::new_v4())
        .collect();
    let next = AtomicUsize::new(0);
    let tasks = (0..args.clients).map(|_| {
        let (next, owners) = (&next, &owners);
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= objects {
                    return anyhow::Ok(());
                }
                let body = json!({
                    "collection": "characters",
                    "owner": owners[i / per_owner].to_string(),
                    "key": format!("c{i}"),
                    "value": {
                        "name": format!("hero {i}"),
                        "class": CLASSES[i % CLASSES.len()],
                        // Level and class independent of each other.
                        "level": (i / CLASSES.len() * 7) % 100,
                        "server": format!("eu-{}", i % 4),
                    },
                });
                put(env, &env.admin, &body).await?;
            }
        }
    });
    futures::future::try_join_all(tasks).await?;
    let player = env.player().await?.0;
    let url = format!("{}/v1/storage/characters?{LISTING}", env.base);
    let everything = format!("{}/v1/storage/characters?limit=1", env.base);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let page: Value = env.get(&player, &everything).await?;
        if page["total"].as_u64() == Some(objects as u64) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the read model never held {objects} objects"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "  loaded and projected in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut conn = PgConnection::connect(&database_url(&env.maintenance_url, &env.db_name)).await?;
    sqlx::query("ANALYZE rm_storage_versions")
        .execute(&mut conn)
        .await?;
    let reads = if args.quick { 30 } else { 1_000 };
    eprintln!("listing reads: {reads} over HTTP, {reads} straight from the read model");
    let mut http = histogram();
    let mut direct = histogram();
    for round in 0..reads {
        let started = Instant::now();
        let page: Value = env.get(&player, &url).await?;
        http.record(micros(started.elapsed()))?;
        let started = Instant::now();
        let (keys, total) = direct_page(&mut conn).await?;
        direct.record(micros(started.elapsed()))?;
        if round == 0 {
            let listed: Vec<&str> = page["objects"]
                .as_array()
                .context("objects")?
                .iter()
                .filter_map(|o| o["key"].as_str())
                .collect();
            anyhow::ensure!(
                listed == keys && page["total"].as_i64() == Some(total),
                "the listing and the direct SELECT disagree"
            );
        }
    }
    conn.close().await?;
    latency_rows(
        rows,
        &format!("storage listing ({LISTING}, with total; {objects} objects)"),
        &http,
        "the same page and count by a direct indexed SELECT",
        &direct,
    );
    Ok(())
}

/// The listing's page and total, selected from `rm_storage_versions` by hand, on the
/// expressions the collection's indexes cover.
async fn direct_page(conn: &mut PgConnection) -> anyhow::Result<(Vec<String>, i64)> {
    const WHERE: &str = "FROM rm_storage_versions v
        WHERE v.collection = 'characters' AND v.valid_to IS NULL AND v.value IS NOT NULL
          AND coalesce(v.value -> 'class', 'null'::jsonb) = ANY($1::jsonb[])
          AND coalesce(v.value -> 'level', 'null'::jsonb) >= $2::jsonb
          AND jsonb_typeof(coalesce(v.value -> 'level', 'null'::jsonb)) = 'number'";
    let class = vec![json!("mage")];
    let rows: Vec<(String, i64, Value)> = sqlx::query_as(&format!(
        "SELECT v.key, v.version, v.value {WHERE}
         ORDER BY coalesce(v.value -> 'level', 'null'::jsonb) DESC, v.owner DESC, v.key DESC
         LIMIT {PAGE}"
    ))
    .bind(&class)
    .bind(json!(5))
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) {WHERE}"))
        .bind(&class)
        .bind(json!(5))
        .fetch_one(&mut *conn)
        .await?;
    Ok((rows.into_iter().map(|r| r.0).collect(), total))
}

/// What writing one object many times measured.
struct Rewrites {
    /// Puts per second, one client writing back to back.
    rate: f64,
    put: Histogram<u64>,
    /// Command sent → the storage read model committed it.
    lag: Histogram<u64>,
    /// Growth of `events` and of `rm_storage_versions`, in bytes, and the values' own bytes.
    events_growth: f64,
    read_model_growth: f64,
    payload: f64,
    read: Histogram<u64>,
    versions: Histogram<u64>,
}

/// The large-object rows: one object of `LARGE` bytes written `n` times beside one of `SMALL`
/// bytes written as often, then a writer with an empty cache putting to each.
async fn large_rows(args: &Args, env: &Env, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const LARGE: usize = 65_536;
    const SMALL: usize = 1024;
    let n = if args.quick { 20 } else { 1_000 };
    define(
        env,
        &json!({ "collection": "big_saves", "max_bytes": 1_048_576 }),
    )
    .await?;
    let (token, owner) = env.player().await?;
    let mut conn = PgConnection::connect(&database_url(&env.maintenance_url, &env.db_name)).await?;
    let reads = if args.quick { 20 } else { 200 };
    eprintln!("one {LARGE}-byte object written {n} times, then one of {SMALL} bytes");
    let large = rewrites(env, &mut conn, &token, "large", LARGE, n, reads).await?;
    let small = rewrites(env, &mut conn, &token, "small", SMALL, n, reads).await?;
    let pair = |figure: &str, unit: &str, large: f64, small: f64| {
        Row::new(
            &format!("{figure}, {LARGE}-byte object × {n} versions"),
            large,
            &format!("the same, {SMALL}-byte object × {n} versions (same run)"),
            small,
            unit,
        )
    };
    for (figure, unit, large, small) in [
        ("put throughput, one client", "/s", large.rate, small.rate),
        ("put p99", "ms", ms(&large.put, 0.99), ms(&small.put, 0.99)),
        (
            "put → read model committed p99",
            "ms",
            ms(&large.lag, 0.99),
            ms(&small.lag, 0.99),
        ),
        (
            "read of the object p99",
            "ms",
            ms(&large.read, 0.99),
            ms(&small.read, 0.99),
        ),
        (
            "read of its versions page (20) p99",
            "ms",
            ms(&large.versions, 0.99),
            ms(&small.versions, 0.99),
        ),
    ] {
        rows.push(pair(figure, unit, large, small));
    }
    let mib = |b: f64| b / 1_048_576.0;
    rows.push(Row::new(
        &format!("events table growth, {LARGE}-byte object × {n} versions"),
        mib(large.events_growth),
        "the values' own JSON bytes",
        mib(large.payload),
        "MiB",
    ));
    rows.push(Row::new(
        &format!("read model growth, {LARGE}-byte object × {n} versions"),
        mib(large.read_model_growth),
        "the values' own JSON bytes",
        mib(large.payload),
        "MiB",
    ));

    eprintln!("writer cache misses: a fresh command API putting to each object, three times");
    let mut miss = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let writer = FreshWriter::start(env).await?;
        // The collection's and the owner's streams cached, and the process warm: only the
        // object's stream is missing below.
        let warm = json!({ "collection": "big_saves", "key": format!("warm-{round}"),
                           "value": { "warm": true } });
        let (status, answer) = env
            .command_at(&writer.base, &token, "put_object", &warm)
            .await?;
        anyhow::ensure!(status == 200, "put_object answered {status}: {answer}");
        for (key, bytes, times) in [("large", LARGE, &mut miss.0), ("small", SMALL, &mut miss.1)] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(round);
            let body = json!({ "collection": "big_saves", "key": key,
                               "value": save(&mut rng, bytes, n + 1) });
            let started = Instant::now();
            let (status, answer) = env
                .command_at(&writer.base, &token, "put_object", &body)
                .await?;
            anyhow::ensure!(status == 200, "put_object answered {status}: {answer}");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        writer.stop().await;
        let started = Instant::now();
        let stream = format!("storage_object-big_saves:{owner}:large");
        let read: Vec<Value> = sqlx::query_scalar(
            "SELECT data FROM events WHERE stream_id = $1 ORDER BY stream_version",
        )
        .bind(&stream)
        .fetch_all(&mut conn)
        .await?;
        anyhow::ensure!(
            read.len() > n,
            "the large object's stream has {} events",
            read.len()
        );
        miss.2.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    conn.close().await?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (large_miss, small_miss, raw) = (
        median(&mut miss.0),
        median(&mut miss.1),
        median(&mut miss.2),
    );
    eprintln!(
        "  median of 3: large {large_miss:.1} ms, small {small_miss:.1} ms, raw read {raw:.1} ms"
    );
    rows.push(pair(
        "first put by a writer that has not cached the object (median of 3)",
        "ms",
        large_miss,
        small_miss,
    ));
    rows.push(Row::new(
        &format!("first put by an uncached writer, {LARGE}-byte object × {n} versions"),
        large_miss,
        "SELECT of the object's whole stream (every version's value)",
        raw,
        "ms",
    ));
    Ok(())
}

async fn relation_size(conn: &mut PgConnection, table: &str) -> anyhow::Result<f64> {
    let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
        .bind(table)
        .fetch_one(conn)
        .await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(bytes as f64)
}

/// Writes the object `key` of `big_saves` `n` times with values of `bytes` bytes, one put after
/// another, then reads it and its versions `reads` times each.
async fn rewrites(
    env: &Env,
    conn: &mut PgConnection,
    token: &str,
    key: &str,
    bytes: usize,
    n: usize,
    reads: usize,
) -> anyhow::Result<Rewrites> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let watch = Visibility::watch(env, "storage").await?;
    let (events_before, read_model_before) = (
        relation_size(conn, "events").await?,
        relation_size(conn, "rm_storage_versions").await?,
    );
    let mut put_h = histogram();
    let mut payload = 0;
    let started = Instant::now();
    for version in 1..=n {
        let value = save(&mut rng, bytes, version);
        payload += Value::Object(value.clone()).to_string().len();
        let body = json!({ "collection": "big_saves", "key": key, "value": value });
        let sent = Instant::now();
        let position = put(env, token, &body).await?;
        put_h.record(micros(sent.elapsed()))?;
        watch.sent(position, sent)?;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let lag = watch.finish().await?;
    let (events_after, read_model_after) = (
        relation_size(conn, "events").await?,
        relation_size(conn, "rm_storage_versions").await?,
    );
    let object = format!("{}/v1/storage/big_saves/me/{key}", env.base);
    let versions = format!("{object}/versions?limit=20");
    let mut read_h = histogram();
    let mut versions_h = histogram();
    for _ in 0..reads {
        for (url, h) in [(&object, &mut read_h), (&versions, &mut versions_h)] {
            let started = Instant::now();
            let answer = env.get(token, url).await?;
            h.record(micros(started.elapsed()))?;
            anyhow::ensure!(!answer.is_null(), "{url} answered null");
        }
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(Rewrites {
        rate,
        put: put_h,
        lag,
        events_growth: events_after - events_before,
        read_model_growth: read_model_after - read_model_before,
        payload: payload as f64,
        read: read_h,
        versions: versions_h,
    })
}

/// A command API of its own on the same database: a writer whose cache is empty.
struct FreshWriter {
    base: String,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl FreshWriter {
    async fn start(env: &Env) -> anyhow::Result<Self> {
        let store = questlog::config::StoreArgs {
            database_url: database_url(&env.maintenance_url, &env.db_name),
            nats_url: env.nats_url.clone(),
            nats_prefix: env.prefix.clone(),
            token_secret: Some(crate::setup::SECRET.to_owned()),
            token_ttl_days: 1,
        };
        let serve = questlog::config::ServeArgs {
            service: Some(questlog::config::Service::CommandApi),
            ..questlog::config::ServeArgs::on("127.0.0.1:0".parse()?)
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let app = questlog::Application::build(&store, &serve, shutdown.clone()).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let task = tokio::spawn(app.run());
        Ok(Self {
            base,
            shutdown,
            task,
        })
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
