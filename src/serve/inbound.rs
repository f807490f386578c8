//! An outbound event as Bitrix24 posts it (docs/bitrix24-api.md §7): a form-encoded body
//! with `event`, `data[FIELDS][ID]`, `ts` and `auth[...]`. Read here, pure: the sender is
//! checked first (`auth[application_token]`, then `auth[domain]`), then what it names.

use crate::store::{QueuedAction, QueuedEvent};

/// What a post asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A change of a record of a served entity type: queue it.
    Queue(QueuedEvent),
    /// A genuine event b24sync does not act on (another entity type, another event): 200,
    /// nothing queued. Holds the event name.
    Ignored(String),
}

/// Why a post is refused. Never holds the token, neither the expected one nor the sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a form of the expected shape (the words say what is wrong).
    Malformed(String),
    /// No `auth[application_token]`.
    NoToken,
    /// `auth[application_token]` is not the configured one.
    WrongToken,
    /// `auth[domain]` is another portal's (or missing).
    WrongDomain(String),
}

impl Refusal {
    /// The HTTP status answered.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 400,
            Refusal::NoToken | Refusal::WrongToken => 401,
            Refusal::WrongDomain(_) => 403,
        }
    }

    /// For the log and the answer's body: safe to show (no token).
    pub fn say(&self) -> String {
        match self {
            Refusal::Malformed(why) => format!("malformed event: {why}"),
            Refusal::NoToken => "no application token (auth[application_token])".into(),
            Refusal::WrongToken => "wrong application token".into(),
            Refusal::WrongDomain(d) => format!("event from another portal (auth[domain] {d:?})"),
        }
    }

    /// A label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::NoToken => "no_token",
            Refusal::WrongToken => "wrong_token",
            Refusal::WrongDomain(_) => "wrong_domain",
        }
    }
}

/// What a post is checked against.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The configured application token.
    pub token: &'a str,
    /// The portal's host (`yourcompany.bitrix24.ru`, or `host:port`), from the webhook or
    /// the OAuth app.
    pub portal: &'a str,
    /// The entity types served ("lead").
    pub entities: &'a [&'a str],
}

/// Read one post's body; `now_ms` stamps the queued event.
pub fn read_event(body: &[u8], expect: &Expect<'_>, now_ms: i64) -> Result<Inbound, Refusal> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Refusal::Malformed("the body is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(Refusal::Malformed("the body is empty".into()));
    }
    if !text.contains('=') {
        return Err(Refusal::Malformed(
            "the body is not form-encoded (no name=value pair)".into(),
        ));
    }
    let mut token = None;
    let mut domain = None;
    let mut event = None;
    let mut id = None;
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        match k.as_ref() {
            "auth[application_token]" => token = Some(v.into_owned()),
            "auth[domain]" => domain = Some(v.into_owned()),
            "event" => event = Some(v.into_owned()),
            "data[FIELDS][ID]" => id = Some(v.into_owned()),
            _ => {}
        }
    }
    match token {
        None => return Err(Refusal::NoToken),
        Some(t) if !same_secret(t.as_bytes(), expect.token.as_bytes()) => {
            return Err(Refusal::WrongToken)
        }
        Some(_) => {}
    }
    let domain = domain.unwrap_or_default();
    if !same_portal(&domain, expect.portal) {
        return Err(Refusal::WrongDomain(domain.chars().take(100).collect()));
    }
    let Some(event) = event.filter(|e| !e.trim().is_empty()) else {
        return Err(Refusal::Malformed("no event name (event)".into()));
    };
    let event = event.trim().to_ascii_uppercase();
    let Some((entity, action)) = crm_event(&event) else {
        return Ok(Inbound::Ignored(event));
    };
    if !expect.entities.contains(&entity.as_str()) {
        return Ok(Inbound::Ignored(event));
    }
    let id = id.ok_or_else(|| Refusal::Malformed(format!("{event} without data[FIELDS][ID]")))?;
    let id: i64 = id.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        Refusal::Malformed(format!(
            "{event}: data[FIELDS][ID] {:?} is not a record ID",
            id.chars().take(40).collect::<String>()
        ))
    })?;
    Ok(Inbound::Queue(QueuedEvent {
        entity,
        id,
        action,
        at_ms: now_ms,
    }))
}

