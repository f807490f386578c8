//! The offline-event queue, as the portal's REST module keeps it (table
//! `b_rest_event_offline`):
//!
//! - a change adds a row per offline binding, or updates the *free* row (not reserved by a
//!   reader) with the same `MESSAGE_ID` = md5(event name `|` JSON of the data) for the same
//!   app and connector: repeated changes of one record collapse, latest time wins; a row
//!   reserved by a reader stays and a new free row is added next to it;
//! - `event.offline.get` without `process_id` reserves up to `limit` free rows (filter,
//!   order) under a new 32-character process ID and returns them; with `clear=1` (default)
//!   it deletes them at once and answers `process_id: null`; with `clear=0` they stay,
//!   hidden from every later call that does not name their process ID, until
//!   `event.offline.clear` removes them (the portal forgets reserved rows after 30 days;
//!   the simulator keeps them). With a `process_id` it reserves nothing new and returns
//!   that process's rows again (so a reader that died finds them);
//! - `error=1` reads the rows `event.offline.error` marked failed instead of the others;
//!   marking frees a reserved row as failed and drops its other unfailed copies.

use rand::Rng;
use serde_json::{json, Value};

use super::md5::md5_hex;
use super::EventError;

/// One queued event.
#[derive(Debug, Clone)]
struct Row {
    id: u64,
    unix: i64,
    timestamp: String,
    event: String,
    data: Value,
    message_id: String,
    app: String,
    connector: String,
    /// Empty = free.
    process_id: String,
    error: bool,
}

/// Fields of the filter and the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    Timestamp,
    EventName,
    MessageId,
}

impl Field {
    pub fn parse(name: &str) -> Option<Field> {
        match name.trim().to_ascii_uppercase().as_str() {
            "ID" => Some(Field::Id),
            "TIMESTAMP_X" => Some(Field::Timestamp),
            "EVENT_NAME" => Some(Field::EventName),
            "MESSAGE_ID" => Some(Field::MessageId),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One filter condition; `value` is compared as a number for ID, as unix seconds for
/// TIMESTAMP_X (an ISO 8601 date), case-insensitively as text otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub field: Field,
    pub op: Op,
    pub value: String,
}

/// An `event.offline.get` call, its parameters already read.
pub(crate) struct OfflineQuery<'a> {
    pub app: &'a str,
    pub connector: &'a str,
    pub filter: Vec<Cond>,
    /// (field, descending); empty = TIMESTAMP_X ascending.
    pub order: Vec<(Field, bool)>,
    pub limit: usize,
    pub clear: bool,
    pub process_id: Option<String>,
    pub error: bool,
}

#[derive(Default)]
pub(crate) struct OfflineQueue {
    rows: Vec<Row>,
    next_id: u64,
}

fn new_process_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn parse_unix(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.timestamp())
}

impl Cond {
    fn matches(&self, row: &Row) -> bool {
        use std::cmp::Ordering;
        let ord: Option<Ordering> = match self.field {
            Field::Id => self
                .value
                .trim()
                .parse::<u64>()
                .ok()
                .map(|v| row.id.cmp(&v)),
            Field::Timestamp => parse_unix(&self.value).map(|v| row.unix.cmp(&v)),
            Field::EventName => Some(row.event.cmp(&self.value.trim().to_ascii_uppercase())),
            Field::MessageId => Some(row.message_id.as_str().cmp(self.value.trim())),
        };
        let Some(ord) = ord else {
            return false;
        };
        match self.op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Gt => ord.is_gt(),
            Op::Ge => ord.is_ge(),
        }
    }
}

impl Row {
    fn json(&self) -> Value {
        json!({
            "ID": self.id.to_string(),
            "TIMESTAMP_X": self.timestamp,
            "EVENT_NAME": self.event,
            "EVENT_DATA": self.data,
            // The user who made the change; portal edits are made as user 1, the admin.
            "EVENT_ADDITIONAL": {"user_id": 1},
            "MESSAGE_ID": self.message_id,
        })
    }
}

impl OfflineQueue {
    /// Queues one event for an offline binding (see the module comment for the merge).
    pub fn push(
        &mut self,
        app: &str,
        connector: &str,
        event: &str,
        data: Value,
        unix: i64,
        timestamp: &str,
    ) {
        let message_id = md5_hex(format!("{event}|{data}").as_bytes());
        let free = self.rows.iter_mut().find(|r| {
            r.message_id == message_id
                && r.app == app
                && r.connector == connector
                && r.process_id.is_empty()
        });
        if let Some(row) = free {
            row.unix = unix;
            row.timestamp = timestamp.to_string();
            row.data = data;
            return;
        }
        self.next_id += 1;
        self.rows.push(Row {
            id: self.next_id,
            unix,
            timestamp: timestamp.to_string(),
            event: event.to_string(),
            data,
            message_id,
            app: app.to_string(),
            connector: connector.to_string(),
            process_id: String::new(),
            error: false,
        });
    }

