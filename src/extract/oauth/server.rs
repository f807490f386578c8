//! The OAuth server's token endpoint: exchanging an authorization code, refreshing a pair,
//! and reading its answers, never showing a secret in a message.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

use super::OAuthError;
use crate::model::oauth::{Secret, StoredApp, TokenSet};

/// Bitrix24's `expires_in` when an answer lacks it.
const DEFAULT_EXPIRES_IN: i64 = 3600;
/// Attempts at the token endpoint for failures where the request did not get an answer.
const TOKEN_ATTEMPTS: u32 = 3;

impl TokenSet {
    /// Reads a token endpoint answer. `fallback_endpoint` is used when the answer has no
    /// `client_endpoint` (the docs show it, but be lenient).
    pub fn from_response(
        v: &Value,
        now: DateTime<Utc>,
        fallback_endpoint: Option<&str>,
    ) -> Result<TokenSet, String> {
        let text = |k: &str| -> Option<String> {
            match v.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let access = text("access_token").filter(|s| !s.is_empty());
        let refresh = text("refresh_token").filter(|s| !s.is_empty());
        let (Some(access), Some(refresh)) = (access, refresh) else {
            return Err("the answer has no access_token or refresh_token".into());
        };
        let expires_in = text("expires_in").unwrap_or_else(|| DEFAULT_EXPIRES_IN.to_string());
        let secs = expires_in
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_EXPIRES_IN);
        let client_endpoint = text("client_endpoint")
            .filter(|s| !s.is_empty())
            .or_else(|| fallback_endpoint.map(str::to_string))
            .ok_or("the answer has no client_endpoint")?;
        let domain = host_of(&client_endpoint)
            .ok_or("the answer's client_endpoint is not a URL with a host")?;
        Ok(TokenSet {
            access_token: Secret::new(access),
            refresh_token: Secret::new(refresh),
            expires_in,
            expires_at: now.timestamp() + secs,
            obtained_at: now,
            scope: text("scope").unwrap_or_default(),
            domain,
            member_id: text("member_id").unwrap_or_default(),
            user_id: text("user_id").unwrap_or_default(),
            client_endpoint,
            server_endpoint: text("server_endpoint"),
        })
    }
}

/// `host[:port]` of a URL.
fn host_of(url: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// The OAuth server's token endpoint.
#[derive(Clone)]
pub struct OAuthServer {
    base: Url,
    http: reqwest::Client,
}

impl fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuthServer({})", self.base)
    }
}

/// `https://host` or `host` → URL; plain http only for loopback (the simulator).
pub fn parse_base_url(what: &str, input: &str) -> Result<Url, String> {
    let input = input.trim().trim_end_matches('/');
    // Messages show the text redacted: a webhook URL pasted as `--portal` holds a secret.
    let shown = crate::extract::auth::redact_url(input);
    let with_scheme = if input.contains("://") {
        input.to_string()
    } else {
        format!("https://{input}")
    };
    let url =
        Url::parse(&with_scheme).map_err(|e| format!("{what} {shown:?} is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{what} {shown:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "{what} {shown:?} must use https (http only for a local simulator)"
        )),
    }
}

/// Takes out of a text every secret we sent, in case a server echoes one.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "***");
    }
    out
}

/// How a token-endpoint call failed.
enum TokenFailure {
    /// `invalid_grant` / `invalid_client`: only a new authorization helps.
    Grant {
        code: String,
        description: String,
    },
    Refused {
        code: String,
        description: String,
    },
    Unreachable(String),
}

