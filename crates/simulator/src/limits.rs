//! The portal's two limits and the cost model that feeds the second.
//!
//! - **Leaky bucket** (requests): each HTTP request adds 1 to a counter that drains at
//!   `per_second`; a request that would lift it above `burst` gets 503 and adds nothing.
//! - **Operating limit** (server time): per method, simulated execution seconds are summed
//!   in up to 10 one-minute buckets; a bucket opens at the first call after the previous
//!   one is a minute old and expires 10 minutes after it opened. While the sum is over the
//!   budget the method answers 429 until the oldest bucket expires.
//!
//! Both run on the portal's monotonic clock (real time + `advance_clock`), so tests can
//! jump ahead instead of sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::RateLimit;

/// The operating-time budget of one method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingLimit {
    /// Seconds of server time a method may use per window (cloud: 480).
    pub budget_secs: f64,
    /// Window length in seconds (600 = 10 buckets of a minute).
    pub window_secs: u64,
}

impl Default for OperatingLimit {
    fn default() -> Self {
        OperatingLimit {
            budget_secs: 480.0,
            window_secs: 600,
        }
    }
}

/// Simulated server time of a call. Defaults are scaled from the Bitrix24 docs' one
/// measurement (2,387,743 leads: 49.9 s per page with COUNT, 0.097 s without).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Fixed cost of any call (bootstrap, auth, permissions): 20 ms.
    pub base: f64,
    /// Per row and selected field: 20 µs, so a 50-row page of `*` (≈ 50 fields) is ≈ 50 ms,
    /// close to the measured 0.097 s without COUNT.
    pub per_row_field: f64,
    /// Multi-fields and user fields need extra joins: they weigh this many plain fields.
    pub join_field_weight: f64,
    /// Per row skipped by `start` (OFFSET scans): 2 µs, so `start=1_000_000` adds 2 s.
    pub per_offset_row: f64,
    /// Per filtered row counted for `total` (start ≥ 0): 49.9 s / 2.39 M ≈ 20 µs.
    pub per_counted_row: f64,
    /// The server sleeps `server time × sleep_scale` (0 = answer at once) so benchmarks
    /// can feel the cost.
    pub sleep_scale: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            base: 0.02,
            per_row_field: 20e-6,
            join_field_weight: 3.0,
            per_offset_row: 2e-6,
            per_counted_row: 20e-6,
            sleep_scale: 0.0,
        }
    }
}

/// Request counter of the leaky bucket.
pub(crate) struct LeakyBucket {
    limit: RateLimit,
    level: f64,
    at: f64,
}

impl LeakyBucket {
    pub fn new(limit: RateLimit) -> Self {
        LeakyBucket {
            limit,
            level: 0.0,
            at: 0.0,
        }
    }

    /// `true` = admitted (and counted); `false` = answer 503.
    pub fn admit(&mut self, now: f64) -> bool {
        let drained = (now - self.at).max(0.0) * self.limit.per_second;
        self.level = (self.level - drained).max(0.0);
        self.at = now;
        if self.level + 1.0 > f64::from(self.limit.burst) {
            false
        } else {
            self.level += 1.0;
            true
        }
    }
}

#[derive(Default)]
struct MethodUsage {
    /// (opened at, seconds) oldest first.
    buckets: VecDeque<(f64, f64)>,
}

/// Operating-time accounting per method.
pub(crate) struct Operating {
    limit: OperatingLimit,
    methods: HashMap<String, MethodUsage>,
}

/// What a response reports in `time.operating` / `time.operating_reset_at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OperatingState {
    pub operating: f64,
    /// Monotonic seconds at which the oldest bucket expires (None = no usage).
    pub reset_at: Option<f64>,
    pub blocked: bool,
}

impl Operating {
    pub fn new(limit: OperatingLimit) -> Self {
        Operating {
            limit,
            methods: HashMap::new(),
        }
    }

    fn expire(&mut self, method: &str, now: f64) -> Option<&mut MethodUsage> {
        let window = self.limit.window_secs as f64;
        let u = self.methods.get_mut(method)?;
        while u.buckets.front().is_some_and(|(t, _)| t + window <= now) {
            u.buckets.pop_front();
        }
        Some(u)
    }

    pub fn state(&mut self, method: &str, now: f64) -> OperatingState {
        let window = self.limit.window_secs as f64;
        let budget = self.limit.budget_secs;
        match self.expire(method, now) {
            Some(u) => {
                let operating: f64 = u.buckets.iter().map(|(_, s)| s).sum();
                OperatingState {
                    operating,
                    reset_at: u.buckets.front().map(|(t, _)| t + window),
                    blocked: operating > budget,
                }
            }
            None => OperatingState {
                operating: 0.0,
                reset_at: None,
                blocked: false,
            },
        }
    }

    pub fn charge(&mut self, method: &str, now: f64, secs: f64) -> OperatingState {
        // One bucket per minute: a new one opens when the newest is a minute old.
        let bucket_len = (self.limit.window_secs as f64 / 10.0).max(1.0);
        self.expire(method, now);
        let u = self.methods.entry(method.to_string()).or_default();
        match u.buckets.back_mut() {
            Some((t, s)) if now - *t < bucket_len => *s += secs,
            _ => u.buckets.push_back((now, secs)),
        }
        self.state(method, now)
    }
}

/// A snapshot of what the server saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// Every HTTP request that reached the server.
    pub http_requests: u64,
    /// Served calls per method; a batch counts once under "batch" and each sub-call under
    /// its own method.
    pub by_method: BTreeMap<String, u64>,
    /// 503 QUERY_LIMIT_EXCEEDED answers of the leaky bucket.
    pub rate_limited: u64,
    /// 429 OPERATION_TIME_LIMIT answers of the operating limit (whole requests and batch
    /// sub-calls); injected faults count only in `faults_served`.
    pub operating_limited: u64,
    /// Requests that met an injected fault.
    pub faults_served: u64,
    /// Arrival of each HTTP request, ms since start (to check client pacing).
    pub arrivals_ms: Vec<u64>,
    /// Simulated server time charged, summed.
    pub server_time_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains() {
        let mut b = LeakyBucket::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        assert!(b.admit(0.0) && b.admit(0.0) && b.admit(0.0));
        assert!(!b.admit(0.0));
        assert!(b.admit(0.5)); // drained 1
        assert!(!b.admit(0.5));
    }

    #[test]
    fn operating_buckets_expire() {
        let mut o = Operating::new(OperatingLimit {
            budget_secs: 10.0,
            window_secs: 600,
        });
        o.charge("m", 0.0, 6.0);
        o.charge("m", 30.0, 5.0); // same bucket
        let s = o.state("m", 61.0);
        assert!(s.blocked);
        assert_eq!(s.reset_at, Some(600.0));
        o.charge("m", 100.0, 0.0);
        assert!(!o.state("m", 600.0).blocked);
        assert!(!o.state("other", 1.0).blocked);
    }
}