/// `ONCRMLEADUPDATE` → ("lead", change); `ONCRMCONTACTDELETE` → ("contact", delete).
pub fn crm_event(event: &str) -> Option<(String, QueuedAction)> {
    let rest = event.strip_prefix("ONCRM")?;
    for (suffix, action) in [
        ("ADD", QueuedAction::Change),
        ("UPDATE", QueuedAction::Change),
        ("DELETE", QueuedAction::Delete),
    ] {
        if let Some(entity) = rest.strip_suffix(suffix) {
            if !entity.is_empty() && entity.chars().all(|c| c.is_ascii_alphabetic()) {
                return Some((entity.to_ascii_lowercase(), action));
            }
        }
    }
    None
}

/// Compares without stopping at the first difference (the time taken says nothing about
/// how much of the token was right).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Host names compare without case; a trailing dot or a scheme is not a difference.
fn same_portal(sent: &str, expected: &str) -> bool {
    let clean = |s: &str| {
        let s = s.trim();
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.trim_end_matches('/')
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    !sent.trim().is_empty() && clean(sent) == clean(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: Expect<'static> = Expect {
        token: "s3cret",
        portal: "acme.bitrix24.ru",
        entities: &["lead"],
    };

    fn body(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            f.append_pair(k, v);
        }
        f.finish().into_bytes()
    }

    fn post(event: &str, id: &str, token: &str, domain: &str) -> Vec<u8> {
        body(&[
            ("event", event),
            ("data[FIELDS][ID]", id),
            ("ts", "1700000000"),
            ("auth[domain]", domain),
            ("auth[application_token]", token),
        ])
    }

    #[test]
    fn a_lead_event_from_the_portal_is_queued() {
        let got = read_event(
            &post("ONCRMLEADUPDATE", "42", "s3cret", "ACME.bitrix24.ru"),
            &EXPECT,
            7,
        );
        assert_eq!(
            got,
            Ok(Inbound::Queue(QueuedEvent {
                entity: "lead".into(),
                id: 42,
                action: QueuedAction::Change,
                at_ms: 7
            }))
        );
        let del = read_event(
            &post("ONCRMLEADDELETE", "5", "s3cret", "acme.bitrix24.ru"),
            &EXPECT,
            0,
        );
        assert!(matches!(
            del,
            Ok(Inbound::Queue(QueuedEvent {
                action: QueuedAction::Delete,
                id: 5,
                ..
            }))
        ));
    }

    #[test]
    fn the_sender_is_checked_before_anything_else() {
        let wrong = read_event(
            &post("ONCRMLEADADD", "x", "guess", "acme.bitrix24.ru"),
            &EXPECT,
            0,
        );
        assert_eq!(wrong, Err(Refusal::WrongToken));
        assert!(!Refusal::WrongToken.say().contains("guess"));
        let none = read_event(&body(&[("event", "ONCRMLEADADD")]), &EXPECT, 0);
        assert_eq!(none, Err(Refusal::NoToken));
        let other = read_event(
            &post("ONCRMLEADADD", "1", "s3cret", "evil.example"),
            &EXPECT,
            0,
        );
        assert_eq!(other.as_ref().map_err(Refusal::status), Err(403));
    }

    #[test]
    fn malformed_posts_say_what_is_wrong() {
        for (b, what) in [
            (b"\xff\xfe".to_vec(), "UTF-8"),
            (b"".to_vec(), "empty"),
            (b"{\"json\": true}".to_vec(), "form-encoded"),
            (
                post("ONCRMLEADADD", "abc", "s3cret", "acme.bitrix24.ru"),
                "not a record ID",
            ),
            (
                post("ONCRMLEADADD", "-3", "s3cret", "acme.bitrix24.ru"),
                "not a record ID",
            ),
        ] {
            match read_event(&b, &EXPECT, 0) {
                Err(Refusal::Malformed(why)) => assert!(why.contains(what), "{why}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_events_are_ignored_not_refused() {
        let contact = read_event(
            &post("ONCRMCONTACTADD", "1", "s3cret", "acme.bitrix24.ru"),
            &EXPECT,
            0,
        );
        assert_eq!(contact, Ok(Inbound::Ignored("ONCRMCONTACTADD".into())));
        let app = read_event(
            &post("ONAPPINSTALL", "", "s3cret", "acme.bitrix24.ru"),
            &EXPECT,
            0,
        );
        assert_eq!(app, Ok(Inbound::Ignored("ONAPPINSTALL".into())));
        assert_eq!(
            crm_event("ONCRMCOMPANYDELETE"),
            Some(("company".into(), QueuedAction::Delete))
        );
        assert_eq!(crm_event("ONCRMADD"), None);
    }
}
