//! An entity's fields as the columns of its table: `bitrix_leads` holds one column per lead
//! field, named `sql_` + the field.

/// How an entity field's column stores its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `nvarchar(N)`: text of at most `max_chars` UTF-16 code units.
    Text { max_chars: usize },
    /// `ntext`: text of any length.
    LongText,
    /// `datetime`: a wall-clock date and time (see `transform::TimePolicy`).
    DateTime,
    /// `datetime` holding a calendar date at midnight (BIRTHDATE).
    Date,
}

/// One data column of an entity's table: the Bitrix24 field and how it is stored.
/// The SQL column is the field name with the prefix `sql_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldColumn {
    pub field: &'static str,
    pub kind: ColumnKind,
}

/// A `bitrix_leads` data column (the name the rest of the crate knows).
pub type LeadColumn = FieldColumn;

impl FieldColumn {
    /// The column's name in SQL (`sql_TITLE` for `TITLE`).
    pub fn sql_name(&self) -> String {
        format!("sql_{}", self.field)
    }
}

const fn text(field: &'static str, max_chars: usize) -> FieldColumn {
    FieldColumn {
        field,
        kind: ColumnKind::Text { max_chars },
    }
}
const fn col(field: &'static str, kind: ColumnKind) -> FieldColumn {
    FieldColumn { field, kind }
}

/// Size of most `bitrix_leads` text columns (`nvarchar(3000)`).
pub const LEAD_TEXT_CHARS: usize = 3000;
/// Size of `sql_TITLE` and `sql_COMPANY_TITLE` (`nvarchar(4000)`).
pub const LEAD_TITLE_CHARS: usize = 4000;
/// Size of every text column of the other Oktell tables (`nvarchar(2000)`).
pub const SMALL_TEXT_CHARS: usize = 2000;

/// The Bitrix24 field that keys a lead (`sql_ID int NOT NULL`).
pub const LEAD_ID_FIELD: &str = "ID";

/// The 33 data columns of `bitrix_leads` besides `sql_ID`, in the contract's order.
/// Together with `sql_ID` they are the 34 columns of `docs/oktell-schema.md`.
pub const LEAD_COLUMNS: [LeadColumn; 33] = [
    text("ADDRESS", LEAD_TEXT_CHARS),
    text("ADDRESS_2", LEAD_TEXT_CHARS),
    text("ADDRESS_CITY", LEAD_TEXT_CHARS),
    text("ADDRESS_COUNTRY", LEAD_TEXT_CHARS),
    text("ADDRESS_COUNTRY_CODE", LEAD_TEXT_CHARS),
    text("ADDRESS_POSTAL_CODE", LEAD_TEXT_CHARS),
    text("ADDRESS_PROVINCE", LEAD_TEXT_CHARS),
    text("ADDRESS_REGION", LEAD_TEXT_CHARS),
    text("ASSIGNED_BY_ID", LEAD_TEXT_CHARS),
    col("BIRTHDATE", ColumnKind::Date),
    col("COMMENTS", ColumnKind::LongText),
    text("COMPANY_ID", LEAD_TEXT_CHARS),
    text("COMPANY_TITLE", LEAD_TITLE_CHARS),
    text("CONTACT_ID", LEAD_TEXT_CHARS),
    text("CREATED_BY_ID", LEAD_TEXT_CHARS),
    text("CURRENCY_ID", LEAD_TEXT_CHARS),
    col("DATE_CLOSED", ColumnKind::DateTime),
    col("DATE_CREATE", ColumnKind::DateTime),
    col("DATE_MODIFY", ColumnKind::DateTime),
    text("LAST_NAME", LEAD_TEXT_CHARS),
    text("MODIFY_BY_ID", LEAD_TEXT_CHARS),
    text("NAME", LEAD_TEXT_CHARS),
    text("OPENED", LEAD_TEXT_CHARS),
    text("OPPORTUNITY", LEAD_TEXT_CHARS),
    text("ORIGIN_ID", LEAD_TEXT_CHARS),
    text("ORIGINATOR_ID", LEAD_TEXT_CHARS),
    text("POST", LEAD_TEXT_CHARS),
    text("SECOND_NAME", LEAD_TEXT_CHARS),
    text("SOURCE_DESCRIPTION", LEAD_TEXT_CHARS),
    text("SOURCE_ID", LEAD_TEXT_CHARS),
    text("STATUS_DESCRIPTION", LEAD_TEXT_CHARS),
    text("STATUS_ID", LEAD_TEXT_CHARS),
    text("TITLE", LEAD_TITLE_CHARS),
];

