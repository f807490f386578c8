//! The description's own invariants; the DDL is tested against it in
//! `load/mssql/sql_tests.rs` and `load/sqlite/schema.rs`.

use super::*;

#[test]
fn contract_has_34_columns_with_their_sizes() {
    assert_eq!(LEAD_COLUMNS.len() + 1, 34);
    let title = &LEAD_COLUMNS[lead_column_index("TITLE").unwrap()];
    assert_eq!(title.kind, ColumnKind::Text { max_chars: 4000 });
    assert_eq!(title.sql_name(), "sql_TITLE");
    let mut names: Vec<_> = LEAD_COLUMNS.iter().map(|c| c.field).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 33, "no column twice");
}

#[test]
fn every_table_is_described_once_with_its_key() {
    let names: Vec<_> = tables().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "bitrix_oauth",
            "bitrix_leads",
            "bitrix_lead_contacts",
            "bitrix_lead_solution",
            "bitrix_import_lead_error",
            "bitrix_lead_runtime",
            "b24sync_migrations",
            "b24sync_state",
            "b24sync_runs",
            "b24sync_lead_phones",
            "b24sync_operators",
            "b24sync_lead_fingerprints",
            "b24sync_event_queue",
            "bitrix_contacts",
            "bitrix_contact_multifields",
            "bitrix_import_contact_error",
            "b24sync_contact_phones",
            "b24sync_contact_fingerprints",
            "bitrix_companies",
            "bitrix_company_multifields",
            "bitrix_import_company_error",
            "b24sync_company_phones",
            "b24sync_company_fingerprints",
        ]
    );
    assert_eq!(contract_tables().count(), 6);
    for t in tables() {
        let mut cols: Vec<_> = t.columns.iter().map(|c| c.name.to_lowercase()).collect();
        cols.sort();
        let n = cols.len();
        cols.dedup();
        assert_eq!(cols.len(), n, "{}: no column twice", t.name);
        for k in t.key {
            let c = t.column(k).unwrap_or_else(|| panic!("{}.{k}", t.name));
            assert!(!c.nullable, "{}.{k}: a key is NOT NULL", t.name);
        }
        if t.owner == Owner::Oktell {
            assert_eq!(t.key, ["Id"], "{}: the original layout keys by Id", t.name);
            assert_eq!(t.columns[0].kind, Kind::Key);
            assert!(t
                .columns
                .iter()
                .all(|c| c.sqlite.is_none() && c.only.is_none()));
        }
    }
}

#[test]
fn each_entity_names_described_tables_and_its_fields() {
    assert_eq!(ENTITIES, [LEAD, CONTACT, COMPANY]);
    assert_eq!(LEAD.method_name("list"), "crm.lead.list");
    assert_eq!(CONTACT.method_name("list"), "crm.contact.list");
    assert_eq!(Entity::by_name(" Companies "), Some(COMPANY));
    assert_eq!(Entity::by_name("deal"), None);
    for e in ENTITIES {
        for t in [
            e.table,
            e.multi_table,
            e.phones_table,
            e.error_table,
            e.fingerprints_table,
        ] {
            assert!(table(t).is_some(), "{t}");
        }
        let records = table(e.table).unwrap();
        assert_eq!(records.columns.len(), 2 + e.fields.len());
        assert_eq!(records.columns[1].name, "sql_ID");
        for (c, f) in records.columns[2..].iter().zip(e.fields) {
            assert_eq!(c.name, f.sql_name());
            assert_eq!(c.kind, Kind::from(f.kind));
            assert!(c.nullable);
        }
        let mut fields: Vec<_> = e.fields.iter().map(|f| f.field).collect();
        fields.dedup();
        assert_eq!(fields.len(), e.fields.len(), "{}: no field twice", e.name);
        assert!(table(e.multi_table)
            .unwrap()
            .column(e.multi_owner)
            .is_some());
        assert!(table(e.multi_table)
            .unwrap()
            .column(e.multi_value_id)
            .is_some());
        assert!(table(e.error_table).unwrap().column(e.error_json).is_some());
        assert!(table(e.phones_table)
            .unwrap()
            .column(e.phones_owner)
            .is_some());
        assert!(table(e.phones_table)
            .unwrap()
            .column(e.phones_value_id)
            .is_some());
        assert_eq!(table(e.fingerprints_table).unwrap().key, [e.phones_owner]);
        for f in e.title_fields {
            assert!(e.field_index(f).is_some(), "{}.{f}", e.name);
        }
        // The preparation step fits every entity's values with the lead's sizes.
        for (mine, lead) in [
            (e.multi_table, LEAD.multi_table),
            (e.phones_table, LEAD.phones_table),
        ] {
            let sizes = |t: &str| -> Vec<Option<usize>> {
                table(t)
                    .unwrap()
                    .columns
                    .iter()
                    .map(|c| c.kind.max_chars())
                    .collect()
            };
            assert_eq!(sizes(mine), sizes(lead), "{mine} sized as {lead}");
        }
        // Only the lead's tables are the Oktell contract.
        let oktell = table(e.table).unwrap().owner == Owner::Oktell;
        assert_eq!(oktell, *e == LEAD, "{}", e.name);
    }
    assert_eq!(
        table(LEAD.multi_table).unwrap().max_chars("sql_VALUE"),
        Some(SMALL_TEXT_CHARS)
    );
}

