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

use super::changes::{Change, ChangeHook, ChangeKind};
use super::entity::Entity;
use super::fields::{self, UserField};
use super::gen;
use super::SimulatorConfig;

mod crm;

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
    pub contacts: BTreeMap<i64, Lead>,
    pub companies: BTreeMap<i64, Lead>,
    /// Next multi-field value ID for values added through the Portal API.
    next_fm_id: i64,
}

impl PortalState {
    pub fn store(&self, e: Entity) -> &BTreeMap<i64, Lead> {
        match e {
            Entity::Lead => &self.leads,
            Entity::Contact => &self.contacts,
            Entity::Company => &self.companies,
        }
    }

    pub fn store_mut(&mut self, e: Entity) -> &mut BTreeMap<i64, Lead> {
        match e {
            Entity::Lead => &mut self.leads,
            Entity::Contact => &mut self.contacts,
            Entity::Company => &mut self.companies,
        }
    }
}

pub(crate) struct PortalInner {
    pub seed: u64,
    pub offset: FixedOffset,
    pub id_step: i64,
    pub solution_field: String,
    pub user_fields: Vec<UserField>,
    pub contact_user_fields: Vec<UserField>,
    pub company_user_fields: Vec<UserField>,
    /// The generated counts, which the links between entities follow.
    links: gen::Links,
    pub users: Vec<Value>,
    state: Mutex<PortalState>,
    started: Instant,
    /// How far `advance_clock` moved the portal clock, in milliseconds.
    advance_ms: AtomicI64,
    /// Told of every change (events.rs); unset until the simulator starts serving.
    pub(crate) on_change: OnceLock<ChangeHook>,
}