/// Index of a field in [`LEAD_COLUMNS`] (and so in `model::LeadRow::cells`).
pub fn lead_column_index(field: &str) -> Option<usize> {
    LEAD_COLUMNS.iter().position(|c| c.field == field)
}

/// The 41 data columns of `bitrix_contacts` besides `sql_ID`, alphabetical. The fields of
/// `crm.contact.fields` that hold a value of their own (not PHOTO, a file; not COMPANY_IDS,
/// which `crm.contact.list` and `.get` do not return: the contact's companies are read
/// with `crm.contact.company.items.get`, and `sql_COMPANY_ID` holds its primary company).
pub const CONTACT_COLUMNS: [FieldColumn; 41] = [
    text("ADDRESS", LEAD_TEXT_CHARS),
    text("ADDRESS_2", LEAD_TEXT_CHARS),
    text("ADDRESS_CITY", LEAD_TEXT_CHARS),
    text("ADDRESS_COUNTRY", LEAD_TEXT_CHARS),
    text("ADDRESS_COUNTRY_CODE", LEAD_TEXT_CHARS),
    text("ADDRESS_POSTAL_CODE", LEAD_TEXT_CHARS),
    text("ADDRESS_PROVINCE", LEAD_TEXT_CHARS),
    text("ADDRESS_REGION", LEAD_TEXT_CHARS),
    text("ASSIGNED_BY_ID", LEAD_TEXT_CHARS),
    col("BIRTHDATE", ColumnKind::Date),
    col("COMMENTS", ColumnKind::LongText),
    text("COMPANY_ID", LEAD_TEXT_CHARS),
    text("CREATED_BY_ID", LEAD_TEXT_CHARS),
    col("DATE_CREATE", ColumnKind::DateTime),
    col("DATE_MODIFY", ColumnKind::DateTime),
    text("EXPORT", LEAD_TEXT_CHARS),
    text("FACE_ID", LEAD_TEXT_CHARS),
    text("HAS_EMAIL", LEAD_TEXT_CHARS),
    text("HAS_IMOL", LEAD_TEXT_CHARS),
    text("HAS_PHONE", LEAD_TEXT_CHARS),
    text("HONORIFIC", LEAD_TEXT_CHARS),
    text("LAST_ACTIVITY_BY", LEAD_TEXT_CHARS),
    col("LAST_ACTIVITY_TIME", ColumnKind::DateTime),
    text("LAST_NAME", LEAD_TEXT_CHARS),
    text("LEAD_ID", LEAD_TEXT_CHARS),
    text("MODIFY_BY_ID", LEAD_TEXT_CHARS),
    text("NAME", LEAD_TEXT_CHARS),
    text("OPENED", LEAD_TEXT_CHARS),
    text("ORIGIN_ID", LEAD_TEXT_CHARS),
    text("ORIGIN_VERSION", LEAD_TEXT_CHARS),
    text("ORIGINATOR_ID", LEAD_TEXT_CHARS),
    text("POST", LEAD_TEXT_CHARS),
    text("SECOND_NAME", LEAD_TEXT_CHARS),
    text("SOURCE_DESCRIPTION", LEAD_TEXT_CHARS),
    text("SOURCE_ID", LEAD_TEXT_CHARS),
    text("TYPE_ID", LEAD_TEXT_CHARS),
    text("UTM_CAMPAIGN", LEAD_TEXT_CHARS),
    text("UTM_CONTENT", LEAD_TEXT_CHARS),
    text("UTM_MEDIUM", LEAD_TEXT_CHARS),
    text("UTM_SOURCE", LEAD_TEXT_CHARS),
    text("UTM_TERM", LEAD_TEXT_CHARS),
];

