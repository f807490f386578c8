//! Where requests go: an inbound webhook URL, `https://PORTAL/rest/USER/SECRET/`.
//!
//! The secret in that URL is a password: [`Webhook`]'s `Display` and `Debug` print it as
//! `***`, and nothing else in the crate prints the URL itself.

use std::fmt;
use url::Url;

/// A parsed inbound webhook URL.
#[derive(Clone)]
pub struct Webhook {
    /// `https://portal/rest/USER/SECRET/`, always ending in `/`.
    base: Url,
    user: String,
}

/// Why a webhook URL was not accepted (the message never repeats the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid webhook URL {shown}: {reason}")]
pub struct WebhookError {
    pub shown: String,
    pub reason: String,
}

const EXPECTED: &str = "expected https://PORTAL/rest/USER_ID/SECRET/ as shown by Bitrix24 under Developer resources → Other → Inbound webhook";

impl Webhook {
    /// Parse a webhook URL. A trailing method (`.../SECRET/profile.json`, as Bitrix24's
    /// example shows) is ignored. Plain `http` is accepted only for loopback hosts (the simulator):
    /// Bitrix24 itself requires HTTPS.
    pub fn parse(input: &str) -> Result<Webhook, WebhookError> {
        let input = input.trim();
        let fail = |reason: &str| WebhookError {
            shown: redact_url_text(input),
            reason: reason.to_string(),
        };
        let url = Url::parse(input).map_err(|e| fail(&format!("{e}; {EXPECTED}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| fail(&format!("no host; {EXPECTED}")))?
            .to_string();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(fail(
                    "Bitrix24 requires https (http is only accepted for a local simulator)",
                ))
            }
            other => return Err(fail(&format!("unsupported scheme {other:?}; {EXPECTED}"))),
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let rest_at = segments
            .iter()
            .position(|s| *s == "rest")
            .ok_or_else(|| fail(&format!("no /rest/ in the path; {EXPECTED}")))?;
        let user = segments
            .get(rest_at + 1)
            .ok_or_else(|| fail(&format!("no user ID after /rest/; {EXPECTED}")))?;
        let secret = segments
            .get(rest_at + 2)
            .ok_or_else(|| fail(&format!("no secret after the user ID; {EXPECTED}")))?;
        if user.is_empty() || !user.chars().all(|c| c.is_ascii_digit()) {
            return Err(fail(&format!(
                "the user ID {user:?} is not a number; {EXPECTED}"
            )));
        }
        if segments.len() > rest_at + 4 {
            return Err(fail(&format!("too many path segments; {EXPECTED}")));
        }
        let prefix: String = segments[..rest_at]
            .iter()
            .map(|s| format!("/{s}"))
            .collect();
        let mut base = url.clone();
        base.set_path(&format!("{prefix}/rest/{user}/{secret}/"));
        base.set_query(None);
        base.set_fragment(None);
        Ok(Webhook {
            base,
            user: user.to_string(),
        })
    }

    /// The URL of a REST method (`crm.lead.list` → `.../SECRET/crm.lead.list.json`).
    pub fn method_url(&self, method: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{method}.json", self.base.path()));
        url
    }

    /// The portal's host name, for messages.
    pub fn portal(&self) -> String {
        match self.base.port() {
            Some(p) => format!("{}:{p}", self.base.host_str().unwrap_or("?")),
            None => self.base.host_str().unwrap_or("?").to_string(),
        }
    }

    /// The webhook's user ID.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Display for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/rest/{}/***/",
            self.base.scheme(),
            self.portal(),
            self.user
        )
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Webhook({self})")
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Best-effort redaction of a URL-ish text that failed to parse: anything after `/rest/USER/` is hidden.
fn redact_url_text(s: &str) -> String {
    match s.find("/rest/") {
        Some(i) => {
            let after = &s[i + 6..];
            let user_end = after.find('/').map(|j| i + 6 + j + 1).unwrap_or(s.len());
            format!("{}***", &s[..user_end])
        }
        None if s.len() > 60 => format!(
            "{}…",
            &s[..s.char_indices().nth(60).map(|(i, _)| i).unwrap_or(s.len())]
        ),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_webhook_and_hides_the_secret() {
        let w = Webhook::parse("https://acme.bitrix24.ru/rest/7/s3cr3tvalue/").unwrap();
        assert_eq!(
            w.method_url("crm.lead.list").as_str(),
            "https://acme.bitrix24.ru/rest/7/s3cr3tvalue/crm.lead.list.json"
        );
        assert_eq!(w.to_string(), "https://acme.bitrix24.ru/rest/7/***/");
        assert!(!format!("{w:?}").contains("s3cr3t"));
        assert_eq!(w.portal(), "acme.bitrix24.ru");
    }

    #[test]
    fn ignores_a_trailing_method_and_missing_slash() {
        let w = Webhook::parse("https://acme.bitrix24.ru/rest/7/abc/profile.json").unwrap();
        assert_eq!(
            w.method_url("batch").as_str(),
            "https://acme.bitrix24.ru/rest/7/abc/batch.json"
        );
        let w = Webhook::parse("https://acme.bitrix24.ru/rest/7/abc").unwrap();
        assert_eq!(
            w.method_url("batch").as_str(),
            "https://acme.bitrix24.ru/rest/7/abc/batch.json"
        );
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(Webhook::parse("http://127.0.0.1:8080/rest/1/abc/").is_ok());
        assert!(Webhook::parse("http://localhost:8080/rest/1/abc/").is_ok());
        let e = Webhook::parse("http://acme.bitrix24.ru/rest/1/topsecret/").unwrap_err();
        assert!(e.reason.contains("https"), "{e}");
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }

    #[test]
    fn bad_shapes_are_explained_without_the_secret() {
        for bad in [
            "acme.bitrix24.ru/rest/1/topsecret/",
            "https://acme.bitrix24.ru/rest/x/topsecret/",
            "https://acme.bitrix24.ru/rest/1/",
            "https://acme.bitrix24.ru/",
        ] {
            let e = Webhook::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("topsecret"), "{e}");
            assert!(
                e.to_string()
                    .contains("expected https://PORTAL/rest/USER_ID/SECRET/")
                    || e.reason.contains("https"),
                "{e}"
            );
        }
    }
}