impl PortalInner {
    pub fn user_fields_of(&self, e: Entity) -> &[UserField] {
        match e {
            Entity::Lead => &self.user_fields,
            Entity::Contact => &self.contact_user_fields,
            Entity::Company => &self.company_user_fields,
        }
    }
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
        let generated = |n: usize, stream: u64| {
            (0..n)
                .map(|i| {
                    let id = (i as i64 + 1) * step;
                    let (c, m) = gen::record_times(config.seed, id, i, n, stream);
                    let rec = Lead {
                        date_create: Some(c),
                        date_modify: Some(m),
                        custom: None,
                    };
                    (id, rec)
                })
                .collect::<BTreeMap<i64, Lead>>()
        };
        // Stream 1 is the leads' own (`gen::lead_times`), so leads do not change.
        let leads = generated(n, 1);
        let max_id = (n as i64) * step;
        Portal {
            inner: Arc::new(PortalInner {
                seed: config.seed,
                offset,
                id_step: step,
                solution_field: config.solution_field.clone(),
                user_fields: fields::user_fields(&config.solution_field),
                contact_user_fields: Entity::Contact.own_user_fields(),
                company_user_fields: Entity::Company.own_user_fields(),
                links: gen::Links {
                    step,
                    leads: n,
                    contacts: config.contacts,
                    companies: config.companies,
                },
                users: gen::users(),
                state: Mutex::new(PortalState {
                    leads,
                    contacts: generated(config.contacts, 11),
                    companies: generated(config.companies, 21),
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

    /// Renders a stored record as `crm.{entity}.get` returns it.
    pub(crate) fn render(&self, entity: Entity, id: i64, lead: &Lead) -> Map<String, Value> {
        match &lead.custom {
            Some(m) => {
                let mut out = (**m).clone();
                // Multi-field keys are absent when empty, never `[]`.
                out.retain(|k, v| {
                    !(fields::is_multi(k) && v.as_array().is_some_and(|a| a.is_empty()))
                });
                out
            }
            None => {
                let (seed, offset) = (self.inner.seed, self.inner.offset);
                let times = (lead.date_create.unwrap_or(0), lead.date_modify.unwrap_or(0));
                match entity {
                    Entity::Lead => {
                        let mut m =
                            gen::generate_lead(seed, id, times, offset, &self.inner.solution_field);
                        gen::link_lead(&mut m, id, self.inner.links);
                        m
                    }
                    Entity::Contact => {
                        gen::generate_contact(seed, id, times, offset, self.inner.links)
                    }
                    Entity::Company => gen::generate_company(seed, id, times, offset),
                }
            }
        }
    }

    /// Every lead as `crm.lead.get` returns it, ordered by ID.
    pub fn leads(&self) -> Vec<Value> {
        self.records(Entity::Lead)
    }

    pub fn lead(&self, id: i64) -> Option<Value> {
        self.record(Entity::Lead, id)
    }

    pub fn lead_ids(&self) -> Vec<i64> {
        self.record_ids(Entity::Lead)
    }

    /// Edits a lead; DATE_MODIFY becomes the portal's now unless `f` set it itself.
    /// HAS_PHONE/HAS_EMAIL/HAS_IMOL follow the multi-fields, new multi-field values get IDs.
    pub fn update_lead(&self, id: i64, f: impl FnOnce(&mut Map<String, Value>)) -> bool {
        self.update_record(Entity::Lead, id, f)
    }

    /// Adds a lead (ID = max ID + id_step); missing standard fields get their empty values.
    pub fn add_lead(&self, fields: Map<String, Value>) -> i64 {
        self.add_record(Entity::Lead, fields)
    }

    /// Adds a lead with this ID (false if one exists), e.g. a far-off ID among dense ones,
    /// as an import or a restored backup leaves behind.
    pub fn add_lead_with_id(&self, id: i64, fields: Map<String, Value>) -> bool {
        self.add_record_with_id(Entity::Lead, id, fields)
    }

    pub fn delete_lead(&self, id: i64) -> bool {
        self.delete_record(Entity::Lead, id)
    }

    pub(crate) fn records(&self, e: Entity) -> Vec<Value> {
        let snapshot: Vec<(i64, Lead)> = self
            .lock()
            .store(e)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        snapshot
            .iter()
            .map(|(id, l)| Value::Object(self.render(e, *id, l)))
            .collect()
    }

    pub(crate) fn record(&self, e: Entity, id: i64) -> Option<Value> {
        let lead = self.lock().store(e).get(&id).cloned()?;
        Some(Value::Object(self.render(e, id, &lead)))
    }

    pub(crate) fn record_ids(&self, e: Entity) -> Vec<i64> {
        self.lock().store(e).keys().copied().collect()
    }

    pub(crate) fn update_record(
        &self,
        e: Entity,
        id: i64,
        f: impl FnOnce(&mut Map<String, Value>),
    ) -> bool {
        let now = self.now_string();
        let Some(lead) = self.lock().store(e).get(&id).cloned() else {
            return false;
        };
        // `f` runs without the lock, so it may read the portal itself.
        let mut map = self.render(e, id, &lead);
        let before = map.get("DATE_MODIFY").cloned();
        f(&mut map);
        if map.get("DATE_MODIFY") == before.as_ref() {
            map.insert("DATE_MODIFY".into(), json!(now));
        }
        let mut st = self.lock();
        if !st.store(e).contains_key(&id) {
            return false; // deleted meanwhile
        }
        Self::fix_multi(&mut st.next_fm_id, &mut map);
        st.store_mut(e).insert(id, Self::custom_lead(map));
        drop(st);
        self.changed(e, ChangeKind::Update, id);
        true
    }

    pub(crate) fn add_record(&self, e: Entity, fields: Map<String, Value>) -> i64 {
        let mut st = self.lock();
        let id = st.store(e).keys().next_back().copied().unwrap_or(0) + self.inner.id_step;
        self.insert_new(&mut st, e, id, fields);
        drop(st);
        self.changed(e, ChangeKind::Add, id);
        id
    }

    pub(crate) fn add_record_with_id(
        &self,
        e: Entity,
        id: i64,
        fields: Map<String, Value>,
    ) -> bool {
        let mut st = self.lock();
        if id <= 0 || st.store(e).contains_key(&id) {
            return false;
        }
        self.insert_new(&mut st, e, id, fields);
        drop(st);
        self.changed(e, ChangeKind::Add, id);
        true
    }

    fn insert_new(&self, st: &mut PortalState, e: Entity, id: i64, fields: Map<String, Value>) {
        let now = self.now_string();
        let mut map = Map::new();
        for sf in e.standard_fields() {
            let empty = match (sf.ty, sf.name) {
                (_, "ID") => json!(id.to_string()),
                (_, "DATE_CREATE" | "DATE_MODIFY" | "MOVED_TIME") => json!(now),
                ("date" | "datetime", _) => json!(""),
                (_, "STATUS_ID") => json!("NEW"),
                (_, "STATUS_SEMANTIC_ID") => json!("P"),
                (_, "CURRENCY_ID") => json!("RUB"),
                (_, "OPPORTUNITY") => json!("0.00"),
                (_, "REVENUE") => json!("0"),
                (_, "TYPE_ID") => json!("CLIENT"),
                (_, "COMPANY_TYPE") => json!("CUSTOMER"),
                // A lead's empty company is "0"; a contact's is null.
                (_, "COMPANY_ID") if e == Entity::Lead => json!("0"),
                (_, "ASSIGNED_BY_ID" | "CREATED_BY_ID" | "MODIFY_BY_ID" | "MOVED_BY_ID") => {
                    json!("1")
                }
                ("char", _) => json!("N"),
                _ => Value::Null,
            };
            map.insert(sf.name.to_string(), empty);
        }
        for uf in self.inner.user_fields_of(e) {
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
        st.store_mut(e).insert(id, Self::custom_lead(map));
    }

    pub(crate) fn delete_record(&self, e: Entity, id: i64) -> bool {
        let removed = self.lock().store_mut(e).remove(&id).is_some();
        if removed {
            self.changed(e, ChangeKind::Delete, id);
        }
        removed
    }

    /// Reports a change to the event system; call it after releasing the lock.
    pub(crate) fn changed(&self, e: Entity, kind: ChangeKind, id: i64) {
        if let Some(hook) = self.inner.on_change.get() {
            hook(Change {
                entity: e.event_entity(),
                kind,
                id,
            });
        }
    }

    /// Writes one field as is, without touching DATE_MODIFY (for bad-input tests).
    pub fn set_field_raw(&self, id: i64, field: &str, value: Value) -> bool {
        let mut st = self.lock();
        let Some(lead) = st.leads.get(&id).cloned() else {
            return false;
        };
        let mut map = self.render(Entity::Lead, id, &lead);
        map.insert(field.to_string(), value);
        st.leads.insert(id, Self::custom_lead(map));
        drop(st);
        self.changed(Entity::Lead, ChangeKind::Update, id);
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
