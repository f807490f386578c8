//! The schema description: every table b24sync reads or writes, and every entity it syncs.
//!
//! One place says which columns a table has, of what kind and size, and whether they may be
//! NULL; the checks of `doctor`, the preparation step's size and range checks, the staging
//! code and the DDL tests read it from here. The DDL itself stays hand-written under `sql/`
//! (it reads better for a DBA) and is tested against this description on both dialects.
//!
//! An entity ([`Entity`]) names its Bitrix24 method, its fields and its tables, so another
//! CRM entity (contacts, companies) is added by describing it: its fields (a list like
//! [`LEAD_COLUMNS`]), its tables (in [`tables`]) and an entry in [`ENTITIES`].
//!
//! Nothing here imports the rest of the crate: `model`, `prepare` and `load` import it.

mod entity;
mod fields;
pub mod limits;
mod tables;

pub use entity::{Entity, COMPANY, CONTACT, ENTITIES, LEAD};
pub use fields::{
    lead_column_index, ColumnKind, FieldColumn, LeadColumn, COMPANY_COLUMNS, CONTACT_COLUMNS,
    CONTACT_TYPES, LEAD_COLUMNS, LEAD_ID_FIELD, LEAD_TEXT_CHARS, LEAD_TITLE_CHARS,
    SMALL_TEXT_CHARS,
};
pub use limits::{truncate_utf16, utf16_len};
pub use tables::{
    contract_tables, table, tables, ERROR_ID_CHARS, EVENT_QUEUE_TABLE, FINGERPRINTS_TABLE,
    OPERATOR_EMAIL_CHARS, OPERATOR_EXTENSION_CHARS, OPERATOR_NAME_CHARS, OPERATOR_USER_ID_CHARS,
    PHONE_REASON_CHARS, QUEUE_ACTION_CHARS, QUEUE_ENTITY_CHARS, QUEUE_ERROR_CHARS,
    RUN_MESSAGE_CHARS, RUN_MODE_CHARS, RUN_STATUS_CHARS,
};

use std::borrow::Cow;

/// How a column stores its value, independent of the SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The row number: `int IDENTITY(1,1) NOT NULL` on SQL Server, the rowid alias
    /// `INTEGER PRIMARY KEY` on SQLite.
    Key,
    /// `int`.
    Int,
    /// `bigint`.
    BigInt,
    /// `float`.
    Float,
    /// `bit` (SQLite: `INTEGER` 0/1).
    Bool,
    /// `nvarchar(N)`: at most `max_chars` UTF-16 code units.
    Text { max_chars: usize },
    /// `varchar(N)`: ASCII of at most `max_chars` characters.
    Ascii { max_chars: usize },
    /// `nvarchar(max)`.
    MaxText,
    /// `ntext`: text of any length.
    LongText,
    /// `datetime`: 1753-01-01 to 9999-12-31 (see [`limits::datetime_range`]).
    DateTime,
    /// `datetime` holding a calendar date at midnight.
    Date,
    /// `datetime2(0)`: b24sync's own timestamps, whole seconds.
    Stamp,
}

impl Kind {
    /// The most UTF-16 code units a value may have, for the sized text kinds.
    pub fn max_chars(&self) -> Option<usize> {
        match self {
            Kind::Text { max_chars } | Kind::Ascii { max_chars } => Some(*max_chars),
            _ => None,
        }
    }

    /// As SQL Server's `INFORMATION_SCHEMA.COLUMNS` reports it: `DATA_TYPE` and
    /// `CHARACTER_MAXIMUM_LENGTH` (-1 for `max`; None where not compared).
    pub fn mssql_catalog(&self) -> (&'static str, Option<i32>) {
        let len = |n: usize| Some(i32::try_from(n).unwrap_or(i32::MAX));
        match self {
            Kind::Key | Kind::Int => ("int", None),
            Kind::BigInt => ("bigint", None),
            Kind::Float => ("float", None),
            Kind::Bool => ("bit", None),
            Kind::Text { max_chars } => ("nvarchar", len(*max_chars)),
            Kind::Ascii { max_chars } => ("varchar", len(*max_chars)),
            Kind::MaxText => ("nvarchar", Some(-1)),
            Kind::LongText => ("ntext", None),
            Kind::DateTime | Kind::Date => ("datetime", None),
            Kind::Stamp => ("datetime2", None),
        }
    }