impl OAuthServer {
    pub fn new(base: &str) -> Result<OAuthServer, OAuthError> {
        let base = parse_base_url("the OAuth server", base).map_err(OAuthError::Config)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("b24sync/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                OAuthError::Config(format!("cannot build the HTTP client: {}", e.without_url()))
            })?;
        Ok(OAuthServer { base, http })
    }

    /// The server's base URL (no secret in it).
    pub fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        code: &Secret,
        portal_endpoint: &str,
    ) -> Result<TokenSet, OAuthError> {
        let params = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("code", code.expose()),
        ];
        let secrets = [client_secret.expose(), code.expose()];
        self.token_call(&params, &secrets, Some(portal_endpoint))
            .await
            .map_err(|f| match f {
                TokenFailure::Grant { code, description } => OAuthError::Refused {
                    code,
                    description: format!(
                        "{description}; the code lives 30 s and works once, and client_id/client_secret must be the app's"
                    ),
                },
                other => self.other_failure(other),
            })
    }

    /// `grant_type=refresh_token`; `Reauthorize` on `invalid_grant` / `invalid_client`.
    pub async fn refresh(&self, app: &StoredApp) -> Result<TokenSet, OAuthError> {
        let params = [
            ("grant_type", "refresh_token"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose()),
            ("refresh_token", app.tokens.refresh_token.expose()),
        ];
        let secrets = [
            app.client_secret.expose(),
            app.tokens.refresh_token.expose(),
            app.tokens.access_token.expose(),
        ];
        self.token_call(&params, &secrets, Some(&app.tokens.client_endpoint))
            .await
            .map(|mut t| {
                // The refresh answer's `client_endpoint` may be missing; the portal did
                // not move, so keep what the authorization gave.
                if t.member_id.is_empty() {
                    t.member_id = app.tokens.member_id.clone();
                }
                t
            })
            .map_err(|f| match f {
                TokenFailure::Grant { code, description } => OAuthError::Reauthorize {
                    client_id: app.client_id.clone(),
                    portal: app.tokens.domain.clone(),
                    reason: format!("{code}: {description}"),
                },
                other => self.other_failure(other),
            })
    }

    fn other_failure(&self, f: TokenFailure) -> OAuthError {
        match f {
            TokenFailure::Grant { code, description }
            | TokenFailure::Refused { code, description } => {
                OAuthError::Refused { code, description }
            }
            TokenFailure::Unreachable(detail) => OAuthError::Unreachable {
                server: crate::extract::auth::redact_url(&self.url()),
                detail,
            },
        }
    }

    async fn token_call(
        &self,
        params: &[(&str, &str)],
        secrets: &[&str],
        fallback_endpoint: Option<&str>,
    ) -> Result<TokenSet, TokenFailure> {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/oauth/token/",
            self.base.path().trim_end_matches('/')
        ));
        // The token endpoint is documented as GET with the parameters in the query.
        url.query_pairs_mut().extend_pairs(params);
        let mut last = String::new();
        for attempt in 1..=TOKEN_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let resp = match self
                .http
                .get(url.clone())
                .header("Accept", "application/json")
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    last = scrub(&crate::extract::client::describe_reqwest(&e), secrets);
                    continue;
                }
            };
            let status = resp.status();
            let body: Option<Value> = match resp.bytes().await {
                Ok(b) => serde_json::from_slice(&b).ok(),
                Err(e) => {
                    last = scrub(&crate::extract::client::describe_reqwest(&e), secrets);
                    continue;
                }
            };
            let Some(body) = body else {
                last = format!("HTTP {status} with a body that is not JSON");
                if status.is_server_error() {
                    continue;
                }
                return Err(TokenFailure::Unreachable(last));
            };
            if let Some(code) = body
                .get("error")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                let description = scrub(
                    body.get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    secrets,
                );
                let code = scrub(code, secrets);
                return Err(match code.as_str() {
                    "invalid_grant" | "invalid_client" => TokenFailure::Grant { code, description },
                    _ if status.is_server_error() => {
                        last = format!("HTTP {status} {code}: {description}");
                        continue;
                    }
                    _ => TokenFailure::Refused { code, description },
                });
            }
            if !status.is_success() {
                last = format!("HTTP {status}");
                if status.is_server_error() {
                    continue;
                }
                return Err(TokenFailure::Unreachable(last));
            }
            return TokenSet::from_response(&body, Utc::now(), fallback_endpoint)
                .map_err(TokenFailure::Unreachable);
        }
        Err(TokenFailure::Unreachable(format!(
            "{last} (after {TOKEN_ATTEMPTS} attempts)"
        )))
    }
}

/// The portal's authorize URL: `https://PORTAL/oauth/authorize/?client_id=..&state=..`.
pub fn authorize_url(portal: &Url, client_id: &str, state: &str) -> Url {
    let mut url = portal.clone();
    url.set_path("/oauth/authorize/");
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("state", state);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("topsecretvalue");
        assert_eq!(format!("{s:?}"), "***");
        let t = TokenSet::from_response(
            &json!({"access_token": "acc0secret", "refresh_token": "ref0secret", "expires_in": 3600,
                    "client_endpoint": "https://acme.bitrix24.ru/rest/", "user_id": 1, "scope": "crm"}),
            Utc::now(),
            None,
        )
        .unwrap();
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("acc0secret") && !shown.contains("ref0secret"),
            "{shown}"
        );
        assert_eq!(t.domain, "acme.bitrix24.ru");
        assert_eq!(t.user_id, "1");
        assert_eq!(t.expires_in, "3600");
    }

    #[test]
    fn answers_without_tokens_are_refused() {
        let e = TokenSet::from_response(
            &json!({"expires_in": 3600}),
            Utc::now(),
            Some("https://a/rest/"),
        )
        .unwrap_err();
        assert!(e.contains("access_token"), "{e}");
    }

    #[test]
    fn base_urls_need_https_except_on_loopback() {
        assert!(parse_base_url("x", "acme.bitrix24.ru").is_ok());
        assert!(parse_base_url("x", "http://127.0.0.1:5000").is_ok());
        assert!(parse_base_url("x", "http://acme.bitrix24.ru").is_err());
    }

    #[test]
    fn echoed_secrets_are_scrubbed() {
        assert_eq!(scrub("bad token abcdef", &["abcdef"]), "bad token ***");
    }
}
