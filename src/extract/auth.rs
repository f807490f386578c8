//! Where requests go: an inbound webhook URL, `https://PORTAL/rest/USER/SECRET/`.
//!
//! The secret in that URL is a password: [`Webhook`]'s `Display` and `Debug` print it as
//! `***`, nothing else in the crate prints the URL itself, and a URL-ish text that has
//! to appear in a message (a bad `--webhook`, a bad `--portal`) goes through
//! [`redact_url`] first.

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
            shown: redact_url(input),
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
            // Name the scheme only when it is a known one: text before a `:` may be a
            // pasted secret.
            other if KNOWN_SCHEMES.contains(&other) => {
                return Err(fail(&format!("unsupported scheme {other:?}; {EXPECTED}")))
            }
            _ => return Err(fail(&format!("unsupported scheme; {EXPECTED}"))),
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
            // Not repeated: a segment in the user ID's place may be the secret.
            return Err(fail(&format!(
                "the segment after /rest/ must be the user ID (a number); {EXPECTED}"
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

/// Schemes worth naming in a message; any other "scheme" may be a pasted secret.
const KNOWN_SCHEMES: &[&str] = &["http", "https", "ftp", "file", "ws", "wss"];
/// Path words of Bitrix24 URLs that are never secrets.
const KNOWN_WORDS: &[&str] = &["rest", "oauth", "token", "authorize"];
/// Longest redacted text shown: a pasted blob must not flood a log line.
const REDACTED_MAX_CHARS: usize = 200;

/// A URL-ish text with everything that could be a secret replaced by `***`, for messages.
///
/// Webhook URLs carry their secret in the path (`/rest/USER/SECRET/`), OAuth URLs carry
/// tokens in the query, and a mistyped URL can put the secret anywhere (`/rest1/SECRET/`,
/// `SECRET@host`, no scheme at all). So this does not try to find the secret: it keeps
/// only what is known not to be one — a known scheme, a host name, the words of Bitrix24
/// paths (`rest`, `oauth`, ...) and short numbers (the webhook's user ID) — and masks
/// every other path segment, the user info, the query and the fragment. Works on any
/// text, parseable as a URL or not.
pub fn redact_url(s: &str) -> String {
    let s = s.trim();
    let mut out = String::new();
    let mut rest = s;
    // Scheme: letters, digits, `+ - .` before a `:` followed by at least one slash.
    if let Some(colon) = rest.find(':') {
        let scheme = &rest[..colon];
        let after = &rest[colon + 1..];
        let looks_like_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && (after.starts_with('/') || after.starts_with('\\'));
        if looks_like_scheme {
            if KNOWN_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                out.push_str(scheme);
            } else {
                out.push_str("***");
            }
            out.push(':');
            let slashes = after.len() - after.trim_start_matches(['/', '\\']).len();
            out.push_str(&after[..slashes]);
            rest = &after[slashes..];
        }
    }
    // Authority: up to the first `/`, `?` or `#`.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, mut rest) = rest.split_at(end);
    let host = match authority.rfind('@') {
        Some(at) => {
            out.push_str("***@");
            &authority[at + 1..]
        }
        None => authority,
    };
    out.push_str(if looks_like_host(host) { host } else { "***" });
    // Path segments, then the query and the fragment.
    let fragment = rest.find('#').map(|i| {
        let f = &rest[i..];
        rest = &rest[..i];
        f
    });
    let query = rest.find('?').map(|i| {
        let q = &rest[i..];
        rest = &rest[..i];
        q
    });
    if !rest.is_empty() {
        let segments: Vec<&str> = rest.split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            if !seg.is_empty() {
                out.push_str(if is_safe_segment(seg) { seg } else { "***" });
            }
        }
    }
    if query.is_some_and(|q| q.len() > 1) {
        out.push_str("?***");
    } else if query.is_some() {
        out.push('?');
    }
    if fragment.is_some_and(|f| f.len() > 1) {
        out.push_str("#***");
    }
    match out.char_indices().nth(REDACTED_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &out[..i]),
        None => out,
    }
}

/// A host name, IPv4/IPv6 address or `localhost`, with an optional port: something with
/// a dot (or a bracketed address) made only of host characters. A bare word is not
/// shown: it may be a secret pasted where the host should be.
fn looks_like_host(h: &str) -> bool {
    if h.is_empty() {
        return true;
    }
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => (n, p),
        _ => (h, ""),
    };
    if port.len() > 5 {
        return false;
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let chars_ok = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    chars_ok && (name.eq_ignore_ascii_case("localhost") || name.contains('.'))
}