    /// Indices of the rows `q` selects under `process_id`, ordered and limited.
    fn select(&self, q: &OfflineQuery<'_>, process_id: &str) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rows.len())
            .filter(|&i| {
                let r = &self.rows[i];
                r.app == q.app
                    && r.connector == q.connector
                    && r.error == q.error
                    && r.process_id == process_id
                    && q.filter.iter().all(|c| c.matches(r))
            })
            .collect();
        let default = [(Field::Timestamp, false)];
        let order: &[(Field, bool)] = if q.order.is_empty() {
            &default
        } else {
            &q.order
        };
        idx.sort_by(|&a, &b| {
            let (ra, rb) = (&self.rows[a], &self.rows[b]);
            for (field, desc) in order {
                let o = match field {
                    Field::Id => ra.id.cmp(&rb.id),
                    Field::Timestamp => ra.unix.cmp(&rb.unix),
                    Field::EventName => ra.event.cmp(&rb.event),
                    Field::MessageId => ra.message_id.cmp(&rb.message_id),
                };
                let o = if *desc { o.reverse() } else { o };
                if o.is_ne() {
                    return o;
                }
            }
            ra.id.cmp(&rb.id)
        });
        idx.truncate(q.limit);
        idx
    }

    /// `event.offline.get`: (process_id to answer, events).
    pub fn get(&mut self, q: &OfflineQuery<'_>) -> (Option<String>, Vec<Value>) {
        let answer_pid = !q.clear || q.process_id.is_some();
        let pid = match &q.process_id {
            Some(p) => p.trim().to_string(),
            None => {
                let pid = new_process_id();
                for i in self.select(q, "") {
                    self.rows[i].process_id = pid.clone();
                }
                pid
            }
        };
        let events: Vec<Value> = self
            .select(q, &pid)
            .into_iter()
            .map(|i| self.rows[i].json())
            .collect();
        if q.clear && !events.is_empty() {
            self.rows
                .retain(|r| !(r.process_id == pid && r.app == q.app && r.connector == q.connector));
        }
        (answer_pid.then_some(pid), events)
    }

    /// `event.offline.clear`: removes the process's rows, or only those with these IDs or
    /// message IDs (`message_id` wins when both are given, as on the portal).
    pub fn clear(
        &mut self,
        app: &str,
        connector: &str,
        process_id: &str,
        ids: Option<&[u64]>,
        message_ids: Option<&[String]>,
    ) {
        self.rows.retain(|r| {
            let mine = r.process_id == process_id && r.app == app && r.connector == connector;
            let listed = match (message_ids, ids) {
                (Some(m), _) => m.contains(&r.message_id),
                (None, Some(ids)) => ids.contains(&r.id),
                (None, None) => true,
            };
            !(mine && listed)
        });
    }

    /// `event.offline.error`: the process's rows with these message IDs become free failed
    /// rows (read again only with `error=1`); their other unfailed copies are dropped, and a
    /// row already failed for the same message absorbs the new failure.
    pub fn mark_error(
        &mut self,
        app: &str,
        connector: &str,
        process_id: &str,
        message_ids: &[String],
    ) {
        let listed = |r: &Row| {
            r.app == app && r.connector == connector && message_ids.contains(&r.message_id)
        };
        self.rows
            .retain(|r| !(listed(r) && !r.error && r.process_id != process_id));
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| listed(r) && r.error && r.process_id.is_empty())
            .map(|r| r.message_id.clone())
            .collect();
        self.rows.retain(|r| {
            !(listed(r) && !r.error && r.process_id == process_id && failed.contains(&r.message_id))
        });
        for r in self.rows.iter_mut().filter(|r| listed(r) && !r.error) {
            r.error = true;
            r.process_id.clear();
        }
    }

    /// Forgets an app's queue (uninstalled).
    pub fn remove_app(&mut self, app: &str) {
        self.rows.retain(|r| r.app != app);
    }

    /// Rows queued for an app, reserved or not (for tests and diagnostics).
    pub fn len(&self, app: &str) -> usize {
        self.rows.iter().filter(|r| r.app == app).count()
    }
}

/// Checks a `limit` the way the portal does: a positive integer.
pub(crate) fn check_limit(limit: i64) -> Result<usize, EventError> {
    usize::try_from(limit)
        .ok()
        .filter(|l| *l > 0)
        .ok_or_else(|| EventError::argument("Value must be positive integer"))
}
