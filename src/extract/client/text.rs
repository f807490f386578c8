//! HTTP failures and odd bodies described for messages, never echoing a URL (reqwest's
//! errors carry the request URL, which holds the webhook secret) or the body itself.

use crate::extract::auth::redact_url;

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
pub(super) fn dns_failure(e: &reqwest::Error) -> Option<String> {
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

pub(super) fn describe_body(bytes: &[u8]) -> String {
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
}
