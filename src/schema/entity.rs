//! The CRM entities b24sync syncs, each described once: its Bitrix24 method, its fields and
//! the tables it fills. The lead's tables are the Oktell contract (docs/oktell-schema.md);
//! the contact's and the company's are b24sync's own, in the same style (`sql_` + field).

use super::fields::{
    FieldColumn, COMPANY_COLUMNS, CONTACT_COLUMNS, CONTACT_TYPES, LEAD_COLUMNS, LEAD_ID_FIELD,
};

/// One CRM entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// What people call it, and what `--entities` and `b24sync lookup` print: `lead`.
    pub name: &'static str,
    /// The plural, for messages: `leads`.
    pub plural: &'static str,
    /// The Bitrix24 REST method family: `crm.lead` (`.list`, `.get`, `.fields`).
    pub method: &'static str,
    /// The field that keys a record (`ID`).
    pub id_field: &'static str,
    /// The fields copied one column each into [`Entity::table`], in the table's order.
    pub fields: &'static [FieldColumn],
    /// The multi-fields (PHONE, EMAIL, ...) copied one row per value into
    /// [`Entity::multi_table`].
    pub multi_fields: &'static [&'static str],
    /// One row per record (`sql_ID` + one column per field).
    pub table: &'static str,
    /// One row per multi-field value.
    pub multi_table: &'static str,
    /// The column of [`Entity::multi_table`] holding the record's ID (`sql_LEAD_ID`).
    pub multi_owner: &'static str,
    /// The column of [`Entity::multi_table`] holding the value's own Bitrix24 ID
    /// (`sql_CONTACT_ID` for the lead, as the Oktell scripts named it; `sql_VALUE_ID` else).
    pub multi_value_id: &'static str,
    /// The PHONE values normalised for the caller lookup.
    pub phones_table: &'static str,
    /// The column of [`Entity::phones_table`] (and of [`Entity::fingerprints_table`])
    /// holding the record's ID (`lead_id`).
    pub phones_owner: &'static str,
    /// The column of [`Entity::phones_table`] holding the value's Bitrix24 ID.
    pub phones_value_id: &'static str,
    /// A record that could not be stored as received, with the reason and the record.
    pub error_table: &'static str,
    /// The column of [`Entity::error_table`] holding the record's JSON.
    pub error_json: &'static str,
    /// The content fingerprints of the records written (src/prepare/fingerprint.rs).
    pub fingerprints_table: &'static str,
    /// The list field's display names (`bitrix_lead_solution`); the lead only.
    pub solution_table: Option<&'static str>,
    /// The fields whose text names the record for a person (the caller lookup's title).
    pub title_fields: &'static [&'static str],
}

impl Entity {
    /// `crm.lead.list` for `list`.
    pub fn method_name(&self, action: &str) -> String {
        format!("{}.{action}", self.method)
    }

    /// Index of a field in [`Entity::fields`] (and so in a row's cells).
    pub fn field_index(&self, field: &str) -> Option<usize> {
        self.fields.iter().position(|c| c.field == field)
    }

    /// The entity called `name` (`lead`, `contact`, `company`; plurals accepted).
    pub fn by_name(name: &str) -> Option<Entity> {
        let name = name.trim().to_ascii_lowercase();
        ENTITIES
            .iter()
            .copied()
            .find(|e| e.name == name || e.plural == name)
    }
}

/// The lead (`crm.lead`), the entity of the Oktell contract.
pub const LEAD: Entity = Entity {
    name: "lead",
    plural: "leads",
    method: "crm.lead",
    id_field: LEAD_ID_FIELD,
    fields: &LEAD_COLUMNS,
    multi_fields: &CONTACT_TYPES,
    table: "bitrix_leads",
    multi_table: "bitrix_lead_contacts",
    multi_owner: "sql_LEAD_ID",
    multi_value_id: "sql_CONTACT_ID",
    phones_table: "b24sync_lead_phones",
    phones_owner: "lead_id",
    phones_value_id: "contact_id",
    error_table: "bitrix_import_lead_error",
    error_json: "sql_full_lead_info",
    fingerprints_table: "b24sync_lead_fingerprints",
    solution_table: Some("bitrix_lead_solution"),
    title_fields: &["TITLE"],
};

/// The CRM contact (`crm.contact`): a person, often a converted lead.
pub const CONTACT: Entity = Entity {
    name: "contact",
    plural: "contacts",
    method: "crm.contact",
    id_field: LEAD_ID_FIELD,
    fields: &CONTACT_COLUMNS,
    multi_fields: &CONTACT_TYPES,
    table: "bitrix_contacts",
    multi_table: "bitrix_contact_multifields",
    multi_owner: "sql_CONTACT_ID",
    multi_value_id: "sql_VALUE_ID",
    phones_table: "b24sync_contact_phones",
    phones_owner: "contact_id",
    phones_value_id: "value_id",
    error_table: "bitrix_import_contact_error",
    error_json: "sql_full_contact_info",
    fingerprints_table: "b24sync_contact_fingerprints",
    solution_table: None,
    title_fields: &["NAME", "SECOND_NAME", "LAST_NAME"],
};

/// The CRM company (`crm.company`).
pub const COMPANY: Entity = Entity {
    name: "company",
    plural: "companies",
    method: "crm.company",
    id_field: LEAD_ID_FIELD,
    fields: &COMPANY_COLUMNS,
    multi_fields: &CONTACT_TYPES,
    table: "bitrix_companies",
    multi_table: "bitrix_company_multifields",
    multi_owner: "sql_COMPANY_ID",
    multi_value_id: "sql_VALUE_ID",
    phones_table: "b24sync_company_phones",
    phones_owner: "company_id",
    phones_value_id: "value_id",
    error_table: "bitrix_import_company_error",
    error_json: "sql_full_company_info",
    fingerprints_table: "b24sync_company_fingerprints",
    solution_table: None,
    title_fields: &["TITLE"],
};

/// Every entity b24sync syncs, in the order a run reads them.
pub const ENTITIES: &[Entity] = &[LEAD, CONTACT, COMPANY];
