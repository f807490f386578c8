//! Outbound and offline events, as the portal sends and keeps them (the REST `event.*`
//! methods that drive them are in `methods/events.rs`).
//!
//! Every change the portal reports (`changes.rs`, from `data.rs`) becomes, for each binding
//! of its event (`ONCRMLEADADD|UPDATE|DELETE`):
//! - online: a form-encoded POST to the handler (`post.rs`) with `event`,
//!   `event_handler_id`, `data[FIELDS][ID]`, `ts` and `auth[...]`: `domain`,
//!   `client_endpoint`, `server_endpoint`, `member_id`, `application_token`, and for an
//!   app's binding a fresh `access_token` with `expires_in`, `scope`, `status`;
//! - offline: a row in the app's queue (`offline.rs`).
//!
//! Apps bind with `event.bind`; inbound-webhook users get outgoing webhooks configured in
//! [`EventsConfig::outgoing`], as the portal's UI sets them up.

mod bindings;
mod md5;
mod offline;
mod post;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::json;

pub(crate) use bindings::{BindRequest, Bindings};
pub(crate) use offline::{check_limit, Cond, Field, OfflineQuery, OfflineQueue, Op};
pub use post::EventStats;

use crate::changes::Change;
use post::{Delivery, Poster};

/// Events as the simulated portal sends them.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `auth[application_token]` of every app's posts (a real portal gives each app its
    /// own, with `ONAPPINSTALL`).
    pub application_token: String,
    /// Outgoing webhooks, set up as in the portal's UI: no `event.bind`.
    pub outgoing: Vec<OutgoingWebhook>,
    /// Waited before each post (the portal's queue server lags behind the change).
    pub delay: Duration,
    /// How long a handler may take to answer before the post counts as failed.
    pub timeout: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            application_token: "51856fefc120afa4b628cc82d3935cce".to_string(),
            outgoing: Vec::new(),
            delay: Duration::ZERO,
            timeout: Duration::from_secs(5),
        }
    }
}

/// An outgoing webhook: these events go to `handler` with this `application_token`.
#[derive(Debug, Clone)]
pub struct OutgoingWebhook {
    /// Event names, e.g. `ONCRMLEADUPDATE`.
    pub events: Vec<String>,
    pub handler: String,
    pub application_token: String,
}

/// A refused `event.*` call: HTTP status and the envelope's code and description.
#[derive(Debug, Clone)]
pub(crate) struct EventError {
    pub status: u16,
    pub code: &'static str,
    pub description: String,
}

impl EventError {
    pub fn new(status: u16, code: &'static str, description: &str) -> Self {
        EventError {
            status,
            code,
            description: description.to_string(),
        }
    }

    /// The portal's argument errors (missing or malformed parameters).
    pub fn argument(description: &str) -> Self {
        EventError::new(400, "ERROR_ARGUMENT", description)
    }
}

/// Where the portal says it is, for the posts' `auth[...]`.
pub(crate) struct Site {
    /// `127.0.0.1:PORT`
    pub domain: String,
    /// `http://127.0.0.1:PORT/rest/` (the simulator is also its own OAuth server).
    pub endpoint: String,
    pub member_id: String,
}

/// A token issued for an app's handler: (access_token, expires_in, scope).
pub(crate) type HandlerAuth = (String, i64, String);

/// Bindings, the offline queue and the poster.
pub(crate) struct EventHub {
    config: EventsConfig,
    site: Site,
    pub bindings: Mutex<Bindings>,
    pub offline: Mutex<OfflineQueue>,
    poster: Poster,
}

/// Locks even if a panicking thread poisoned the mutex.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventHub {
    /// Needs a tokio runtime: starts the posting task.
    pub fn start(config: EventsConfig, site: Site) -> EventHub {
        let mut bindings = Bindings::default();
        for hook in &config.outgoing {
            for event in &hook.events {
                bindings.add_configured(event, &hook.handler, &hook.application_token);
            }
        }
        let poster = Poster::start(config.delay, config.timeout);
        EventHub {
            config,
            site,
            bindings: Mutex::new(bindings),
            offline: Mutex::new(OfflineQueue::default()),
            poster,
        }
    }

    pub fn application_token(&self) -> &str {
        &self.config.application_token
    }

    pub fn stats(&self) -> EventStats {
        self.poster.counters.snapshot()
    }

    /// Posts and queues one change. `now` is the portal clock; `issue` gives an app's
    /// handler its tokens (None: the app is gone, so is the post).
    pub fn on_change(
        &self,
        change: Change,
        now: DateTime<FixedOffset>,
        issue: &dyn Fn(&str) -> Option<HandlerAuth>,
    ) {
        let event = change.event_name();
        let data = json!({"FIELDS": {"ID": change.id}});
        let ts = now.timestamp().to_string();
        let stamp = now.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
        // Cloned out, so no lock is held while the queue and the OAuth table are touched.
        let bound = lock(&self.bindings).of_event(&event);
        for b in bound {
            if b.offline {
                if let Some(app) = &b.app {
                    lock(&self.offline).push(
                        app,
                        &b.connector,
                        &event,
                        data.clone(),
                        now.timestamp(),
                        &stamp,
                    );
                }
                continue;
            }
            let tokens = match &b.app {
                Some(app) => match issue(app) {
                    Some(t) => Some(t),
                    None => continue,
                },
                None => None,
            };
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("event", &event)
                .append_pair("event_handler_id", &b.id.to_string())
                .append_pair("data[FIELDS][ID]", &change.id.to_string())
                .append_pair("ts", &ts);
            if let Some((access, expires_in, scope)) = &tokens {
                form.append_pair("auth[access_token]", access)
                    .append_pair("auth[expires_in]", &expires_in.to_string())
                    .append_pair("auth[scope]", scope);
            }
            form.append_pair("auth[domain]", &self.site.domain)
                .append_pair("auth[server_endpoint]", &self.site.endpoint);
            if tokens.is_some() {
                form.append_pair("auth[status]", "L");
            }
            form.append_pair("auth[client_endpoint]", &self.site.endpoint)
                .append_pair("auth[member_id]", &self.site.member_id)
                .append_pair("auth[application_token]", &b.application_token);
            self.poster.send(Delivery {
                url: b.handler.clone(),
                body: form.finish(),
            });
        }
    }
}