    /// As the T-SQL DDL writes it, lower case: `nvarchar(3000)`, `datetime2(0)`.
    pub fn mssql_type(&self) -> String {
        match self {
            Kind::Text { max_chars } => format!("nvarchar({max_chars})"),
            Kind::Ascii { max_chars } => format!("varchar({max_chars})"),
            Kind::MaxText => "nvarchar(max)".to_string(),
            Kind::Stamp => "datetime2(0)".to_string(),
            other => other.mssql_catalog().0.to_string(),
        }
    }

    /// As the SQLite DDL declares it: `NVARCHAR(3000)`, `DATETIME`.
    pub fn sqlite_type(&self) -> String {
        match self {
            Kind::Key | Kind::Int | Kind::Bool => "INTEGER".to_string(),
            Kind::BigInt => "BIGINT".to_string(),
            Kind::Float => "FLOAT".to_string(),
            Kind::Text { max_chars } => format!("NVARCHAR({max_chars})"),
            Kind::Ascii { max_chars } => format!("VARCHAR({max_chars})"),
            Kind::MaxText => "TEXT".to_string(),
            Kind::LongText => "NTEXT".to_string(),
            Kind::DateTime | Kind::Date | Kind::Stamp => "DATETIME".to_string(),
        }
    }
}

impl From<ColumnKind> for Kind {
    fn from(k: ColumnKind) -> Self {
        match k {
            ColumnKind::Text { max_chars } => Kind::Text { max_chars },
            ColumnKind::LongText => Kind::LongText,
            ColumnKind::DateTime => Kind::DateTime,
            ColumnKind::Date => Kind::Date,
        }
    }
}

/// A SQL dialect b24sync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Mssql,
    Sqlite,
}

/// How the embedded database declares a column of b24sync's own tables where that differs
/// from [`Kind::sqlite_type`] (SQLite's looser `TEXT` for keys and timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteDecl {
    pub decl: &'static str,
    pub nullable: bool,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: Cow<'static, str>,
    pub kind: Kind,
    /// On SQL Server (and on SQLite unless [`Column::sqlite`] says otherwise).
    pub nullable: bool,
    pub sqlite: Option<SqliteDecl>,
    /// `Some` when only one dialect has the column.
    pub only: Option<Dialect>,
}

impl Column {
    /// Whether the column exists in `dialect`'s tables.
    pub fn on(&self, dialect: Dialect) -> bool {
        self.only.is_none_or(|d| d == dialect)
    }

    /// The declared type and nullability on SQLite, as `PRAGMA table_info` reports them (the
    /// rowid alias `INTEGER PRIMARY KEY` is not declared NOT NULL, though it never is NULL).
    pub fn sqlite_decl(&self) -> (String, bool) {
        match self.sqlite {
            Some(d) => (d.decl.to_string(), d.nullable),
            None if self.kind == Kind::Key => (self.kind.sqlite_type(), true),
            None => (self.kind.sqlite_type(), self.nullable),
        }
    }

    /// As a DBA writes it on SQL Server: `nvarchar(3000) NULL`.
    pub fn mssql_describe(&self) -> String {
        let null = if self.nullable { "NULL" } else { "NOT NULL" };
        format!("{} {null}", self.kind.mssql_type())
    }
}

/// Whose table it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// One of the six tables Oktell's scenarios read (docs/oktell-schema.md): its layout is a
    /// contract, never altered by b24sync.
    Oktell,
    /// b24sync's own (state, run history, caller lookup, migrations).
    B24sync,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub owner: Owner,
    pub columns: Vec<Column>,
    /// The primary key's columns.
    pub key: &'static [&'static str],
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The size of a sized text column (None: not sized, or no such column).
    pub fn max_chars(&self, column: &str) -> Option<usize> {
        self.column(column).and_then(|c| c.kind.max_chars())
    }

    /// The columns `dialect` has, in the table's order.
    pub fn columns_on(&self, dialect: Dialect) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(move |c| c.on(dialect))
    }
}

#[cfg(test)]
mod tests;
