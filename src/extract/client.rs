//! One HTTP client for one portal.
//!
//! Every call goes through the same path: wait for the [`LeakyBucket`] and the method's
//! [`OperatingBudget`], POST a JSON body, then sort the answer into success, a failure
//! that can heal (retried with backoff, or after the portal's `operating_reset_at`), or a
//! failure that cannot (reported at once with what to do). A body that is not the JSON we
//! asked for — an HTML proxy page, a cut-off answer — is a failed request and is retried,
//! never a shorter page.
//!
//! Secrets: reqwest's errors carry the request URL, which holds the webhook secret, so
//! every reqwest error is stripped of it (`without_url`) before it is shown anywhere.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::auth::{redact_url, Webhook, WebhookError};
use super::limits::{unix_now, LeakyBucket, OperatingBudget, OperatingConfig, RateConfig};
use super::oauth::{OAuthError, OAuthSession, Secret};

/// How the client paces and retries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub rate: RateConfig,
    pub operating: OperatingConfig,
    /// Bitrix24 ends a request after 60 s; wait a little longer than that.
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a call may go without any answer from the portal (connection refused,
    /// timed out, cut off, no Bitrix24 JSON) before it stops retrying and fails with
    /// [`ExtractError::GaveUp`] (exit 5), unless `max_attempts` ends it first. Only
    /// silence counts: the clock restarts whenever Bitrix24 answers, even with a
    /// rate-limit error. No single request may outlast what is left of it.
    pub give_up_after: Duration,
}

/// The default [`ClientConfig::give_up_after`]: well inside a 5-minute schedule.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(120);

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rate: RateConfig::default(),
            operating: OperatingConfig::default(),
            request_timeout: Duration::from_secs(65),
            max_attempts: 10,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            give_up_after: DEFAULT_GIVE_UP_AFTER,
        }
    }
}

/// Why a call failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// OAuth mode: the tokens could not be refreshed or stored.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// Bitrix24 refused: credentials, permissions, plan. Retrying cannot help.
    #[error("Bitrix24 at {portal} refused {method}: {code} ({description}). {hint}")]
    Refused {
        portal: String,
        method: String,
        status: u16,
        code: String,
        description: String,
        hint: String,
    },
    /// The portal could not be reached, or kept failing, for all attempts.
    #[error("Bitrix24 at {portal} did not answer {method} after {attempts} attempts over {secs} s; last problem: {last}")]
    Unreachable {
        portal: String,
        method: String,
        attempts: u32,
        secs: u64,
        last: String,
    },
    /// Nothing answered for the whole `give_up_after` budget.
    #[error("Bitrix24 at {portal} gave no answer to {method} for {} ({}), so b24sync gave up: give_up_after is {}; last problem: {last}. Check the network and the portal address; to wait longer, raise give_up_after (--give-up-after or B24SYNC_GIVE_UP_AFTER).", secs_text(*.waited), attempts_text(*.attempts), secs_text(*.budget))]
    GaveUp {
        portal: String,
        method: String,
        attempts: u32,
        /// How long nothing answered.
        waited: Duration,
        /// The `give_up_after` in force.
        budget: Duration,
        last: String,
    },
    /// The portal's host name does not resolve: a typo in the address (or this
    /// machine's DNS). Retrying does not help, so it is reported at once.
    #[error("the portal host {host} does not resolve ({detail}): check the host name in the webhook URL or --portal (and this machine's DNS settings)")]
    UnknownHost { host: String, detail: String },
    /// The listing stopped short of the leads the run saw at its start, and re-reading
    /// did not get past that point although Bitrix24 still lists leads beyond it. The
    /// run stops there rather than report a partial read as complete.
    #[error("Bitrix24 at {portal} stopped listing leads after ID {cursor}, although it still lists leads above it, up to ID {extent} (the highest this run reads); {rereads} re-reads from ID {cursor} came back empty. Nothing after ID {cursor} was read, and the watermark was not moved: run the sync again later; if it keeps stopping at the same ID, try --paging next and report it with the log.")]
    Incomplete {
        portal: String,
        cursor: i64,
        extent: i64,
        rereads: u32,
    },
    /// The portal answered, successfully, with something we cannot use.
    #[error("Bitrix24 at {portal} answered {method} with something unexpected: {detail}")]
    Protocol {
        portal: String,
        method: String,
        detail: String,
    },
    #[error("interrupted")]
    Cancelled,
}