#[test]
fn kinds_read_as_each_dialect_writes_them() {
    let cases = [
        (
            Kind::Text { max_chars: 3000 },
            "nvarchar(3000)",
            "NVARCHAR(3000)",
            ("nvarchar", Some(3000)),
        ),
        (
            Kind::Ascii { max_chars: 16 },
            "varchar(16)",
            "VARCHAR(16)",
            ("varchar", Some(16)),
        ),
        (
            Kind::MaxText,
            "nvarchar(max)",
            "TEXT",
            ("nvarchar", Some(-1)),
        ),
        (Kind::LongText, "ntext", "NTEXT", ("ntext", None)),
        (Kind::Date, "datetime", "DATETIME", ("datetime", None)),
        (Kind::Stamp, "datetime2(0)", "DATETIME", ("datetime2", None)),
        (Kind::Key, "int", "INTEGER", ("int", None)),
        (Kind::Bool, "bit", "INTEGER", ("bit", None)),
        (Kind::BigInt, "bigint", "BIGINT", ("bigint", None)),
    ];
    for (kind, mssql, sqlite, catalog) in cases {
        assert_eq!(kind.mssql_type(), mssql);
        assert_eq!(kind.sqlite_type(), sqlite);
        assert_eq!(kind.mssql_catalog(), catalog);
    }
    let c = &table("bitrix_leads").unwrap().columns[1];
    assert_eq!(c.mssql_describe(), "int NOT NULL");
}

#[test]
fn utf16_truncation_keeps_whole_characters() {
    assert_eq!(utf16_len("a😀"), 3);
    assert_eq!(truncate_utf16("a😀b", 2), "a");
    assert_eq!(truncate_utf16("a😀b", 3), "a😀");
    assert_eq!(truncate_utf16("абв", 10), "абв");
    let cut = limits::cut(&"я".repeat(5120), 4000).unwrap();
    assert_eq!(
        cut.describe(),
        "5,120 characters; the column holds 4,000: stored the first 4,000"
    );
    assert_eq!(limits::cut("abc", 3), None);
}

#[test]
fn the_datetime_range_is_sql_servers() {
    use chrono::NaiveDate;
    let at = |y, m, d| {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
    };
    assert_eq!(limits::datetime_range(at(1753, 1, 1)), Ok(()));
    assert_eq!(limits::datetime_range(at(9999, 12, 31)), Ok(()));
    assert_eq!(
        limits::datetime_range(at(1752, 12, 31)),
        Err(limits::OutOfRange::Before)
    );
    assert_eq!(
        limits::datetime_range(Some(
            limits::datetime_max() + chrono::Duration::milliseconds(3)
        )),
        Err(limits::OutOfRange::After)
    );
    assert_eq!(
        limits::datetime_range(None),
        Err(limits::OutOfRange::Outside)
    );
}

#[test]
fn docs_tables_lists_every_contact_and_company_column() {
    let doc = include_str!("../../docs/tables.md");
    for e in [CONTACT, COMPANY] {
        for t in [e.table, e.multi_table, e.error_table, e.phones_table] {
            assert!(doc.contains(&format!("`{t}`")), "{t} in docs/tables.md");
        }
        for f in e.fields {
            assert!(
                doc.contains(&format!("| `{}` |", f.field)),
                "{}.{} in docs/tables.md",
                e.name,
                f.field
            );
        }
    }
}
