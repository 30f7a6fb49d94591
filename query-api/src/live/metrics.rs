//! The live subscriptions' counters in Prometheus' text format, for `GET /metrics`.
//!
//! They are the hub's own counters, rendered beside the process's recorder: each application
//! keeps its own hub, so its counts stay its own even when several run in one process.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::hub::{Hub, QUEUE, RETAIN};

/// Appends the hub's series to `body`.
pub fn render(hub: &Hub, body: &mut String) {
    let m = hub.metrics();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let series: [(&str, &str, &str, u64); 10] = [
        (
            "questlog_live_subscribers",
            "gauge",
            "Live (SSE) subscriptions open now.",
            load(&m.connected),
        ),
        (
            "questlog_live_topics",
            "gauge",
            "Topics the live hub keeps up to date.",
            hub.topics() as u64,
        ),
        (
            "questlog_live_events_total",
            "counter",
            "Events written to live subscribers (snapshots and changes).",
            load(&m.events),
        ),
        (
            "questlog_live_lagged_total",
            "counter",
            "Live subscribers cut loose because their queue was full or an announcement was lost.",
            load(&m.lagged),
        ),
        (
            "questlog_live_resyncs_total",
            "counter",
            "Fresh snapshots sent to live subscribers that had been cut loose.",
            load(&m.resyncs),
        ),
        (
            "questlog_live_dropped_total",
            "counter",
            "Live subscribers disconnected because they kept falling behind.",
            load(&m.dropped),
        ),
        (
            "questlog_live_resumes_total",
            "counter",
            "Topics resumed from retention after Last-Event-ID.",
            load(&m.resumed),
        ),
        (
            "questlog_live_resume_misses_total",
            "counter",
            "Topics that took a snapshot after Last-Event-ID (not in retention).",
            load(&m.resume_misses),
        ),
        (
            "questlog_live_queue_capacity",
            "gauge",
            "Events a live subscriber's queue holds before it counts as lagging.",
            QUEUE as u64,
        ),
        (
            "questlog_live_retained_capacity",
            "gauge",
            "Changes each live topic keeps for resumes.",
            RETAIN as u64,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