impl ExtractError {
    /// True for errors about credentials and permissions (the DBA must act in Bitrix24).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ExtractError::Refused { .. }
                | ExtractError::Webhook(_)
                | ExtractError::OAuth(OAuthError::Reauthorize { .. } | OAuthError::Refused { .. })
        )
    }
}

/// "120 s", "1.5 s": whole seconds where that is exact enough.
fn secs_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 || s.fract() < 0.05 {
        format!("{} s", s.round())
    } else {
        format!("{s:.1} s")
    }
}

fn attempts_text(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

/// The `time` object of an answer (every key optional: the docs' examples vary).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResponseTime {
    pub duration: Option<f64>,
    pub processing: Option<f64>,
    pub operating: Option<f64>,
    pub operating_reset_at: Option<f64>,
}

impl ResponseTime {
    fn from_json(v: Option<&Value>) -> ResponseTime {
        let get = |k: &str| v.and_then(|t| t.get(k)).and_then(number);
        ResponseTime {
            duration: get("duration"),
            processing: get("processing"),
            operating: get("operating"),
            operating_reset_at: get("operating_reset_at"),
        }
    }

    /// Server seconds this answer cost (what the operating budget counts).
    pub fn server_secs(&self) -> f64 {
        self.processing.or(self.duration).unwrap_or(0.0)
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
    pub time: ResponseTime,
}

/// One sub-command's outcome inside a `batch`.
#[derive(Debug, Clone, PartialEq)]
pub enum SubResult {
    Ok {
        result: Value,
        total: Option<u64>,
        next: Option<u64>,
    },
    Err {
        code: String,
        description: String,
    },
    /// Not in the answer at all (after a `halt`, or lost by the server).
    Missing,
}

/// Counters a run reports in its summary.
#[derive(Debug, Default)]
pub struct ClientStats {
    requests: AtomicU64,
    retries: AtomicU64,
    server_micros: AtomicU64,
    by_method: Mutex<BTreeMap<String, u64>>,
}

/// The shortest request worth sending: with less of the give-up budget left, give up.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

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

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `https://PORTAL/rest/USER/SECRET/method`.
    Webhook(Webhook),
    /// `{client_endpoint}method` + `auth=<access token>`; refreshed on 401.
    OAuth(Arc<OAuthSession>),
}

/// A Bitrix24 REST client for one webhook or OAuth application.
#[derive(Clone)]
pub struct Bitrix24Client {
    http: reqwest::Client,
    auth: Auth,
    config: ClientConfig,
    bucket: Arc<LeakyBucket>,
    budget: Arc<OperatingBudget>,
    stats: Arc<ClientStats>,
    cancel: CancellationToken,
}

/// How one attempt failed.
enum Failure {
    /// Nothing (or nothing from Bitrix24) answered: the give-up clock runs.
    NoAnswer {
        reason: String,
    },
    /// Try again after a backoff; `rate_limited` also fills our bucket.
    Retry {
        reason: String,
        rate_limited: bool,
    },
    /// Try again once the method's operating window has moved.
    RetryAt {
        reason: String,
        unix: Option<f64>,
    },
    Fatal(ExtractError),
    /// OAuth: 401 `expired_token` / `invalid_token` for this access token.
    TokenRejected {
        token: Secret,
        reason: String,
    },
}

impl Bitrix24Client {
    pub fn new(
        webhook: Webhook,
        config: ClientConfig,
        cancel: CancellationToken,
    ) -> Result<Bitrix24Client, ExtractError> {
        Bitrix24Client::with_auth(Auth::Webhook(webhook), config, cancel)
    }

