//! The two limits a Bitrix24 portal enforces, kept on the client side so that we slow down
//! *before* the portal says no (see the Bitrix24 REST docs on limits).
//!
//! - [`LeakyBucket`]: every HTTP request (a whole `batch` included) adds 1 to a counter that
//!   drains at `per_second`; above `burst` the portal answers 503 `QUERY_LIMIT_EXCEEDED`.
//! - [`OperatingBudget`]: each method may spend about 480 s of server time per 10 minutes;
//!   over it the portal answers 429 `OPERATION_TIME_LIMIT` for that method. Responses report
//!   the method's spend (`time.operating`) and when the oldest minute leaves the window
//!   (`time.operating_reset_at`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
// tokio's clock, so that paused-time tests see the bucket drain.
use tokio::time::Instant;

/// Request-rate settings (the portal's plan).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateConfig {
    /// Every plan but Enterprise: 2 requests/s, burst 50.
    fn default() -> Self {
        RateConfig {
            per_second: 2.0,
            burst: 50,
        }
    }
}

/// A client-side copy of the portal's leaky bucket.
#[derive(Debug)]
pub struct LeakyBucket {
    config: RateConfig,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    level: f64,
    at: Instant,
}

impl LeakyBucket {
    pub fn new(config: RateConfig) -> LeakyBucket {
        LeakyBucket {
            config,
            state: Mutex::new(BucketState {
                level: 0.0,
                at: Instant::now(),
            }),
        }
    }

    pub fn config(&self) -> RateConfig {
        self.config
    }

    /// The level we fill up to: one request short of the portal's burst, because the portal
    /// drains its bucket by its own clock from when each request *arrives*, and uneven
    /// network delays can bring two requests closer together there than they left here.
    fn capacity(&self) -> f64 {
        (self.config.burst as f64 - 1.0).max(1.0)
    }

    /// Wait until one more request fits, then count it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = lock(&self.state);
                self.drain(&mut s);
                if s.level + 1.0 <= self.capacity() {
                    s.level += 1.0;
                    return;
                }
                Duration::from_secs_f64((s.level + 1.0 - self.capacity()) / self.config.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The portal said 503: its bucket is full (other clients on the same IP share it),
    /// so ours should be too.
    pub fn mark_full(&self) {
        let mut s = lock(&self.state);
        self.drain(&mut s);
        s.level = self.capacity();
    }

    fn drain(&self, s: &mut BucketState) {
        let now = Instant::now();
        let drained = now.duration_since(s.at).as_secs_f64() * self.config.per_second;
        s.level = (s.level - drained).max(0.0);
        s.at = now;
    }
}

/// Operating-time settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingConfig {
    /// Server seconds a method may spend per window (480 on cloud portals).
    pub budget_secs: f64,
    /// Start waiting for the window to move when a method has spent this share of it.
    pub slow_down_at: f64,
}

impl Default for OperatingConfig {
    fn default() -> Self {
        OperatingConfig {
            budget_secs: 480.0,
            slow_down_at: 0.8,
        }
    }
}

/// What the portal last told us about one method's operating time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MethodSpend {
    operating: f64,
    /// Unix seconds when the oldest bucket of the window expires.
    reset_at: Option<f64>,
}

/// Tracks `time.operating` per method and delays a method's next call while it is close
/// to its budget, so the portal never has to answer 429.
#[derive(Debug)]
pub struct OperatingBudget {
    config: OperatingConfig,
    spend: Mutex<HashMap<String, MethodSpend>>,
}

impl OperatingBudget {
    pub fn new(config: OperatingConfig) -> OperatingBudget {
        OperatingBudget {
            config,
            spend: Mutex::new(HashMap::new()),
        }
    }

    /// Record what a response said about a method.
    pub fn record(&self, method: &str, operating: Option<f64>, reset_at: Option<f64>) {
        let Some(operating) = operating else { return };
        lock(&self.spend).insert(
            method.to_string(),
            MethodSpend {
                operating,
                reset_at,
            },
        );
    }

    /// The last `operating_reset_at` seen for a method (unix seconds).
    pub fn reset_at(&self, method: &str) -> Option<f64> {
        lock(&self.spend).get(method).and_then(|s| s.reset_at)
    }

    /// How long to wait before calling `method` again (zero when well within budget).
    pub fn delay_for(&self, method: &str) -> Duration {
        let spend = lock(&self.spend).get(method).copied();
        match spend {
            Some(MethodSpend {
                operating,
                reset_at: Some(reset_at),
            }) if operating >= self.config.budget_secs * self.config.slow_down_at => {
                let wait = reset_at - unix_now();
                if wait > 0.0 {
                    Duration::from_secs_f64(wait.min(600.0))
                } else {
                    Duration::ZERO
                }
            }
            _ => Duration::ZERO,
        }
    }

    /// Server seconds `method` may still spend before calls to it start waiting for the
    /// window to move (the slow-down share of the budget minus the last reported spend;
    /// the whole share when nothing was reported). The export sizes its parallel chains
    /// by it.
    pub fn headroom(&self, method: &str) -> f64 {
        let spent = lock(&self.spend).get(method).map_or(0.0, |s| s.operating);
        (self.config.budget_secs * self.config.slow_down_at - spent).max(0.0)
    }

    /// Forget a method's spend once we have waited for its window to move.
    pub fn clear(&self, method: &str) {
        lock(&self.spend).remove(method);
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A poisoned lock only means another thread panicked mid-update of plain numbers: keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_drain_rate() {
        let bucket = LeakyBucket::new(RateConfig {
            per_second: 2.0,
            burst: 5,
        });
        let start = tokio::time::Instant::now();
        // One short of the portal's burst of 5: a margin for network jitter.
        for _ in 0..4 {
            bucket.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the burst is immediate"
        );
        for _ in 0..4 {
            bucket.acquire().await;
        }
        // 4 more at 2/s take about 2 s
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&took), "took {took}");
    }

    #[test]
    fn budget_slows_down_near_the_limit_only() {
        let b = OperatingBudget::new(OperatingConfig {
            budget_secs: 10.0,
            slow_down_at: 0.8,
        });
        b.record("crm.lead.list", Some(5.0), Some(unix_now() + 30.0));
        assert_eq!(b.delay_for("crm.lead.list"), Duration::ZERO);
        b.record("crm.lead.list", Some(9.0), Some(unix_now() + 30.0));
        let d = b.delay_for("crm.lead.list").as_secs_f64();
        assert!((28.0..=30.0).contains(&d), "{d}");
        assert_eq!(b.delay_for("batch"), Duration::ZERO, "per method");
        assert!(
            (b.headroom("crm.lead.list") - 0.0).abs() < 1e-9,
            "over the share"
        );
        b.record("crm.lead.list", Some(3.0), None);
        assert!((b.headroom("crm.lead.list") - 5.0).abs() < 1e-9);
        b.clear("crm.lead.list");
        assert_eq!(b.delay_for("crm.lead.list"), Duration::ZERO);
        assert!(
            (b.headroom("crm.lead.list") - 8.0).abs() < 1e-9,
            "nothing reported"
        );
    }
}
