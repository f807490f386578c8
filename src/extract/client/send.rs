//! Sending: one request at a time through the [`LeakyBucket`](crate::extract::limits::LeakyBucket)
//! and the method's operating budget, POSTed as JSON; the answer sorted into success or a
//! [`Failure`]; failures that can heal retried with backoff, within `max_attempts` and the
//! give-up budget (`giveup.rs`).

use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Map, Value};

use super::answer::{ApiResponse, ResponseTime};
use super::envelope::Failure;
use super::giveup::Silence;
use super::text::{describe_reqwest, dns_failure};
use super::{Auth, Bitrix24Client, ExtractError};
use crate::extract::limits::unix_now;
use crate::extract::oauth::OAuthError;
use crate::model::oauth::Secret;

impl Bitrix24Client {
    /// Call a REST method with a JSON body, retrying what can heal.
    ///
    /// Giving up: an answering portal (even one that keeps saying "rate limited" or
    /// "internal error") is retried up to `max_attempts` times; a silent one — nothing
    /// answers, or nothing that speaks Bitrix24 JSON — also only until `give_up_after`
    /// has passed since it last answered (or since the call began), and no request or
    /// backoff may reach past that moment. A host name that does not resolve fails at once.
    pub async fn call(&self, method: &str, params: &Value) -> Result<ApiResponse, ExtractError> {
        let mut silence = Silence::new(self.config.give_up_after);
        let mut attempt = 0;
        // OAuth: one refresh per call; a token rejected right after a refresh is final.
        let mut refreshed = false;
        let mut last_reason = String::new();
        loop {
            if silence.exhausted() {
                return Err(silence.gave_up(self.portal(), method, attempt, last_reason));
            }
            attempt += 1;
            self.pace(method).await?;
            let attempt_started = Instant::now();
            let timeout = silence.timeout(self.config.request_timeout);
            let failure = match self.attempt(method, params, timeout).await {
                Ok(resp) => {
                    self.note_time(method, &resp.time);
                    return Ok(resp);
                }
                Err(f) => f,
            };
            silence.observe(matches!(failure, Failure::NoAnswer { .. }), attempt_started);
            let (reason, wait) = match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::TokenRejected { token, reason } => {
                    self.refresh_rejected(method, &token, reason, &mut refreshed)
                        .await?;
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
                    (reason, self.operating_wait(method, unix, attempt))
                }
            };
            // Silence is bounded by time (above) and by count, whichever ends first;
            // answers that keep failing by count alone.
            if attempt >= self.config.max_attempts {
                return Err(ExtractError::Unreachable {
                    portal: self.portal(),
                    method: method.to_string(),
                    attempts: attempt,
                    secs: silence.elapsed().as_secs(),
                    last: reason,
                });
            }
            // A silent portal: no backoff past the budget (the loop's check then gives up).
            let wait = silence.cap(wait);
            self.stats.count_retry();
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

    /// OAuth: the portal rejected `token`; refresh it, unless this call already did (then
    /// the authorization itself is gone).
    async fn refresh_rejected(
        &self,
        method: &str,
        token: &Secret,
        reason: String,
        refreshed: &mut bool,
    ) -> Result<(), ExtractError> {
        let Auth::OAuth(session) = &self.auth else {
            return Err(ExtractError::Protocol {
                portal: self.portal(),
                method: method.to_string(),
                detail: reason,
            });
        };
        if *refreshed {
            return Err(OAuthError::Reauthorize {
                client_id: session.client_id().to_string(),
                portal: session.portal(),
                reason: format!("Bitrix24 rejected the access token just obtained: {reason}"),
            }
            .into());
        }
        *refreshed = true;
        tracing::info!(method, "{reason}; refreshing the access token");
        session.refresh_after_rejection(token).await?;
        Ok(())
    }

    /// How long to wait for the method's operating window to move (`unix`: when the
    /// portal said it does).
    fn operating_wait(&self, method: &str, unix: Option<f64>, attempt: u32) -> Duration {
        let until = unix.or_else(|| self.budget.reset_at(method));
        let wait = match until {
            Some(t) if t > unix_now() => Duration::from_secs_f64((t - unix_now()).min(600.0) + 1.0),
            _ => self.backoff(attempt),
        };
        self.budget.clear(method);
        wait
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

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.config.backoff_max);
        // Jitter, so that clients sharing a portal do not retry in step.
        capped.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
    }

    /// Record an answer's server-time report (the operating budget, the stats).
    pub(super) fn note_time(&self, method: &str, time: &ResponseTime) {
        self.budget
            .record(method, time.operating, time.operating_reset_at);
        if method != "batch" || time.operating.is_none() {
            self.stats.add_server_secs(time.server_secs());
        }
    }

    /// One HTTP request: sent, and its answer sorted.
    async fn attempt(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<ApiResponse, Failure> {
        self.stats.count_request(method);
        let (url, body, token) = self.request(method, params).await?;
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
        self.sort_answer(method, status, &bytes, token)
    }

    /// Where the request goes and, in OAuth mode, its body with the access token (the
    /// token goes into the JSON body, never the URL, which errors may show).
    async fn request(
        &self,
        method: &str,
        params: &Value,
    ) -> Result<(url::Url, Option<Value>, Option<Secret>), Failure> {
        Ok(match &self.auth {
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
        })
    }
}