    /// A client authenticating by webhook or as an OAuth application.
    pub fn with_auth(
        auth: Auth,
        config: ClientConfig,
        cancel: CancellationToken,
    ) -> Result<Bitrix24Client, ExtractError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("b24sync/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(15).min(config.give_up_after))
            // A renamed portal answers 302; following it could turn the POST into a GET
            // and drop the body, so we report it instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ExtractError::Protocol {
                portal: auth_portal(&auth),
                method: "-".into(),
                detail: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        Ok(Bitrix24Client {
            http,
            bucket: Arc::new(LeakyBucket::new(config.rate)),
            budget: Arc::new(OperatingBudget::new(config.operating)),
            auth,
            config,
            stats: Arc::new(ClientStats::default()),
            cancel,
        })
    }

    /// The webhook, in webhook mode.
    pub fn webhook(&self) -> Option<&Webhook> {
        match &self.auth {
            Auth::Webhook(w) => Some(w),
            Auth::OAuth(_) => None,
        }
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The portal's host, for messages.
    pub fn portal(&self) -> String {
        auth_portal(&self.auth)
    }

    /// What the run authenticates as, for the log (never a secret).
    pub fn describe(&self) -> String {
        match &self.auth {
            Auth::Webhook(w) => format!("webhook {w}"),
            Auth::OAuth(s) => format!("OAuth app {} at {}", s.client_id(), s.portal()),
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.stats.requests.load(Ordering::Relaxed),
            retries: self.stats.retries.load(Ordering::Relaxed),
            server_secs: self.stats.server_micros.load(Ordering::Relaxed) as f64 / 1e6,
            by_method: self
                .stats
                .by_method
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }

    /// Call a REST method with a JSON body, retrying what can heal.
    ///
    /// Giving up: an answering portal (even one that keeps saying "rate limited" or
    /// "internal error") is retried up to `max_attempts` times; a silent one — nothing
    /// answers, or nothing that speaks Bitrix24 JSON — also only until `give_up_after`
    /// has passed since it last answered (or since the call began), and no request or
    /// backoff may reach past that moment. A host name that does not resolve fails at once.
    pub async fn call(&self, method: &str, params: &Value) -> Result<ApiResponse, ExtractError> {
        let started = Instant::now();
        let budget = self.config.give_up_after;
        let mut attempt = 0;
        // When the portal stopped answering (None while it answers).
        let mut silent_since: Option<Instant> = None;
        // OAuth: one refresh per call; a token rejected right after a refresh is final.
        let mut refreshed = false;
        let mut last_reason = String::new();
        loop {
            let left = budget.saturating_sub(silent_since.map_or(Duration::ZERO, |t| t.elapsed()));
            if silent_since.is_some() && left < MIN_ATTEMPT_TIME {
                return Err(self.gave_up(method, attempt, started, silent_since, last_reason));
            }
            attempt += 1;
            self.pace(method).await?;
            let attempt_started = Instant::now();
            let left = budget.saturating_sub(silent_since.map_or(Duration::ZERO, |t| t.elapsed()));
            let timeout = self.config.request_timeout.min(left).max(MIN_ATTEMPT_TIME);
            let failure = match self.attempt(method, params, timeout).await {
                Ok(resp) => {
                    self.note_time(method, &resp.time);
                    return Ok(resp);
                }
                Err(f) => f,
            };
            if matches!(failure, Failure::NoAnswer { .. }) {
                silent_since.get_or_insert(attempt_started);
            } else {
                silent_since = None;
            }
            let (reason, wait) = match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::TokenRejected { token, reason } => {
                    let Auth::OAuth(session) = &self.auth else {
                        return Err(ExtractError::Protocol {
                            portal: self.portal(),
                            method: method.to_string(),
                            detail: reason,
                        });
                    };
                    if refreshed {
                        return Err(OAuthError::Reauthorize {
                            client_id: session.client_id().to_string(),
                            portal: session.portal(),
                            reason: format!(
                                "Bitrix24 rejected the access token just obtained: {reason}"
                            ),
                        }
                        .into());
                    }
                    refreshed = true;
                    tracing::info!(method, "{reason}; refreshing the access token");
                    session.refresh_after_rejection(&token).await?;
                    // Repeat at once: not a failure of the portal, so no backoff.
                    attempt -= 1;
                    continue;
                }
                Failure::NoAnswer { reason } => (reason, self.backoff(attempt)),
                Failure::Retry {
                    reason,
                    rate_limited,
                } => {
                    if rate_limited {
                        self.bucket.mark_full();
                    }
                    (reason, self.backoff(attempt))
                }
                Failure::RetryAt { reason, unix } => {
                    let until = unix.or_else(|| self.budget.reset_at(method));
                    let wait = match until {
                        Some(t) if t > unix_now() => {
                            Duration::from_secs_f64((t - unix_now()).min(600.0) + 1.0)
                        }
                        _ => self.backoff(attempt),
                    };
                    self.budget.clear(method);
                    (reason, wait)
                }
            };
            // Silence is bounded by time (above) and by count, whichever ends first;
            // answers that keep failing by count alone.
            if attempt >= self.config.max_attempts {
                return Err(ExtractError::Unreachable {
                    portal: self.portal(),
                    method: method.to_string(),
                    attempts: attempt,
                    secs: started.elapsed().as_secs(),
                    last: reason,
                });
            }
            // A silent portal: no backoff past the budget (the loop's check then gives up).
            let wait = match silent_since {
                Some(t) => wait.min(budget.saturating_sub(t.elapsed())),
                None => wait,
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                method,
                attempt,
                max = self.config.max_attempts,
                wait_ms = wait.as_millis() as u64,
                "{reason}; retrying"
            );
            self.sleep(wait).await?;
            last_reason = reason;
        }
    }

    fn gave_up(
        &self,
        method: &str,
        attempts: u32,
        started: Instant,
        silent_since: Option<Instant>,
        last: String,
    ) -> ExtractError {
        ExtractError::GaveUp {
            portal: self.portal(),
            method: method.to_string(),
            attempts,
            waited: silent_since.map_or(started.elapsed(), |t| t.elapsed()),
            budget: self.config.give_up_after,
            last,
        }
    }

    /// Run up to 50 sub-commands (`name`, `method?query`) in one request. Sub-command
    /// failures come back per name; the call itself fails only when the request does.
    pub async fn batch(
        &self,
        commands: &[(String, String)],
    ) -> Result<BTreeMap<String, SubResult>, ExtractError> {
        let cmd: Map<String, Value> = commands
            .iter()
            .map(|(n, c)| (n.clone(), Value::String(c.clone())))
            .collect();
        let resp = self
            .call("batch", &json!({ "halt": 0, "cmd": cmd }))
            .await?;
        let protocol = |detail: String| ExtractError::Protocol {
            portal: self.portal(),
            method: "batch".into(),
            detail,
        };
        // Own the answer and move each page out of it: a 2,500-lead answer then exists
        // once in memory, not three times.
        let Value::Object(mut body) = resp.result else {
            return Err(protocol("result is not an object".into()));
        };
        let mut section = |key: &str| keyed(body.remove(key), commands);
        let (mut results, errors, totals, nexts, times) = (
            section("result"),
            section("result_error"),
            section("result_total"),
            section("result_next"),
            section("result_time"),
        );
        let mut out = BTreeMap::new();
        for (name, command) in commands {
            let sub_method = command.split('?').next().unwrap_or(command);
            if let Some(t) = times.get(name) {
                self.note_time(sub_method, &ResponseTime::from_json(Some(t)));
            }
            let outcome = if let Some(err) = errors.get(name) {
                SubResult::Err {
                    code: err
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    description: err
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }
            } else if let Some(result) = results.remove(name) {
                SubResult::Ok {
                    result,
                    total: totals.get(name).and_then(number).map(|n| n as u64),
                    next: nexts.get(name).and_then(number).map(|n| n as u64),
                }
            } else {
                SubResult::Missing
            };
            out.insert(name.clone(), outcome);
        }
        Ok(out)
    }

    /// Sort a sub-command's error inside a `batch` (which arrives with HTTP 200): `Ok` with
    /// a reason when re-reading can help, `Err` when it cannot.
    pub fn sub_error(
        &self,
        method: &str,
        code: &str,
        description: &str,
    ) -> Result<String, ExtractError> {
        let body: Map<String, Value> = [
            ("error".to_string(), json!(code)),
            ("error_description".to_string(), json!(description)),
        ]
        .into_iter()
        .collect();
        // Sub-command errors carry no HTTP status of their own; treat unknown ones as
        // server-side trouble (retried a few times) rather than as a refusal.
        match self.classify(method, 500, &body) {
            Failure::Fatal(e) => Err(e),
            Failure::Retry { reason, .. }
            | Failure::NoAnswer { reason }
            | Failure::RetryAt { reason, .. }
            | Failure::TokenRejected { reason, .. } => {
                Ok(format!("{method} in a batch failed: {reason}"))
            }
        }
    }

    /// How long to wait before re-reading after a sub-command error, if at all.
    pub fn sub_error_wait(&self, method: &str, code: &str) -> Option<Duration> {
        match code {
            "OPERATION_TIME_LIMIT" => {
                let wait = self
                    .budget
                    .reset_at(method)
                    .map(|t| t - unix_now())
                    .filter(|w| *w > 0.0)
                    .unwrap_or(60.0);
                self.budget.clear(method);
                Some(Duration::from_secs_f64(wait.min(600.0) + 1.0))
            }
            _ => Some(self.backoff(1)),
        }
    }

    /// Server seconds `method` may still spend in its operating window before this client
    /// starts waiting for the window (see [`OperatingBudget::headroom`]).
    pub fn operating_headroom(&self, method: &str) -> f64 {
        self.budget.headroom(method)
    }

    /// Sleep unless the run is cancelled.
    pub async fn pause(&self, d: Duration) -> Result<(), ExtractError> {
        self.sleep(d).await
    }

    /// Wait for the operating budget and the leaky bucket.
    async fn pace(&self, method: &str) -> Result<(), ExtractError> {
        let delay = self.budget.delay_for(method);
        if !delay.is_zero() {
            tracing::info!(
                method,
                wait_s = delay.as_secs(),
                "close to the method's server-time budget; waiting for it to renew"
            );
            self.sleep(delay).await?;
            self.budget.clear(method);
        }
        tokio::select! {
            _ = self.cancel.cancelled() => Err(ExtractError::Cancelled),
            _ = self.bucket.acquire() => Ok(()),
        }
    }

    async fn sleep(&self, d: Duration) -> Result<(), ExtractError> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(ExtractError::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.config.backoff_max);
        // Jitter, so that clients sharing a portal do not retry in step.
        capped.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
    }

