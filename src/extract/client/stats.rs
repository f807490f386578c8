//! The request counters a run reports in its summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Bitrix24Client;

/// Counters a run reports in its summary.
#[derive(Debug, Default)]
pub struct ClientStats {
    requests: AtomicU64,
    retries: AtomicU64,
    server_micros: AtomicU64,
    by_method: Mutex<BTreeMap<String, u64>>,
}

/// A snapshot of [`ClientStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// HTTP requests sent (a batch counts once), retries included.
    pub requests: u64,
    pub retries: u64,
    /// Server time Bitrix24 reported, summed.
    pub server_secs: f64,
    pub by_method: BTreeMap<String, u64>,
}

impl ClientStats {
    /// One HTTP request of `method` sent.
    pub(super) fn count_request(&self, method: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.by_method.lock() {
            *m.entry(method.to_string()).or_default() += 1;
        }
    }

    pub(super) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Server time Bitrix24 reported for one answer.
    pub(super) fn add_server_secs(&self, secs: f64) {
        let micros = (secs * 1e6) as u64;
        self.server_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            server_secs: self.server_micros.load(Ordering::Relaxed) as f64 / 1e6,
            by_method: self.by_method.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

impl Bitrix24Client {
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}
