//! The CRM entities b24sync syncs, each described once: its Bitrix24 method, its fields and
//! the tables it fills.

use super::fields::{FieldColumn, CONTACT_TYPES, LEAD_COLUMNS, LEAD_ID_FIELD};

/// One CRM entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// What people call it: `lead`.
    pub name: &'static str,
    /// The Bitrix24 REST method family: `crm.lead` (`.list`, `.get`, `.fields`).
    pub method: &'static str,
    /// The field that keys a record (`ID`).
    pub id_field: &'static str,
    /// The fields copied one column each into [`Entity::table`], in the table's order.
    pub fields: &'static [FieldColumn],
    /// The multi-fields (PHONE, EMAIL, ...) copied one row per value into
    /// [`Entity::multi_table`].
    pub multi_fields: &'static [&'static str],
    /// One row per record.
    pub table: &'static str,
    /// One row per multi-field value.
    pub multi_table: &'static str,
    /// The PHONE values normalised for the caller lookup.
    pub phones_table: &'static str,
    /// A record that could not be stored as received, with the reason and the record.
    pub error_table: &'static str,
}

impl Entity {
    /// `crm.lead.list` for `list`.
    pub fn method_name(&self, action: &str) -> String {
        format!("{}.{action}", self.method)
    }
}

/// The lead (`crm.lead`), the entity of the Oktell contract.
pub const LEAD: Entity = Entity {
    name: "lead",
    method: "crm.lead",
    id_field: LEAD_ID_FIELD,
    fields: &LEAD_COLUMNS,
    multi_fields: &CONTACT_TYPES,
    table: "bitrix_leads",
    multi_table: "bitrix_lead_contacts",
    phones_table: "b24sync_lead_phones",
    error_table: "bitrix_import_lead_error",
};

/// Every entity b24sync syncs.
pub const ENTITIES: &[Entity] = &[LEAD];