    fn note_time(&self, method: &str, time: &ResponseTime) {
        self.budget
            .record(method, time.operating, time.operating_reset_at);
        if method != "batch" || time.operating.is_none() {
            let micros = (time.server_secs() * 1e6) as u64;
            self.stats
                .server_micros
                .fetch_add(micros, Ordering::Relaxed);
        }
    }

    async fn attempt(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<ApiResponse, Failure> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.stats.by_method.lock() {
            *m.entry(method.to_string()).or_default() += 1;
        }
        // OAuth: the token goes into the JSON body (never the URL, which errors may show).
        let (url, body, token) = match &self.auth {
            Auth::Webhook(w) => (w.method_url(method), None, None),
            Auth::OAuth(session) => {
                let (token, endpoint) = session
                    .credentials()
                    .await
                    .map_err(|e| Failure::Fatal(e.into()))?;
                let url = endpoint.join(method).map_err(|e| {
                    Failure::Fatal(ExtractError::Protocol {
                        portal: self.portal(),
                        method: method.to_string(),
                        detail: format!("cannot build the method URL: {e}"),
                    })
                })?;
                let mut body = match params {
                    Value::Object(m) => m.clone(),
                    _ => Map::new(),
                };
                body.insert("auth".into(), Value::String(token.expose().to_string()));
                (url, Some(Value::Object(body)), Some(token))
            }
        };
        let resp = self
            .http
            .post(url)
            .header("Accept", "application/json")
            .json(body.as_ref().unwrap_or(params))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| match dns_failure(&e) {
                Some(detail) => Failure::Fatal(ExtractError::UnknownHost {
                    host: self.portal(),
                    detail,
                }),
                None => Failure::NoAnswer {
                    reason: describe_reqwest(&e),
                },
            })?;
        let status = resp.status();
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url::Url::parse(l).ok())
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "another address".into());
            return Err(Failure::Fatal(self.refused(
                method,
                status.as_u16(),
                "PORTAL_MOVED",
                &format!("HTTP {status}: the portal now answers at {to}"),
                "The portal was renamed: update the webhook URL to the new address.",
            )));
        }
        let bytes = resp.bytes().await.map_err(|e| Failure::NoAnswer {
            reason: format!("the answer was cut off ({})", describe_reqwest(&e)),
        })?;
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        match parsed {
            Some(Value::Object(body)) if body.contains_key("error") => {
                let code = body.get("error").and_then(Value::as_str).unwrap_or("");
                match token {
                    Some(token) if matches!(code, "expired_token" | "invalid_token") => {
                        Err(Failure::TokenRejected {
                            token,
                            reason: format!("HTTP {status} {code}"),
                        })
                    }
                    _ => Err(self.classify(method, status.as_u16(), &body)),
                }
            }
            Some(Value::Object(mut body)) if status.is_success() => match body.remove("result") {
                Some(result) => Ok(ApiResponse {
                    result,
                    total: body.get("total").and_then(number).map(|n| n as u64),
                    next: body.get("next").and_then(number).map(|n| n as u64),
                    time: ResponseTime::from_json(body.get("time")),
                }),
                None => Err(Failure::Retry {
                    reason: "an answer without \"result\"".into(),
                    rate_limited: false,
                }),
            },
            // A proxy's error page or a garbled body: Bitrix24 itself did not answer.
            _ if status.is_success() || status.is_server_error() || status.as_u16() == 429 => {
                Err(Failure::NoAnswer {
                    reason: format!(
                        "HTTP {status} with {} instead of Bitrix24 JSON",
                        describe_body(&bytes)
                    ),
                })
            }
            _ => Err(Failure::Fatal(self.refused(
                method,
                status.as_u16(),
                "",
                &format!("HTTP {status} with {}", describe_body(&bytes)),
                "Check the webhook URL: the address does not answer like a Bitrix24 REST endpoint.",
            ))),
        }
    }

    /// Sort a Bitrix24 error envelope (`{"error", "error_description"}`) into retry or fatal.
    fn classify(&self, method: &str, status: u16, body: &Map<String, Value>) -> Failure {
        let code = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let reason = format!("HTTP {status} {code}: {description}");
        let fatal =
            |hint: &str| Failure::Fatal(self.refused(method, status, &code, &description, hint));
        match code.as_str() {
            "QUERY_LIMIT_EXCEEDED" => Failure::Retry { reason, rate_limited: true },
            "OPERATION_TIME_LIMIT" => Failure::RetryAt {
                reason,
                unix: ResponseTime::from_json(body.get("time")).operating_reset_at,
            },
            "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => Failure::Retry { reason, rate_limited: false },
            "NO_AUTH_FOUND" | "expired_token" | "invalid_token" | "WRONG_AUTH_TYPE"
                if matches!(self.auth, Auth::OAuth(_)) =>
            {
                fatal("Bitrix24 did not accept the application's token: run `b24sync auth` again for this app.")
            }
            "NO_AUTH_FOUND" | "expired_token" | "invalid_token" | "WRONG_AUTH_TYPE" => fatal(
                "Check the webhook URL (user ID and secret): the webhook may have been deleted, expired or regenerated in Bitrix24.",
            ),
            "insufficient_scope" => fatal("The webhook lacks a permission: edit it in Bitrix24 and tick CRM (crm)."),
            "ACCESS_DENIED" => fatal("REST is not available on this portal's plan, or the webhook's user may not use it."),
            "INVALID_CREDENTIALS" | "user_access_error" => {
                fatal("The webhook's user has no right to read leads: give that user CRM read access.")
            }
            "METHOD_CONFIRM_WAITING" => fatal("A portal administrator must approve this method for the webhook."),
            "PORTAL_DELETED" => fatal("The portal was deleted or closed."),
            "OVERLOAD_LIMIT" => fatal("Bitrix24 support has blocked REST calls for this portal: contact Bitrix24 support."),
            "ERROR_METHOD_NOT_FOUND" => fatal("This portal does not know the method (an old on-premise version?)."),
            "" if description.to_ascii_lowercase().contains("access denied") => {
                fatal("The webhook's user has no right to read leads: give that user CRM read access.")
            }
            _ if status >= 500 => Failure::Retry { reason, rate_limited: false },
            _ => fatal("This request was rejected as invalid; please report it with the log."),
        }
    }

    fn refused(
        &self,
        method: &str,
        status: u16,
        code: &str,
        description: &str,
        hint: &str,
    ) -> ExtractError {
        ExtractError::Refused {
            portal: self.portal(),
            method: method.to_string(),
            status,
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code.to_string()
            },
            description: description.to_string(),
            hint: hint.to_string(),
        }
    }
}

