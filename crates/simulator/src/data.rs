//! The portal's data: leads in a `BTreeMap<i64, Lead>` behind a mutex, plus the portal
//! clock.
//!
//! A [`Lead`] is compact: generated leads hold only their two timestamps and are rendered
//! from the seed when read (`gen.rs`); the first mutation turns a lead into an explicit
//! JSON map ("custom") which is then the truth for that lead. Handlers take the lock
//! just long enough to pick rows and clone their compact form; rendering JSON happens
//! outside it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Map, Value};

use super::changes::{Change, ChangeHook, ChangeKind, LEAD};
use super::fields::{self, UserField, STANDARD_FIELDS};
use super::gen;
use super::SimulatorConfig;

/// One lead as stored.
#[derive(Clone, Debug)]
pub(crate) struct Lead {
    /// Unix seconds of DATE_CREATE / DATE_MODIFY, kept for fast filtering and ordering;
    /// `None` when a test wrote an unparseable value.
    pub date_create: Option<i64>,
    pub date_modify: Option<i64>,
    /// `None`: render from the seed; `Some`: the lead's full JSON.
    pub custom: Option<Box<Map<String, Value>>>,
}

pub(crate) struct PortalState {
    pub leads: BTreeMap<i64, Lead>,
    /// Next multi-field value ID for values added through the Portal API.
    next_fm_id: i64,
}

pub(crate) struct PortalInner {
    pub seed: u64,
    pub offset: FixedOffset,
    pub id_step: i64,
    pub solution_field: String,
    pub user_fields: Vec<UserField>,
    pub users: Vec<Value>,
    state: Mutex<PortalState>,
    started: Instant,
    /// How far `advance_clock` moved the portal clock, in milliseconds.
    advance_ms: AtomicI64,
    /// Told of every change (events.rs); unset until the simulator starts serving.
    pub(crate) on_change: OnceLock<ChangeHook>,
}

/// A cheap handle to the portal's data and clock, for tests and the demo.
#[derive(Clone)]
pub struct Portal {
    pub(crate) inner: Arc<PortalInner>,
}

