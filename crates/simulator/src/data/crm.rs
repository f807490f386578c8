//! The test's handle on contacts and companies: the lead helpers' twins, over the same
//! generic store (see `data.rs`). Edits bump DATE_MODIFY to the portal's now unless the
//! closure set it; HAS_* follow the multi-fields; new multi-field values get IDs.

use serde_json::{Map, Value};

use super::Portal;
use crate::entity::Entity;

impl Portal {
    /// Every contact as `crm.contact.get` returns it, ordered by ID.
    pub fn contacts(&self) -> Vec<Value> {
        self.records(Entity::Contact)
    }

    pub fn contact(&self, id: i64) -> Option<Value> {
        self.record(Entity::Contact, id)
    }

    pub fn contact_ids(&self) -> Vec<i64> {
        self.record_ids(Entity::Contact)
    }

    pub fn update_contact(&self, id: i64, f: impl FnOnce(&mut Map<String, Value>)) -> bool {
        self.update_record(Entity::Contact, id, f)
    }

    /// Adds a contact (ID = max ID + id_step); missing standard fields get empty values.
    pub fn add_contact(&self, fields: Map<String, Value>) -> i64 {
        self.add_record(Entity::Contact, fields)
    }

    pub fn add_contact_with_id(&self, id: i64, fields: Map<String, Value>) -> bool {
        self.add_record_with_id(Entity::Contact, id, fields)
    }

    pub fn delete_contact(&self, id: i64) -> bool {
        self.delete_record(Entity::Contact, id)
    }

    /// Every company as `crm.company.get` returns it, ordered by ID.
    pub fn companies(&self) -> Vec<Value> {
        self.records(Entity::Company)
    }

    pub fn company(&self, id: i64) -> Option<Value> {
        self.record(Entity::Company, id)
    }

    pub fn company_ids(&self) -> Vec<i64> {
        self.record_ids(Entity::Company)
    }

    pub fn update_company(&self, id: i64, f: impl FnOnce(&mut Map<String, Value>)) -> bool {
        self.update_record(Entity::Company, id, f)
    }

    /// Adds a company (ID = max ID + id_step); missing standard fields get empty values.
    pub fn add_company(&self, fields: Map<String, Value>) -> i64 {
        self.add_record(Entity::Company, fields)
    }

    pub fn add_company_with_id(&self, id: i64, fields: Map<String, Value>) -> bool {
        self.add_record_with_id(Entity::Company, id, fields)
    }

    pub fn delete_company(&self, id: i64) -> bool {
        self.delete_record(Entity::Company, id)
    }
}
