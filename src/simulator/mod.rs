//! A Bitrix24 portal stand-in: an HTTP server on loopback that speaks the documented REST
//! wire format (`../shared/docs/bitrix24-rest.md`), with seeded leads, the portal's limits
//! and injectable faults. Used by `b24sync demo`, `b24sync simulator`, the tests and the
//! benchmarks. Where the fact sheet is unsure, the simulator is the strict side.
//!
//! SPEC (to be implemented by the simulator work; signatures are the contract):
//! - `Simulator::start(config)` binds 127.0.0.1:0 (or `config.port`) and serves until dropped
//!   or `shutdown`.
//! - Webhook URL: `{base}/rest/{user_id}/{secret}/` + method, `.json` suffix optional.
//!   A wrong user/secret answers 401 `NO_AUTH_FOUND` "Wrong authorization data".

use std::time::Duration;

/// The portal's request-rate limit (leaky bucket): each request adds 1, the counter drains
/// `per_second`; a request that would take it above `burst` is answered 503 `QUERY_LIMIT_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// Every plan but Enterprise: 2 requests/s, burst 50.
    pub const STANDARD: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 50,
    };
    /// Enterprise: 5 requests/s, burst 250.
    pub const ENTERPRISE: RateLimit = RateLimit {
        per_second: 5.0,
        burst: 250,
    };
}

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many leads to generate (IDs 1..=leads unless `id_step` spreads them).
    pub leads: usize,
    /// Seed of the generator: the same seed gives the same portal.
    pub seed: u64,
    /// Distance between consecutive generated IDs (1 = dense).
    pub id_step: u32,
    /// The webhook's user and secret.
    pub webhook_user: u32,
    pub webhook_secret: String,
    /// The portal's time zone offset in seconds east of UTC (Moscow: 3 * 3600).
    pub utc_offset_secs: i32,
    /// `None` = no rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Added to every response.
    pub latency: Duration,
    /// Name of the generated list-type (multiple) user field ("solution").
    pub solution_field: String,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            port: 0,
            leads: 1000,
            seed: 1,
            id_step: 1,
            webhook_user: 1,
            webhook_secret: "sim0secret0webhook".to_string(),
            utc_offset_secs: 3 * 3600,
            rate_limit: Some(RateLimit::STANDARD),
            latency: Duration::ZERO,
            solution_field: "UF_CRM_SOLUTION".to_string(),
        }
    }
}
