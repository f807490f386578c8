//! The portal's table of event handlers: `event.bind` / `event.unbind` / `event.get` for
//! applications, plus the outgoing webhooks configured as the portal's UI would.
//!
//! Rules as the portal's REST module applies them: the event name is upper-cased and must
//! be one the app's scope offers (`ERROR_EVENT_NOT_FOUND`); an online handler needs a URL
//! whose host contains a dot after its first character (`ERROR_WRONG_HANDLER_URL`, so
//! `localhost` is refused and `127.0.0.1` accepted) and an http(s) scheme
//! (`ERROR_UNSUPPORTED_PROTOCOL`); an offline binding has no handler and no user; a second
//! identical binding fails with `ERROR_CORE` "... Handler already binded".

use serde_json::{json, Value};

use super::EventError;
use crate::changes::known_events;

/// One registered handler.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// `event_handler_id` in the posts.
    pub id: u64,
    /// client_id of the app; `None` for an outgoing webhook set up in the portal's UI.
    pub app: Option<String>,
    pub event: String,
    /// Empty for offline bindings.
    pub handler: String,
    /// `auth_type`: the user the handler's tokens are for (0 = whoever made the change).
    pub user_id: i64,
    /// `auth_connector` of the binding call (offline queues are kept per connector).
    pub connector: String,
    pub offline: bool,
    /// What the posts carry as `auth[application_token]`.
    pub application_token: String,
}

/// An `event.bind` call, its parameters already read.
pub(crate) struct BindRequest<'a> {
    pub app: &'a str,
    /// The app's scope, comma list (`crm,user`).
    pub scope: &'a str,
    pub event: &'a str,
    pub handler: &'a str,
    pub event_type: &'a str,
    pub auth_type: i64,
    pub connector: &'a str,
    pub application_token: &'a str,
}

#[derive(Default)]
pub(crate) struct Bindings {
    list: Vec<Binding>,
    next_id: u64,
}

/// `online` (also when empty) → false, `offline` → true, else the portal's argument error.
fn parse_event_type(event_type: &str) -> Result<bool, EventError> {
    match event_type.trim().to_ascii_lowercase().as_str() {
        "" | "online" => Ok(false),
        "offline" => Ok(true),
        _ => Err(EventError::argument(
            "Value must be one of {online|offline}",
        )),
    }
}

/// The portal's handler URL check (HandlerHelper::checkCallback in its REST module).
pub(crate) fn check_handler_url(handler: &str) -> Result<(), EventError> {
    let wrong = || EventError::new(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL");
    let url = url::Url::parse(handler).map_err(|_| wrong())?;
    let host = url.host_str().unwrap_or("");
    if host.find('.').is_none_or(|pos| pos == 0) {
        return Err(wrong());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EventError::new(
            400,
            "ERROR_UNSUPPORTED_PROTOCOL",
            "Unsupported handler protocol",
        ));
    }
    Ok(())
}

impl Bindings {
    /// An outgoing webhook from the configuration: no `event.bind`, its own token.
    pub fn add_configured(&mut self, event: &str, handler: &str, application_token: &str) {
        let id = self.new_id();
        self.list.push(Binding {
            id,
            app: None,
            event: event.to_ascii_uppercase(),
            handler: handler.to_string(),
            user_id: 0,
            connector: String::new(),
            offline: false,
            application_token: application_token.to_string(),
        });
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn bind(&mut self, req: &BindRequest<'_>) -> Result<(), EventError> {
        let event = req.event.trim().to_ascii_uppercase();
        if event.is_empty() {
            return Err(EventError::argument("Required argument EVENT is empty"));
        }
        let offline = parse_event_type(req.event_type)?;
        let (handler, user_id) = if offline {
            (String::new(), 0)
        } else {
            if req.handler.is_empty() {
                return Err(EventError::argument("Required argument HANDLER is empty"));
            }
            check_handler_url(req.handler)?;
            (req.handler.to_string(), req.auth_type.max(0))
        };
        let crm = req.scope.split(',').any(|s| s.trim() == "crm");
        if !crm || !known_events().any(|e| e == event) {
            return Err(EventError::new(
                400,
                "ERROR_EVENT_NOT_FOUND",
                "Event not found",
            ));
        }
        let duplicate = self.list.iter().any(|b| {
            b.app.as_deref() == Some(req.app)
                && b.event == event
                && b.handler == handler
                && b.user_id == user_id
                && b.connector == req.connector
        });
        if duplicate {
            return Err(EventError::new(
                400,
                "ERROR_CORE",
                "Unable to set event handler: Handler already binded",
            ));
        }
        let id = self.new_id();
        self.list.push(Binding {
            id,
            app: Some(req.app.to_string()),
            event,
            handler,
            user_id,
            connector: req.connector.to_string(),
            offline,
            application_token: req.application_token.to_string(),
        });
        Ok(())
    }

    /// `event.unbind`: removes the app's matching bindings, returns how many.
    pub fn unbind(
        &mut self,
        app: &str,
        event: &str,
        handler: &str,
        event_type: &str,
        auth_type: Option<i64>,
        connector: &str,
    ) -> Result<usize, EventError> {
        let event = event.trim().to_ascii_uppercase();
        if event.is_empty() {
            return Err(EventError::argument("Required argument EVENT is empty"));
        }
        let offline = parse_event_type(event_type)?;
        if !offline && handler.is_empty() {
            return Err(EventError::argument("Required argument HANDLER is empty"));
        }
        let handler = if offline { "" } else { handler };
        let before = self.list.len();
        self.list.retain(|b| {
            let hit = b.app.as_deref() == Some(app)
                && b.event == event
                && b.handler == handler
                && if offline {
                    b.connector == connector
                } else {
                    auth_type.is_none_or(|u| b.user_id == u)
                };
            !hit
        });
        Ok(before - self.list.len())
    }

    /// `event.get`: the app's bindings in the order they were made.
    pub fn get(&self, app: &str) -> Value {
        let rows: Vec<Value> = self
            .list
            .iter()
            .filter(|b| b.app.as_deref() == Some(app))
            .map(|b| {
                if b.offline {
                    json!({"event": b.event, "connector_id": b.connector, "offline": 1})
                } else {
                    json!({
                        "event": b.event,
                        "handler": b.handler,
                        "auth_type": b.user_id.to_string(),
                        "offline": 0,
                    })
                }
            })
            .collect();
        Value::Array(rows)
    }

    /// Forgets an app's bindings (uninstalled).
    pub fn remove_app(&mut self, app: &str) {
        self.list.retain(|b| b.app.as_deref() != Some(app));
    }

    /// Bindings of one event, online and offline.
    pub fn of_event(&self, event: &str) -> Vec<Binding> {
        self.list
            .iter()
            .filter(|b| b.event == event)
            .cloned()
            .collect()
    }
}
