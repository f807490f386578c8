//! What came back, sorted into what to do: a result; Bitrix24's error envelope
//! (`{"error", "error_description"}`) as a retry, a retry once the operating window moves,
//! a token refresh, or a typed [`ExtractError`] that says who must act; anything else (a
//! proxy's page, a cut-off body) as no answer from Bitrix24 at all.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::answer::{number, ApiResponse, ResponseTime};
use super::text::describe_body;
use super::{Auth, Bitrix24Client, ExtractError};
use crate::extract::limits::unix_now;
use crate::model::oauth::Secret;

/// How one attempt failed.
pub(super) enum Failure {
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
    /// Sort what came back (`bytes`, with HTTP `status`) into a success or a [`Failure`].
    /// `token`: the access token the request carried, in OAuth mode.
    pub(super) fn sort_answer(
        &self,
        method: &str,
        status: reqwest::StatusCode,
        bytes: &[u8],
        token: Option<Secret>,
    ) -> Result<ApiResponse, Failure> {
        let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
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
                        describe_body(bytes)
                    ),
                })
            }
            _ => Err(Failure::Fatal(self.refused(
                method,
                status.as_u16(),
                "",
                &format!("HTTP {status} with {}", describe_body(bytes)),
                "Check the webhook URL: the address does not answer like a Bitrix24 REST endpoint.",
            ))),
        }
    }

    /// Sort a Bitrix24 error envelope (`{"error", "error_description"}`) into retry or fatal.
    pub(super) fn classify(&self, method: &str, status: u16, body: &Map<String, Value>) -> Failure {
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

    pub(super) fn refused(
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
}
