//! `GET /metrics` after a short load: every series the docs name is there with a plausible value,
//! and the Grafana dashboard names only series questlog exports.

use std::collections::BTreeSet;
use std::time::Duration;

use questlog::metrics::SERIES;
use questlog_tests::{position, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::subscribe::Sub;

/// The text of `GET /metrics`.
async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text().await.expect("text")
}

/// The samples of `name`: their labels (`{…}` or empty) and values.
fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None; // another series whose name starts with `name`
            }
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// The one sample of `name` whose labels contain every one of `labels`.
fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(l, _)| labels.iter().all(|want| l.contains(want)))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} once in:\n{text}");
    found[0]
}

#[tokio::test]
async fn after_a_short_load_metrics_show_commands_appends_conflicts_lags_and_live_subscribers() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(a.db.share()).await;
    a.catalog(3, 100).await;
    let ada = a.player("ada").await;
    // `b` appends to ada's stream behind the back of `a`'s writer, whose cache then holds an old
    // version of it: `a`'s next append for ada conflicts, and is decided again.
    b.complete_labs(&ada.token, [1]).await;
    a.complete_labs(&ada.token, [2]).await;
    let (status, _) = a
        .command(&ada.token, "complete_lab", &json!({ "lab_id": "lab-1" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let head = position(
        &a.ok(
            &ada.token,
            "set_timezone",
            json!({ "timezone": "Europe/Paris" }),
        )
        .await,
    );
    a.caught_up(head).await;

    let mut live = Sub::open(&a, &ada.token, "topic=leaderboard", None).await;
    assert_eq!(live.next().await.kind, "snapshot");

    // The lags are read at scrape time: once the relay and the projectors have caught up, zero.
    let caught_up = |text: &str| {
        let lags = samples(text, "questlog_projection_lag_events");
        samples(text, "questlog_relay_lag_events") == [("", 0.0)]
            && lags.len() == questlog_projector::Projections::of(&questlog::modules::app()).len()
            && lags.iter().all(|(_, lag)| *lag == 0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&a).await;
        if caught_up(&text) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the relay's and the projections' lags not at zero within 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Only a query API reading a standby shows the standby's lag (`replicas::metrics_show_…`).
    for (name, kind) in SERIES
        .iter()
        .filter(|(name, _)| *name != "questlog_standby_lag_events")
    {
        let sample = if *kind == "histogram" {
            format!("{name}_count")
        } else {
            (*name).to_owned()
        };
        assert!(!samples(&text, &sample).is_empty(), "{sample} in:\n{text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} is a {kind} in:\n{text}"
        );
    }

    // The recorder counts the whole process (both apps here, and any other test's): at least.
    let commands = |command: &str, outcome: &str| {
        value(
            &text,
            "questlog_commands_total",
            &[
                &format!("command=\"{command}\""),
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert!(commands("register_player", "accepted") >= 1.0);
    assert!(commands("complete_lab", "accepted") >= 2.0);
    assert!(commands("complete_lab", "rejected") >= 1.0);
    assert!(commands("define_lab", "accepted") >= 3.0);
    assert!(value(&text, "questlog_append_conflicts_total", &[]) >= 1.0);
    // Every command above that appended took one append at least; every append had a command.
    let appends = value(&text, "questlog_append_batch_commands_count", &[]);
    assert!(appends >= 7.0, "{appends} appends");
    assert!(value(&text, "questlog_append_batch_commands_sum", &[]) >= appends);
    assert!(
        value(&text, "questlog_append_batch_events_sum", &[])
            >= f64::from(u32::try_from(head).expect("small"))
    );
    assert_eq!(
        value(
            &text,
            "questlog_append_batch_commands_bucket",
            &["le=\"+Inf\""]
        ),
        appends
    );
    let latency = value(&text, "questlog_append_duration_seconds_count", &[]);
    assert!(latency >= appends, "a latency per append");
    let seconds = value(&text, "questlog_append_duration_seconds_sum", &[]);
    assert!(seconds > 0.0 && seconds < latency * 60.0, "{seconds} s");
    #[allow(clippy::cast_precision_loss)]
    let head_f = head as f64;
    assert!(value(&text, "questlog_relay_published_total", &[]) >= head_f);

    // State read at scrape time, and the live hub's counters, are this application's own.
    assert_eq!(value(&text, "questlog_log_head_position", &[]), head_f);
    assert_eq!(value(&text, "questlog_live_subscribers", &[]), 1.0);
    assert!(value(&text, "questlog_live_events_total", &[]) >= 1.0);
    let other = scrape(&b).await;
    assert_eq!(value(&other, "questlog_live_subscribers", &[]), 0.0);
    assert_eq!(value(&other, "questlog_log_head_position", &[]), head_f);
    drop(live);
}

/// Every `questlog_…` name in `expr`, with a histogram's `_bucket`/`_sum`/`_count` taken off.
fn series_named(expr: &str, histograms: &BTreeSet<&str>) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("questlog_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(b)))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_queries_only_series_questlog_exports_and_shows_each_of_them() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/questlog.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard file"))
            .expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string());
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(!found.is_empty(), "the dashboard has queries");
    let exported: BTreeSet<&str> = SERIES.iter().map(|(name, _)| *name).collect();
    let histograms: BTreeSet<&str> = SERIES
        .iter()
        .filter(|(_, kind)| *kind == "histogram")
        .map(|(name, _)| *name)
        .collect();
    let mut shown = BTreeSet::new();
    for expr in &found {
        let names = series_named(expr, &histograms);
        assert!(!names.is_empty(), "{expr:?} names no questlog series");
        for name in names {
            assert!(
                exported.contains(name.as_str()),
                "{expr:?}: {name} is not exported"
            );
            shown.insert(name);
        }
    }
    let missing: Vec<&&str> = exported
        .iter()
        .filter(|name| !name.starts_with("questlog_live_") || **name == "questlog_live_subscribers")
        .filter(|name| !shown.contains(**name))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
