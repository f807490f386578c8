//! Doctor's permissions check: what the login may do, against what a sync needs.

use tiberius::Row;

use super::doctor::{failed, passed};
use crate::store::Diagnosis;

/// What a sync (and `errors`, `auth`, `lookup`) does to each table, and so the rights `doctor`
/// asks for: nothing more is ever needed once `init-db` has run (it creates bitrix_lead_runtime's
/// row Id = 1, the one thing that needs ALTER). `sql_tests.rs` checks the statements the sink
/// sends against this list. bitrix_oauth is used only with an OAuth application.
pub(in crate::load::mssql) const SYNC_RIGHTS: [(&str, &[&str]); 23] = [
    ("bitrix_oauth", &["SELECT", "INSERT", "UPDATE"]),
    ("bitrix_leads", &["SELECT", "INSERT", "UPDATE", "DELETE"]),
    (
        "bitrix_lead_contacts",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_lead_solution",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_import_lead_error",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    ("bitrix_lead_runtime", &["SELECT", "UPDATE"]),
    ("b24sync_migrations", &["SELECT"]),
    ("b24sync_state", &["SELECT", "INSERT", "UPDATE"]),
    ("b24sync_runs", &["SELECT", "INSERT", "UPDATE"]),
    ("b24sync_lead_phones", &["SELECT", "INSERT", "DELETE"]),
    ("b24sync_operators", &["SELECT", "INSERT", "UPDATE"]),
    (
        "b24sync_lead_fingerprints",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    // The contacts' and the companies' tables (migration 0010), as the lead's.
    ("bitrix_contacts", &["SELECT", "INSERT", "UPDATE", "DELETE"]),
    (
        "bitrix_contact_multifields",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_import_contact_error",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    ("b24sync_contact_phones", &["SELECT", "INSERT", "DELETE"]),
    (
        "b24sync_contact_fingerprints",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_companies",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_company_multifields",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_import_company_error",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    ("b24sync_company_phones", &["SELECT", "INSERT", "DELETE"]),
    (
        "b24sync_company_fingerprints",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "b24sync_event_queue",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
];

/// What `permissions.sql` answered.
#[derive(Debug, Default)]
struct Perms {
    create_table: bool,
    alter_schema: bool,
    /// Per existing table: SELECT, INSERT, UPDATE, DELETE, ALTER granted.
    tables: Vec<(String, [bool; 5])>,
    /// `bitrix_lead_runtime` has its row Id = 1 (so IDENTITY_INSERT is not needed).
    runtime_row: bool,
}

fn read_perms(sets: &[Vec<Row>]) -> Perms {
    let yes = |r: &Row, n: &str| r.get::<i32, _>(n) == Some(1);
    let first = sets.first().and_then(|s| s.first());
    Perms {
        create_table: first.is_some_and(|r| yes(r, "create_table")),
        alter_schema: first.is_some_and(|r| yes(r, "alter_schema")),
        tables: sets
            .get(1)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|r| {
                (
                    r.get::<&str, _>("table_name")
                        .unwrap_or_default()
                        .to_string(),
                    [
                        yes(r, "can_select"),
                        yes(r, "can_insert"),
                        yes(r, "can_update"),
                        yes(r, "can_delete"),
                        yes(r, "can_alter"),
                    ],
                )
            })
            .collect(),
        runtime_row: sets
            .get(2)
            .and_then(|s| s.first())
            .and_then(|r| r.get::<i32, _>("runtime_rows"))
            .unwrap_or(0)
            > 0,
    }
}

pub(super) fn check_permissions(sets: &[Vec<Row>], setup_needed: bool) -> Diagnosis {
    judge_permissions(&read_perms(sets), setup_needed)
}

/// `setup_needed`: tables or migrations are missing, so init-db must still create things.
fn judge_permissions(p: &Perms, setup_needed: bool) -> Diagnosis {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let (create, alter) = (p.create_table, p.alter_schema);
    if !(create && alter) {
        let lacking = [
            (!create, "CREATE TABLE in the database"),
            (!alter, "ALTER on schema dbo"),
        ]
        .iter()
        .filter(|(l, _)| *l)
        .map(|(_, w)| *w)
        .collect::<Vec<_>>()
        .join(" and ");
        if setup_needed {
            problems.push(format!(
                "cannot create what init-db must create: no {lacking}"
            ));
        } else {
            notes.push(format!(
                "no {lacking} (only `b24sync init-db` needs it, and everything is in place)"
            ));
        }
    }
    let tables = p.tables.len();
    for (table, granted) in &p.tables {
        let [select, insert, update, delete, alter_table] = *granted;
        let rights = SYNC_RIGHTS
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, r)| *r)
            .unwrap_or(&["SELECT", "INSERT", "UPDATE", "DELETE"]);
        let has = |right: &str| match right {
            "SELECT" => select,
            "INSERT" => insert,
            "UPDATE" => update,
            _ => delete,
        };
        let mut lacking: Vec<&str> = rights.iter().copied().filter(|r| !has(r)).collect();
        // Row Id = 1 is created by init-db (runtime_row.sql); without it a sync stops at its
        // start unless this login may create it.
        if table == "bitrix_lead_runtime" && !p.runtime_row && !alter_table {
            lacking.push(
                "ALTER (to create row Id = 1: or run `b24sync init-db` once as a login that may)",
            );
        }
        if !lacking.is_empty() {
            problems.push(format!("no {} on dbo.{table}", lacking.join(", ")));
        }
    }
    if problems.is_empty() {
        let mut detail = format!("the login may read and write the {tables} table(s) b24sync uses");
        if create && alter {
            detail.push_str(" and create tables in dbo");
        }
        for n in notes {
            detail.push_str("; ");
            detail.push_str(&n);
        }
        passed("permissions", detail)
    } else {
        failed(
            "permissions",
            problems.join("; "),
            "a DBA grants them, e.g. `GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo TO <user>;` \
             (and, for init-db, `GRANT CREATE TABLE TO <user>; GRANT ALTER ON SCHEMA::dbo TO <user>;`)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_are_asked_for_exactly_the_described_tables() {
        let mut listed: Vec<&str> = SYNC_RIGHTS.iter().map(|(t, _)| *t).collect();
        let mut described: Vec<&str> = crate::schema::tables().iter().map(|t| t.name).collect();
        listed.sort();
        described.sort();
        assert_eq!(listed, described);
    }

    #[test]
    fn permissions_sql_asks_about_every_table_a_sync_uses() {
        let text = crate::load::mssql::sql::PERMISSIONS;
        for (table, _) in SYNC_RIGHTS {
            assert!(
                text.contains(&format!("(N'{table}')")),
                "permissions.sql does not ask about dbo.{table}"
            );
        }
    }

    fn all_granted() -> Perms {
        // Exactly the rights a sync needs, no ALTER anywhere.
        let tables: Vec<(String, [bool; 5])> = SYNC_RIGHTS
            .iter()
            .map(|(t, rights)| {
                let has = |r: &str| rights.contains(&r);
                (
                    t.to_string(),
                    [
                        has("SELECT"),
                        has("INSERT"),
                        has("UPDATE"),
                        has("DELETE"),
                        false,
                    ],
                )
            })
            .collect();
        Perms {
            create_table: true,
            alter_schema: true,
            tables,
            runtime_row: true,
        }
    }

    #[test]
    fn permissions_name_what_is_missing() {
        // Exactly SYNC_RIGHTS, no ALTER anywhere, row Id = 1 in place: all a sync needs.
        let d = judge_permissions(&all_granted(), false);
        assert!(d.ok, "{d:?}");
        assert!(d.detail.contains("23 table(s)") && d.detail.contains("create tables"));

        let mut p = all_granted();
        p.tables[1].1[3] = false; // DELETE on bitrix_leads
        p.tables[9].1[3] = false; // DELETE on b24sync_lead_phones (phones are replaced)
        p.runtime_row = false; // and row 1 missing, without ALTER to create it
        let d = judge_permissions(&p, false);
        assert!(!d.ok);
        assert!(d.detail.contains("no DELETE on dbo.bitrix_leads"), "{d:?}");
        assert!(
            d.detail.contains("no DELETE on dbo.b24sync_lead_phones"),
            "{d:?}"
        );
        assert!(
            d.detail
                .contains("no ALTER (to create row Id = 1: or run `b24sync init-db` once as a login that may) on dbo.bitrix_lead_runtime"),
            "{d:?}"
        );
        assert!(d.fix.contains("GRANT"), "{d:?}");
        // With ALTER, the schema check at the start of the sync creates the row itself.
        p.tables[1].1[3] = true;
        p.tables[9].1[3] = true;
        p.tables[5].1[4] = true;
        assert!(judge_permissions(&p, false).ok);
        // Nothing beyond SYNC_RIGHTS is asked for: no DELETE on the state, for instance.
        assert_eq!(p.tables[7].0, "b24sync_state");
        p.tables[7].1[3] = false;
        assert!(judge_permissions(&p, false).ok);
    }

    #[test]
    fn create_permissions_matter_only_while_init_db_has_work() {
        let mut p = all_granted();
        p.create_table = false;
        let d = judge_permissions(&p, false);
        assert!(d.ok && d.detail.contains("no CREATE TABLE"), "{d:?}");
        let d = judge_permissions(&p, true);
        assert!(
            !d.ok && d.detail.contains("cannot create what init-db must create"),
            "{d:?}"
        );
    }
}
