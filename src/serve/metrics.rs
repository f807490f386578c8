//! What `GET /metrics` shows, in the Prometheus text format: counters kept by the service
//! (events, records, runs, the event-to-row lag) plus the Bitrix24 client's request counts
//! and the queue's depth, which the handler adds when asked.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::extract::client::StatsSnapshot;
use crate::store::QueueDepth;

/// Upper bounds (seconds) of the event-to-row lag histogram.
pub const LAG_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

#[derive(Debug, Default)]
struct Lag {
    counts: [u64; LAG_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The service's counters; shared by the HTTP handlers and the workers.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events by outcome: queued, ignored, or refused (by reason label).
    events: Mutex<BTreeMap<String, u64>>,
    /// (entity, kind) → records: kind "loaded", "deleted", "parked".
    records: Mutex<BTreeMap<(String, String), u64>>,
    /// Runs (reconcile syncs) by exit status: the exit code's name.
    runs: Mutex<BTreeMap<String, u64>>,
    lag: Mutex<Lag>,
    /// Rows in `bitrix_import_lead_error` after the last reconcile.
    pub error_rows: AtomicU64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    let mut m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry(key).or_insert(0) += by;
}

fn snapshot<K: Ord + Clone>(m: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    m.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

impl Metrics {
    pub fn event(&self, outcome: &str) {
        bump(&self.events, outcome.to_string(), 1);
    }

    pub fn records(&self, entity: &str, kind: &str, n: u64) {
        if n > 0 {
            bump(&self.records, (entity.to_string(), kind.to_string()), n);
        }
    }

    pub fn run(&self, status: &str) {
        bump(&self.runs, status.to_string(), 1);
    }

    /// One record's lag from its first queued event to its committed row.
    pub fn lag(&self, secs: f64) {
        let secs = secs.max(0.0);
        let mut lag = self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, bound) in LAG_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                lag.counts[i] += 1;
            }
        }
        lag.count += 1;
        lag.sum += secs;
    }

    /// The whole exposition.
    pub fn render(&self, client: &StatsSnapshot, depth: Option<QueueDepth>, now_ms: i64) -> String {
        let mut out = String::new();
        let o = &mut out;
        let n = header(
            o,
            "b24sync_events_total",
            "counter",
            "Outbound and offline events received, by outcome.",
        );
        for (outcome, v) in snapshot(&self.events) {
            let _ = writeln!(o, "{n}{{outcome=\"{outcome}\"}} {v}");
        }
        let n = header(o, "b24sync_records_synced_total", "counter", "Records written by the event worker, by entity and kind (loaded, deleted, parked in the error table).");
        for ((entity, kind), v) in snapshot(&self.records) {
            let _ = writeln!(o, "{n}{{entity=\"{entity}\",kind=\"{kind}\"}} {v}");
        }
        single(
            o,
            "b24sync_requests_total",
            "counter",
            "HTTP requests sent to Bitrix24 (a batch counts once), retries included.",
            client.requests.to_string(),
        );
        single(
            o,
            "b24sync_retries_total",
            "counter",
            "Requests to Bitrix24 that were retries.",
            client.retries.to_string(),
        );
        single(
            o,
            "b24sync_server_seconds_total",
            "counter",
            "Server time Bitrix24 reported for the requests.",
            format!("{:.3}", client.server_secs),
        );
        if let Some(d) = depth {
            single(
                o,
                "b24sync_queue_depth",
                "gauge",
                "Records waiting in b24sync_event_queue.",
                d.rows.to_string(),
            );
            let age = d
                .oldest_ms
                .map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
            single(
                o,
                "b24sync_queue_oldest_age_seconds",
                "gauge",
                "Age of the oldest waiting record's first event.",
                format!("{age:.3}"),
            );
            single(
                o,
                "b24sync_queue_failed",
                "gauge",
                "Waiting records whose processing failed at least once.",
                d.failed.to_string(),
            );
        }
        single(
            o,
            "b24sync_error_rows",
            "gauge",
            "Rows in bitrix_import_lead_error after the last reconcile.",
            self.error_rows.load(Ordering::Relaxed).to_string(),
        );
        let n = header(
            o,
            "b24sync_runs_total",
            "counter",
            "Reconcile syncs, by exit status.",
        );
        for (status, v) in snapshot(&self.runs) {
            let _ = writeln!(o, "{n}{{status=\"{status}\"}} {v}");
        }
        let n = header(
            o,
            "b24sync_event_lag_seconds",
            "histogram",
            "From a record's first queued event to its committed row.",
        );
        let lag = self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, bound) in LAG_BUCKETS.iter().enumerate() {
            let _ = writeln!(o, "{n}_bucket{{le=\"{bound}\"}} {}", lag.counts[i]);
        }
        let _ = writeln!(o, "{n}_bucket{{le=\"+Inf\"}} {}", lag.count);
        let _ = writeln!(o, "{n}_sum {:.3}\n{n}_count {}", lag.sum, lag.count);
        out
    }
}

fn header<'a>(out: &mut String, name: &'a str, kind: &str, help: &str) -> &'a str {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: String) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family() {
        let m = Metrics::default();
        m.event("queued");
        m.records("lead", "loaded", 3);
        m.run("ok");
        m.lag(0.3);
        m.lag(7.0);
        let depth = QueueDepth {
            rows: 2,
            oldest_ms: Some(1_000),
            failed: 0,
        };
        let text = m.render(&StatsSnapshot::default(), Some(depth), 3_500);
        for want in [
            "b24sync_events_total{outcome=\"queued\"} 1",
            "b24sync_records_synced_total{entity=\"lead\",kind=\"loaded\"} 3",
            "b24sync_runs_total{status=\"ok\"} 1",
            "b24sync_queue_depth 2",
            "b24sync_queue_oldest_age_seconds 2.500",
            "b24sync_event_lag_seconds_bucket{le=\"0.5\"} 1",
            "b24sync_event_lag_seconds_bucket{le=\"10\"} 2",
            "b24sync_event_lag_seconds_count 2",
            "# TYPE b24sync_requests_total counter",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }
}