impl Portal {
    pub(crate) fn generate(config: &SimulatorConfig) -> Portal {
        let offset = FixedOffset::east_opt(config.utc_offset_secs)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset is valid"));
        let step = i64::from(config.id_step.max(1));
        let n = config.leads;
        let mut leads = BTreeMap::new();
        for i in 0..n {
            let id = (i as i64 + 1) * step;
            let (c, m) = gen::lead_times(config.seed, id, i, n);
            leads.insert(
                id,
                Lead {
                    date_create: Some(c),
                    date_modify: Some(m),
                    custom: None,
                },
            );
        }
        let max_id = (n as i64) * step;
        Portal {
            inner: Arc::new(PortalInner {
                seed: config.seed,
                offset,
                id_step: step,
                solution_field: config.solution_field.clone(),
                user_fields: fields::user_fields(&config.solution_field),
                users: gen::users(),
                state: Mutex::new(PortalState {
                    leads,
                    next_fm_id: (max_id + 1) * 8 + 1_000_000,
                }),
                started: Instant::now(),
                advance_ms: AtomicI64::new(0),
                on_change: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PortalState> {
        // A panic in a test closure must not wedge the server: take the data as it is.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renders a stored lead as `crm.lead.get` returns it.
    pub(crate) fn render(&self, id: i64, lead: &Lead) -> Map<String, Value> {
        match &lead.custom {
            Some(m) => {
                let mut out = (**m).clone();
                // Multi-field keys are absent when empty, never `[]`.
                out.retain(|k, v| {
                    !(fields::is_multi(k) && v.as_array().is_some_and(|a| a.is_empty()))
                });
                out
            }
            None => gen::generate_lead(
                self.inner.seed,
                id,
                (lead.date_create.unwrap_or(0), lead.date_modify.unwrap_or(0)),
                self.inner.offset,
                &self.inner.solution_field,
            ),
        }
    }

    /// Every lead as `crm.lead.get` returns it, ordered by ID.
    pub fn leads(&self) -> Vec<Value> {
        let snapshot: Vec<(i64, Lead)> = self
            .lock()
            .leads
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        snapshot
            .iter()
            .map(|(id, l)| Value::Object(self.render(*id, l)))
            .collect()
    }

    pub fn lead(&self, id: i64) -> Option<Value> {
        let lead = self.lock().leads.get(&id).cloned()?;
        Some(Value::Object(self.render(id, &lead)))
    }

    pub fn lead_ids(&self) -> Vec<i64> {
        self.lock().leads.keys().copied().collect()
    }

    /// Edits a lead; DATE_MODIFY becomes the portal's now unless `f` set it itself.
    /// HAS_PHONE/HAS_EMAIL/HAS_IMOL follow the multi-fields, new multi-field values get IDs.
    pub fn update_lead(&self, id: i64, f: impl FnOnce(&mut Map<String, Value>)) -> bool {
        let now = self.now_string();
        let Some(lead) = self.lock().leads.get(&id).cloned() else {
            return false;
        };
        // `f` runs without the lock, so it may read the portal itself.
        let mut map = self.render(id, &lead);
        let before = map.get("DATE_MODIFY").cloned();
        f(&mut map);
        if map.get("DATE_MODIFY") == before.as_ref() {
            map.insert("DATE_MODIFY".into(), json!(now));
        }
        let mut st = self.lock();
        if !st.leads.contains_key(&id) {
            return false; // deleted meanwhile
        }
        Self::fix_multi(&mut st.next_fm_id, &mut map);
        st.leads.insert(id, Self::custom_lead(map));
        drop(st);
        self.changed(LEAD, ChangeKind::Update, id);
        true
    }

    /// Adds a lead (ID = max ID + id_step); missing standard fields get their empty values.
    pub fn add_lead(&self, fields: Map<String, Value>) -> i64 {
        let mut st = self.lock();
        let id = st.leads.keys().next_back().copied().unwrap_or(0) + self.inner.id_step;
        self.insert_new(&mut st, id, fields);
        drop(st);
        self.changed(LEAD, ChangeKind::Add, id);
        id
    }

    /// Adds a lead with this ID (false if one exists), e.g. a far-off ID among dense ones,
    /// as an import or a restored backup leaves behind.
    pub fn add_lead_with_id(&self, id: i64, fields: Map<String, Value>) -> bool {
        let mut st = self.lock();
        if id <= 0 || st.leads.contains_key(&id) {
            return false;
        }
        self.insert_new(&mut st, id, fields);
        drop(st);
        self.changed(LEAD, ChangeKind::Add, id);
        true
    }

    fn insert_new(&self, st: &mut PortalState, id: i64, fields: Map<String, Value>) {
        let now = self.now_string();
        let mut map = Map::new();
        for sf in STANDARD_FIELDS {
            let empty = match (sf.ty, sf.name) {
                (_, "ID") => json!(id.to_string()),
                (_, "DATE_CREATE" | "DATE_MODIFY" | "MOVED_TIME") => json!(now),
                ("date" | "datetime", _) => json!(""),
                (_, "STATUS_ID") => json!("NEW"),
                (_, "STATUS_SEMANTIC_ID") => json!("P"),
                (_, "CURRENCY_ID") => json!("RUB"),
                (_, "OPPORTUNITY") => json!("0.00"),
                (_, "COMPANY_ID") => json!("0"),
                (_, "ASSIGNED_BY_ID" | "CREATED_BY_ID" | "MODIFY_BY_ID" | "MOVED_BY_ID") => {
                    json!("1")
                }
                ("char", _) => json!("N"),
                _ => Value::Null,
            };
            map.insert(sf.name.to_string(), empty);
        }
        for uf in &self.inner.user_fields {
            map.insert(
                uf.name.clone(),
                if uf.multiple { json!([]) } else { Value::Null },
            );
        }
        for (k, v) in fields {
            map.insert(k, v);
        }
        map.insert("ID".into(), json!(id.to_string()));
        Self::fix_multi(&mut st.next_fm_id, &mut map);
        st.leads.insert(id, Self::custom_lead(map));
    }

    pub fn delete_lead(&self, id: i64) -> bool {
        let removed = self.lock().leads.remove(&id).is_some();
        if removed {
            self.changed(LEAD, ChangeKind::Delete, id);
        }
        removed
    }

    /// Reports a change to the event system; call it after releasing the lock.
    pub(crate) fn changed(&self, entity: &'static str, kind: ChangeKind, id: i64) {
        if let Some(hook) = self.inner.on_change.get() {
            hook(Change { entity, kind, id });
        }
    }

    /// Writes one field as is, without touching DATE_MODIFY (for bad-input tests).
    pub fn set_field_raw(&self, id: i64, field: &str, value: Value) -> bool {
        let mut st = self.lock();
        let Some(lead) = st.leads.get(&id).cloned() else {
            return false;
        };
        let mut map = self.render(id, &lead);
        map.insert(field.to_string(), value);
        st.leads.insert(id, Self::custom_lead(map));
        drop(st);
        self.changed(LEAD, ChangeKind::Update, id);
        true
    }

    /// (item ID, display name) of the solution list field.
    pub fn solution_items(&self) -> Vec<(String, String)> {
        self.inner
            .user_fields
            .iter()
            .find(|u| u.name == self.inner.solution_field)
            .map(|u| u.items.clone())
            .unwrap_or_default()
    }

    /// The portal's clock: real time plus `advance_clock`, in the portal's offset.
    pub fn now(&self) -> DateTime<FixedOffset> {
        let adv = chrono::Duration::milliseconds(self.inner.advance_ms.load(Ordering::Relaxed));
        (Utc::now() + adv).with_timezone(&self.inner.offset)
    }

    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.inner.advance_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Monotonic seconds since the simulator started, including `advance_clock`: the
    /// time base of the rate and operating limits, so tests can skip ahead.
    pub(crate) fn mono_secs(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
            + self.inner.advance_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Real milliseconds since the simulator started (request arrivals; no clock advance).
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn offset(&self) -> FixedOffset {
        self.inner.offset
    }

    fn now_string(&self) -> String {
        self.now().format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    fn custom_lead(map: Map<String, Value>) -> Lead {
        let ts = |k: &str| {
            map.get(k)
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.timestamp())
        };
        Lead {
            date_create: ts("DATE_CREATE"),
            date_modify: ts("DATE_MODIFY"),
            custom: Some(Box::new(map)),
        }
    }

    /// Gives new multi-field values an ID and TYPE_ID and recomputes the HAS_* flags.
    fn fix_multi(next_fm_id: &mut i64, map: &mut Map<String, Value>) {
        for (ty, _) in fields::MULTI_FIELDS {
            if let Some(Value::Array(items)) = map.get_mut(*ty) {
                for item in items.iter_mut() {
                    if let Some(obj) = item.as_object_mut() {
                        if !obj.contains_key("ID") {
                            obj.insert("ID".into(), json!(next_fm_id.to_string()));
                            *next_fm_id += 1;
                        }
                        obj.entry("TYPE_ID").or_insert_with(|| json!(ty));
                        obj.entry("VALUE_TYPE").or_insert_with(|| json!("WORK"));
                    }
                }
            }
        }
        let non_empty = |m: &Map<String, Value>, k: &str| {
            m.get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        let yn = |b: bool| json!(if b { "Y" } else { "N" });
        let has_phone = non_empty(map, "PHONE");
        let has_email = non_empty(map, "EMAIL");
        let has_imol = map
            .get("IM")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v["VALUE_TYPE"] == "IMOL"));
        map.insert("HAS_PHONE".into(), yn(has_phone));
        map.insert("HAS_EMAIL".into(), yn(has_email));
        map.insert("HAS_IMOL".into(), yn(has_imol));
    }
}