/// The 47 data columns of `bitrix_companies` besides `sql_ID`, alphabetical: the fields of
/// `crm.company.fields` that hold a value of their own (not LOGO, a file).
pub const COMPANY_COLUMNS: [FieldColumn; 47] = [
    text("ADDRESS", LEAD_TEXT_CHARS),
    text("ADDRESS_2", LEAD_TEXT_CHARS),
    text("ADDRESS_CITY", LEAD_TEXT_CHARS),
    text("ADDRESS_COUNTRY", LEAD_TEXT_CHARS),
    text("ADDRESS_COUNTRY_CODE", LEAD_TEXT_CHARS),
    text("ADDRESS_LEGAL", LEAD_TEXT_CHARS),
    text("ADDRESS_POSTAL_CODE", LEAD_TEXT_CHARS),
    text("ADDRESS_PROVINCE", LEAD_TEXT_CHARS),
    text("ADDRESS_REGION", LEAD_TEXT_CHARS),
    text("ASSIGNED_BY_ID", LEAD_TEXT_CHARS),
    text("BANKING_DETAILS", LEAD_TEXT_CHARS),
    col("COMMENTS", ColumnKind::LongText),
    text("COMPANY_TYPE", LEAD_TEXT_CHARS),
    text("CREATED_BY_ID", LEAD_TEXT_CHARS),
    text("CURRENCY_ID", LEAD_TEXT_CHARS),
    col("DATE_CREATE", ColumnKind::DateTime),
    col("DATE_MODIFY", ColumnKind::DateTime),
    text("EMPLOYEES", LEAD_TEXT_CHARS),
    text("HAS_EMAIL", LEAD_TEXT_CHARS),
    text("HAS_IMOL", LEAD_TEXT_CHARS),
    text("HAS_PHONE", LEAD_TEXT_CHARS),
    text("INDUSTRY", LEAD_TEXT_CHARS),
    text("IS_MY_COMPANY", LEAD_TEXT_CHARS),
    text("LAST_ACTIVITY_BY", LEAD_TEXT_CHARS),
    col("LAST_ACTIVITY_TIME", ColumnKind::DateTime),
    col("LAST_COMMUNICATION_TIME", ColumnKind::DateTime),
    text("LEAD_ID", LEAD_TEXT_CHARS),
    text("MODIFY_BY_ID", LEAD_TEXT_CHARS),
    text("OPENED", LEAD_TEXT_CHARS),
    text("ORIGIN_ID", LEAD_TEXT_CHARS),
    text("ORIGIN_VERSION", LEAD_TEXT_CHARS),
    text("ORIGINATOR_ID", LEAD_TEXT_CHARS),
    text("REG_ADDRESS", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_2", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_CITY", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_COUNTRY", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_COUNTRY_CODE", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_POSTAL_CODE", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_PROVINCE", LEAD_TEXT_CHARS),
    text("REG_ADDRESS_REGION", LEAD_TEXT_CHARS),
    text("REVENUE", LEAD_TEXT_CHARS),
    text("TITLE", LEAD_TITLE_CHARS),
    text("UTM_CAMPAIGN", LEAD_TEXT_CHARS),
    text("UTM_CONTENT", LEAD_TEXT_CHARS),
    text("UTM_MEDIUM", LEAD_TEXT_CHARS),
    text("UTM_SOURCE", LEAD_TEXT_CHARS),
    text("UTM_TERM", LEAD_TEXT_CHARS),
];

/// The multi-field types copied into `bitrix_lead_contacts` (`sql_TYPE_ID`).
pub const CONTACT_TYPES: [&str; 4] = ["PHONE", "EMAIL", "WEB", "IM"];
