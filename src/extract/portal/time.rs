//! The portal's clock (`server.time`): the watermark is Bitrix24's own time, never this
//! machine's or the database server's.

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

use super::describe_json;
use crate::extract::client::{Bitrix24Client, ExtractError};

/// The method's name, also the prelude's sub-command.
pub(crate) const METHOD: &str = "server.time";

/// Parse a Bitrix24 timestamp (`2024-05-01T12:00:00+03:00`).
pub fn parse_portal_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// A time as Bitrix24 writes it (`2024-05-01T12:00:00+03:00`).
pub fn format_portal_time(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The portal's now, in its own offset.
pub async fn server_time(client: &Bitrix24Client) -> Result<DateTime<FixedOffset>, ExtractError> {
    let answer = client.call(METHOD, &json!({})).await?;
    portal_time_of(client, &answer.result)
}

/// A `server.time` answer as a time; anything else is a protocol error saying, in plain
/// words, what came back.
pub(crate) fn portal_time_of(
    client: &Bitrix24Client,
    result: &Value,
) -> Result<DateTime<FixedOffset>, ExtractError> {
    result
        .as_str()
        .and_then(parse_portal_time)
        .ok_or_else(|| ExtractError::Protocol {
            portal: client.portal(),
            method: METHOD.into(),
            detail: format!(
                "answered {} instead of a date-time like 2024-05-01T12:00:00+03:00",
                describe_json(result)
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::client::ClientConfig;
    use crate::extract::Webhook;
    use tokio_util::sync::CancellationToken;

    pub(crate) fn client() -> Bitrix24Client {
        let webhook = Webhook::parse("https://acme.bitrix24.ru/rest/1/s3cr3t/").unwrap();
        Bitrix24Client::new(webhook, ClientConfig::default(), CancellationToken::new()).unwrap()
    }

    // 16.8: a bad server.time answer is said in plain words, never as Rust debug text.
    #[test]
    fn a_bad_server_time_answer_is_described_in_plain_words() {
        let c = client();
        let err = portal_time_of(&c, &json!("soon")).unwrap_err().to_string();
        assert!(
            err.contains("server.time") && err.contains("a text (\"soon\")"),
            "{err}"
        );
        assert!(!err.contains("String(") && !err.contains("Some("), "{err}");
        let t = parse_portal_time("2024-05-01T12:00:00+03:00").unwrap();
        assert_eq!(format_portal_time(&t), "2024-05-01T12:00:00+03:00");
    }
}
