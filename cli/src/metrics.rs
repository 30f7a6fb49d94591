//! `GET /metrics`: every service's series in Prometheus' text format, for scraping.
//!
//! Three sources, one answer:
//! - the process's recorder (the `metrics` crate, rendered by `metrics-exporter-prometheus`'s
//!   handle, with no listener of its own): what the services count as they work — commands by
//!   name and outcome, append batch sizes and latency, conflicts, events published by the relay.
//!   A process has one recorder, installed by the first [`Application`](crate::app::Application)
//!   it builds; its series count everything the process did (one application per process in
//!   production; the sum of all of them when tests start several in one process);
//! - values read at scrape time from this application's own database and stream: the log's head,
//!   the relay's lag, each projection's lag and, for a query API reading a standby, how far the
//!   standby is behind. They describe state, not work, so each application reports its own
//!   whatever else runs in the process;
//! - the live hub's own counters (`questlog_live_*`), kept per application for the same reason.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use questlog_bus::Names;
use sqlx::PgPool;
use std::fmt::Write as _;

/// How long a scrape waits for the database or the stream before leaving a series out.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often histograms are folded when nothing scrapes (keeps their memory bounded).
const UPKEEP: Duration = Duration::from_secs(5);

/// Seconds buckets of `questlog_append_duration_seconds` and `questlog_projection_batch_seconds`.
const SECONDS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Size buckets of the append batch histograms.
const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Every series `GET /metrics` can show, with its type: what the dashboard may name.
pub const SERIES: &[(&str, &str)] = &[
    ("questlog_commands_total", "counter"),
    ("questlog_append_batch_commands", "histogram"),
    ("questlog_append_batch_events", "histogram"),
    ("questlog_append_duration_seconds", "histogram"),
    ("questlog_append_conflicts_total", "counter"),
    ("questlog_relay_published_total", "counter"),
    ("questlog_log_head_position", "gauge"),
    ("questlog_relay_lag_events", "gauge"),
    ("questlog_projection_lag_events", "gauge"),
    ("questlog_projection_batch_seconds", "histogram"),
    ("questlog_standby_lag_events", "gauge"),
    ("questlog_live_subscribers", "gauge"),
    ("questlog_live_topics", "gauge"),
    ("questlog_live_events_total", "counter"),
    ("questlog_live_lagged_total", "counter"),
    ("questlog_live_resyncs_total", "counter"),
    ("questlog_live_dropped_total", "counter"),
    ("questlog_live_resumes_total", "counter"),
    ("questlog_live_resume_misses_total", "counter"),
    ("questlog_live_queue_capacity", "gauge"),
    ("questlog_live_retained_capacity", "gauge"),
];

/// The process's recorder, installed on first use.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("questlog_append_duration_seconds".to_owned()),
                SECONDS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("questlog_projection_batch_seconds".to_owned()),
                    SECONDS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Prefix("questlog_append_batch_".to_owned()),
                    SIZES,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: GET /metrics lacks its series");
        }
        describe();
        // Counters that may stay at zero for a long time are shown from the start.
        ::metrics::counter!("questlog_append_conflicts_total").increment(0);
        ::metrics::counter!("questlog_relay_published_total").increment(0);
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            });
        handle
    })
}

fn describe() {
    use ::metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "questlog_commands_total",
        "Commands answered by the writer, by command name and outcome."
    );
    describe_histogram!(
        "questlog_append_batch_commands",
        Unit::Count,
        "Commands decided into one append (one statement, one transaction)."
    );
    describe_histogram!(
        "questlog_append_batch_events",
        Unit::Count,
        "Events in one append."
    );
    describe_histogram!(
        "questlog_append_duration_seconds",
        Unit::Seconds,
        "Time of one append round trip, commit included."
    );
    describe_counter!(
        "questlog_append_conflicts_total",
        "Appends refused because another writer changed one of their streams."
    );
    describe_histogram!(
        "questlog_projection_batch_seconds",
        Unit::Seconds,
        "Time of one projection batch's transaction, from its begin to its commit, by projection."
    );
    describe_counter!(
        "questlog_relay_published_total",
        "Events the relay published to JetStream and JetStream acknowledged."
    );
}