/// A batch section keyed by command name; numeric names may arrive as a JSON array.
fn keyed(section: Option<Value>, commands: &[(String, String)]) -> Map<String, Value> {
    match section {
        Some(Value::Object(m)) => m,
        Some(Value::Array(items)) => commands.iter().map(|(n, _)| n.clone()).zip(items).collect(),
        _ => Map::new(),
    }
}

/// JSON number, or a number written as a string (the legacy API does both).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn auth_portal(auth: &Auth) -> String {
    match auth {
        Auth::Webhook(w) => w.portal(),
        Auth::OAuth(s) => s.portal(),
    }
}

/// What went wrong at the HTTP level, without the URL (it holds the webhook secret).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the answer"
    } else if e.is_request() {
        "the connection failed"
    } else {
        "HTTP error"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    let detail = strip_urls(&detail);
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

/// The resolver's complaint when the host name did not resolve (hyper's connector
/// reports it as a "dns error" in the error's source chain), without any URL.
fn dns_failure(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.to_string() == "dns error" {
            let cause = s.source().map(|c| strip_urls(&c.to_string()));
            return Some(cause.unwrap_or_else(|| "dns error".into()));
        }
        source = s.source();
    }
    None
}

/// Belt and braces: no URL (and so no webhook secret) ever leaves through an error text;
/// a word that looks like one is shown redacted.
fn strip_urls(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            if w.contains("://") || w.contains("/rest/") || w.contains('@') {
                let core = w.trim_matches(|c: char| "()<>[]\"',;".contains(c));
                w.replace(core, &redact_url(core))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_body(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim_start();
    if t.is_empty() {
        "an empty body".into()
    } else if t.starts_with('<') {
        "an HTML page".into()
    } else if t.starts_with('{') || t.starts_with('[') {
        format!("incomplete or malformed JSON ({} bytes)", bytes.len())
    } else {
        format!("a non-JSON body ({} bytes)", bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_described_without_echoing_them() {
        assert_eq!(describe_body(b"<html>502</html>"), "an HTML page");
        assert_eq!(
            describe_body(b"{\"result\": [1,"),
            "incomplete or malformed JSON (14 bytes)"
        );
        assert_eq!(describe_body(b""), "an empty body");
    }

    #[test]
    fn urls_never_survive_in_error_texts() {
        let s = strip_urls("error sending request for url (https://x.bitrix24.ru/rest/1/SECRET/crm.lead.list.json)");
        assert!(!s.contains("SECRET"), "{s}");
    }

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(secs_text(Duration::from_secs(120)), "120 s");
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(secs_text(Duration::from_millis(2010)), "2 s");
        assert_eq!(secs_text(Duration::from_millis(12_600)), "13 s");
        assert_eq!(attempts_text(1), "1 attempt");
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        assert_eq!(number(&json!(5)), Some(5.0));
        assert_eq!(number(&json!("50")), Some(50.0));
        assert_eq!(number(&json!(null)), None);
    }
}