/// A path segment that cannot be a secret: a Bitrix24 path word or a user ID.
fn is_safe_segment(seg: &str) -> bool {
    KNOWN_WORDS.contains(&seg) || (seg.len() <= 9 && seg.chars().all(|c| c.is_ascii_digit()))
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

    /// Every malformed shape seen or imaginable: the error never contains the secret,
    /// in any letter case, and still names the portal where there is one.
    #[test]
    fn no_shape_of_bad_url_shows_its_secret() {
        const SECRET: &str = "S3cr3tAbc";
        let long = format!(
            "https://portal.bitrix24.ru/rest/1/{SECRET}/{}",
            "x/".repeat(500)
        );
        let cases: Vec<String> = vec![
            format!("https://portal.bitrix24.ru/rest1/{SECRET}/"),
            format!("https://portal.bitrix24.ru/{SECRET}/"),
            format!("https://portal.bitrix24.ru/rest/{SECRET}/"),
            format!("https://portal.bitrix24.ru/rest/1/{SECRET}/a/b/c/"),
            format!("https://portal.bitrix24.ru/api/1/{SECRET}/crm.lead.list.json"),
            format!("https://portal.bitrix24.ru/rest/?auth={SECRET}"),
            format!("https://portal.bitrix24.ru/rest/1/?auth={SECRET}&x=1"),
            format!("https://portal.bitrix24.ru/rest/1/x#{SECRET}"),
            format!("https://user:{SECRET}@portal.bitrix24.ru/rest/1/"),
            format!("https://{SECRET}@portal.bitrix24.ru/rest/1/"),
            format!(
                "https://portal.bitrix24.ru/rest1/{}/",
                SECRET.replace('A', "%41")
            ),
            format!("https://portal.bitrix24.ru%2Frest%2F1%2F{SECRET}"),
            format!("portal.bitrix24.ru/rest/1/{SECRET}/"),
            format!("portal.bitrix24.ru/rest1/{SECRET}"),
            format!("{SECRET}"),
            format!("//portal.bitrix24.ru/rest/1/{SECRET}/"),
            format!("https:/portal.bitrix24.ru/rest1/{SECRET}/"),
            format!("https:\\\\portal.bitrix24.ru\\rest\\1\\{SECRET}"),
            format!("{SECRET}://portal.bitrix24.ru/rest/1/x/"),
            format!("ftp://portal.bitrix24.ru/rest/1/{SECRET}/"),
            format!("http://portal.bitrix24.ru/rest/1/{SECRET}/"),
            format!("https://portal.bitrix24.ru:99999/rest/1/{SECRET}/"),
            format!("https://[::1/rest/1/{SECRET}/"),
            format!("https://portal.bitrix24.ru/rest/1/{SECRET} /"),
            format!("https://portal.bitrix24.ru/rest/ 1/{SECRET}/"),
            format!("https://portal.bitrix24.ru/rest/1.5/{SECRET}/"),
            format!("https://portal bitrix24.ru/rest/1/{SECRET}/"),
            long,
        ];
        let secret = SECRET.to_ascii_lowercase();
        for bad in &cases {
            let redacted = redact_url(bad);
            assert!(
                !redacted.to_ascii_lowercase().contains(&secret) && !redacted.contains("%41"),
                "{bad} -> {redacted}"
            );
            assert!(
                redacted.chars().count() <= REDACTED_MAX_CHARS + 1,
                "{redacted}"
            );
            // Some shapes still parse (the URL parser repairs them); then the webhook's
            // own Display and Debug must hide the secret.
            let text = match Webhook::parse(bad) {
                Err(e) => format!("{e} {e:?}"),
                Ok(w) => format!("{w} {w:?}"),
            };
            let text = text.to_ascii_lowercase();
            assert!(!text.contains(&secret), "{bad} -> {text}");
        }
        // The useful parts stay.
        assert_eq!(
            redact_url(&format!("https://portal.bitrix24.ru/rest1/{SECRET}/")),
            "https://portal.bitrix24.ru/***/***/"
        );
        assert_eq!(
            redact_url(&format!(
                "https://u:{SECRET}@127.0.0.1:8080/rest/7/{SECRET}/batch.json?auth={SECRET}#x"
            )),
            "https://***@127.0.0.1:8080/rest/7/***/***?***#***"
        );
        assert_eq!(redact_url(SECRET), "***");
        assert_eq!(
            redact_url("https://oauth.bitrix.info"),
            "https://oauth.bitrix.info"
        );
        let e = Webhook::parse(&format!("https://portal.bitrix24.ru/rest1/{SECRET}/")).unwrap_err();
        assert!(e.to_string().contains("portal.bitrix24.ru"), "{e}");
        assert!(e.reason.contains("no /rest/"), "{e}");
    }

    /// Good URLs parse whatever the redactor would print for them.
    #[test]
    fn redaction_does_not_change_what_parses() {
        let w = Webhook::parse("https://acme.bitrix24.ru/rest/12/q1w2e3r4t5y6u7i8/").unwrap();
        assert_eq!(w.user(), "12");
        assert_eq!(
            redact_url("https://acme.bitrix24.ru/rest/12/q1w2e3r4t5y6u7i8/"),
            w.to_string()
        );
    }
}