/// What the route reads at scrape time.
#[derive(Clone)]
pub struct Scrape {
    pub pool: PgPool,
    /// JetStream, when this process runs the relay.
    pub relay: Option<async_nats::jetstream::Context>,
    pub names: Names,
    /// The projections, when this process runs the projectors.
    pub projections: Vec<&'static str>,
    /// The live hub, when this process runs the query API.
    pub hub: Option<questlog_query_api::live::Hub>,
    /// The standby the query API reads from (`QUESTLOG_READ_DATABASE_URL`), when it has one.
    pub standby: Option<PgPool>,
}

/// `GET /metrics`: unauthenticated, as scrapers expect; it tells counts only.
pub async fn route(State(scrape): State<Scrape>) -> Response {
    let mut body = recorder().render();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    match tokio::time::timeout(SCRAPE_TIMEOUT, state(&scrape, &mut body)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "metrics: cannot read the log"),
        Err(_) => tracing::warn!("metrics: reading the log took too long"),
    }
    if let Some(hub) = &scrape.hub {
        questlog_query_api::live::render_metrics(hub, &mut body);
    }
    let mut response = body.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The head of the log, the relay's lag, each projection's lag and the standby's, read now.
async fn state(scrape: &Scrape, body: &mut String) -> anyhow::Result<()> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
        .fetch_one(&scrape.pool)
        .await?;
    gauge(
        body,
        "questlog_log_head_position",
        "Position of the newest event in the log.",
        &[(None, head)],
    );
    if let Some(js) = &scrape.relay {
        let published = questlog_bus::lineage::stream_state(js, &scrape.names)
            .await?
            .and_then(|s| s.tail)
            .map_or(0, |t| t.position);
        gauge(
            body,
            "questlog_relay_lag_events",
            "Events in the log after the last one in the JetStream stream (head - last published position).",
            &[(None, (head - published).max(0))],
        );
    }
    if !scrape.projections.is_empty() {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT p.name, coalesce(c.position, 0)::bigint
               FROM unnest($1::text[]) AS p(name)
               LEFT JOIN projection_checkpoints c ON c.projection = p.name
              ORDER BY p.name",
        )
        .bind(&scrape.projections)
        .fetch_all(&scrape.pool)
        .await?;
        let lags: Vec<(Option<&str>, i64)> = rows
            .iter()
            .map(|(name, position)| (Some(name.as_str()), (head - position).max(0)))
            .collect();
        gauge(
            body,
            "questlog_projection_lag_events",
            "Events in the log after a projection's checkpoint (head - checkpoint).",
            &lags,
        );
    }
    // Last: a standby out of reach leaves out only its own series.
    if let Some(standby) = &scrape.standby {
        // Read after the primary's head: the lag is never overstated.
        let replayed: Result<i64, _> =
            sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
                .fetch_one(standby)
                .await;
        match replayed {
            Ok(replayed) => gauge(
                body,
                "questlog_standby_lag_events",
                "Events in the primary's log after the newest one the standby the query API reads \
                 has replayed (head - standby's head).",
                &[(None, (head - replayed).max(0))],
            ),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the standby"),
        }
    }
    Ok(())
}

/// Appends a gauge, one sample per `(projection label, value)`.
fn gauge(body: &mut String, name: &str, help: &str, samples: &[(Option<&str>, i64)]) {
    let _ = writeln!(body, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (projection, value) in samples {
        match projection {
            Some(p) => {
                let _ = writeln!(body, "{name}{{projection=\"{p}\"}} {value}");
            }
            None => {
                let _ = writeln!(body, "{name} {value}");
            }
        }
    }
}
