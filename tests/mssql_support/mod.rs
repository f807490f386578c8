//! Shared by `tests/mssql_live.rs`, `tests/stores.rs` and `examples/mssql_load_bench.rs`: a throw-away database
//! on the server named by `B24SYNC_TEST_MSSQL`, a raw tiberius client for arranging and
//! reading back, and lead builders.
#![allow(dead_code)]

pub mod arrange;

use std::time::{SystemTime, UNIX_EPOCH};

use b24sync::model::{Cell, ColumnKind, ContactRow, LeadRecord, LeadRow};
use b24sync::schema::{Entity, LEAD};
use b24sync::transform::phone::DefaultRegion;
use b24sync::transform::phones::phone_rows;
use chrono::{NaiveDate, NaiveDateTime};
use tiberius::{Client, Config, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

pub const ENV: &str = "B24SYNC_TEST_MSSQL";

pub type Raw = Client<Compat<TcpStream>>;

/// The ADO.NET string of the test server, or None (and a clear line) when it is not set.
pub fn server() -> Option<String> {
    match std::env::var(ENV) {
        Ok(s) if !s.trim().is_empty() => Some(s),
        _ => {
            println!("skipped: {ENV} is not set");
            None
        }
    }
}

/// Why the live tests are `#[ignore]`d: a plain `cargo test` reports them as ignored, not
/// as passed. `cargo test --test mssql_live --test stores -- --include-ignored` runs them.
pub const NEEDS: &str = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)";

/// The ADO.NET string of the test server. A live test runs only when asked for
/// (`--include-ignored`), so a missing variable is a failure, never a silent pass.
pub fn require_server() -> String {
    match std::env::var(ENV) {
        Ok(s) if !s.trim().is_empty() => s,
        _ => panic!(
            "{ENV} is not set: this test needs a SQL Server. Set it to an ADO.NET string whose \
             login may create databases, e.g. \
             {ENV}='Server=tcp:localhost,1433;User Id=sa;Password=...;TrustServerCertificate=true', \
             or run `cargo test` without --include-ignored / --ignored to skip these tests"
        ),
    }
}

/// The same ADO.NET string with another login (ADO.NET: the last occurrence of a key wins).
pub fn as_login(conn: &str, login: &str, password: &str) -> String {
    format!(
        "{};User Id={login};Password={password}",
        conn.trim_end_matches(';')
    )
}

/// Does `text` mention the SQL Server object `name`? Case-insensitively: some T-SQL engines
/// report object names lower-cased.
pub fn names(text: &str, name: &str) -> bool {
    text.to_lowercase().contains(&name.to_lowercase())
}

/// Connect with tiberius directly (for arranging and checking, not through the sink).
pub async fn raw(conn: &str) -> Raw {
    let config = Config::from_ado_string(conn).expect("B24SYNC_TEST_MSSQL is an ADO.NET string");
    let tcp = TcpStream::connect(config.get_addr())
        .await
        .expect("tcp connect");
    tcp.set_nodelay(true).expect("nodelay");
    Client::connect(config, tcp.compat_write())
        .await
        .expect("login")
}

pub async fn exec(c: &mut Raw, sql: &str) -> Vec<Vec<Row>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

pub async fn scalar_i32(c: &mut Raw, sql: &str) -> i32 {
    let rows = exec(c, sql).await;
    rows.iter()
        .flatten()
        .next()
        .and_then(|r| r.get::<i32, _>(0))
        .unwrap_or_else(|| panic!("no int from {sql}"))
}

/// A fresh database `b24sync_test_<random>`, created through master and dropped (even when
/// the test panics) when this value is dropped.
pub struct TestDb {
    pub name: String,
    server: String,
    /// ADO.NET string pointing at the new database.
    pub conn: String,
}

impl TestDb {
    pub async fn create(server: &str) -> TestDb {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "b24sync_test_{:08x}{:04x}",
            rand::random::<u32>() ^ nanos,
            std::process::id() & 0xffff
        );
        let master = with_database(server, "master");
        let mut c = raw(&master).await;
        c.execute(
            "DECLARE @n sysname = @P1; DECLARE @s nvarchar(max) = N'CREATE DATABASE ' + QUOTENAME(@n); EXEC (@s);",
            &[&name.as_str()],
        )
        .await
        .expect("CREATE DATABASE (the test login needs dbcreator)");
        let conn = with_database(server, &name);
        TestDb {
            name,
            server: server.to_string(),
            conn,
        }
    }

    pub async fn raw(&self) -> Raw {
        raw(&self.conn).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let master = with_database(&self.server, "master");
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async clean-up on a thread of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut c = raw(&master).await;
                c.execute(
                    "DECLARE @n sysname = @P1; \
                     DECLARE @s nvarchar(max) = N'ALTER DATABASE ' + QUOTENAME(@n) + N' SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE ' + QUOTENAME(@n); \
                     IF DB_ID(@n) IS NOT NULL EXEC (@s);",
                    &[&name.as_str()],
                )
                .await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(_))) {
            eprintln!(
                "could not drop test database {}: drop it by hand",
                self.name
            );
        }
    }
}

/// The same ADO.NET string with another database (ADO.NET: the last occurrence of a key wins).
pub fn with_database(server: &str, db: &str) -> String {
    format!("{};Database={db}", server.trim_end_matches(';'))
}

pub fn dt(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, mi, s))
        .expect("valid date")
}

pub fn idx(field: &str) -> usize {
    b24sync::model::lead_column_index(field).expect("contract field")
}

/// A lead with every column filled with something awkward; `variant` changes the values.
pub fn lead(id: i32, variant: u32) -> LeadRecord {
    record_of(LEAD, id, variant)
}

/// A record of `e` with every field filled with something awkward (as [`lead`] fills the
/// lead's), `id % 4` multi-field values, and for the lead a solution on even IDs.
pub fn record_of(e: Entity, id: i32, variant: u32) -> LeadRecord {
    let mut cells = Vec::with_capacity(e.fields.len());
    for (i, c) in e.fields.iter().enumerate() {
        let cell = match c.kind {
            ColumnKind::Text { .. } => match (i + id as usize) % 5 {
                0 => Cell::Null,
                1 => Cell::Text(format!("Иван Петров {id}/{variant} 😀")),
                2 => Cell::Text(format!("{} {id}", c.field)),
                3 => Cell::Text(format!("  spaces and \"quotes\" \\ {variant}  ")),
                _ => Cell::Text(String::new()),
            },
            ColumnKind::LongText => Cell::Text(format!("Комментарий {id}\nline two\t{variant}")),
            ColumnKind::DateTime => {
                Cell::DateTime(dt(2024, 5, 1 + (id as u32 % 27), 12, 34, variant % 60))
            }
            ColumnKind::Date => {
                if id % 3 == 0 {
                    Cell::Null
                } else {
                    Cell::DateTime(dt(1985, 1 + (id as u32 % 12), 7, 0, 0, 0))
                }
            }
        };
        cells.push(cell);
    }
    let contacts: Vec<ContactRow> = (0..(id % 4))
        .map(|k| ContactRow {
            lead_id: id,
            contact_id: Some(format!("{}", id * 10 + k)),
            value_type: Some(if k == 0 {
                "WORK".into()
            } else {
                "MOBILE".into()
            }),
            value: Some(format!("+7 (900) 000-{id:02}-{k:02}")),
            type_id: if k == 2 {
                "EMAIL".into()
            } else {
                "PHONE".into()
            },
        })
        .collect();
    let phones = phone_rows(&contacts, &DefaultRegion::default());
    let solution = (e.solution_table.is_some() && id % 2 == 0)
        .then(|| format!("Решение {id}, вариант {variant}"));
    let raw_json = if e == LEAD {
        format!("{{\"ID\":\"{id}\",\"TITLE\":\"Лид {id}\"}}")
    } else {
        format!("{{\"ID\":\"{id}\",\"ENTITY\":\"{}\"}}", e.name)
    };
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts,
        phones,
        solution,
        problems: vec![],
        raw_json,
    }
}

/// SELECT list reading every bitrix_leads data column back (ntext cast to nvarchar(max)).
pub fn lead_select() -> String {
    record_select(LEAD)
}

/// SELECT reading every data column of `e`'s table back (ntext cast to nvarchar(max)).
pub fn record_select(e: Entity) -> String {
    let cols: Vec<String> = e
        .fields
        .iter()
        .map(|c| match c.kind {
            ColumnKind::LongText => format!("CAST({0} AS nvarchar(max)) AS {0}", c.sql_name()),
            _ => c.sql_name(),
        })
        .collect();
    format!(
        "SELECT Id, sql_ID, {} FROM dbo.{} ORDER BY sql_ID",
        cols.join(", "),
        e.table
    )
}

/// A row of [`lead_select`] back as (Id, LeadRow).
pub fn read_lead(r: &Row) -> (i32, LeadRow) {
    read_record(LEAD, r)
}

/// A row of [`record_select`] back as (Id, LeadRow).
pub fn read_record(e: Entity, r: &Row) -> (i32, LeadRow) {
    let id: i32 = r.get("Id").expect("Id");
    let sql_id: i32 = r.get("sql_ID").expect("sql_ID");
    let cells = e
        .fields
        .iter()
        .map(|c| {
            let name = c.sql_name();
            match c.kind {
                ColumnKind::DateTime | ColumnKind::Date => r
                    .get::<NaiveDateTime, _>(name.as_str())
                    .map(Cell::DateTime)
                    .unwrap_or(Cell::Null),
                _ => r
                    .get::<&str, _>(name.as_str())
                    .map(|s| Cell::Text(s.to_string()))
                    .unwrap_or(Cell::Null),
            }
        })
        .collect();
    (id, LeadRow { id: sql_id, cells })
}

/// PHONE values (contact ID, value) of lead `id`, as WORK numbers.
pub fn phone_contacts(id: i32, phones: &[(&str, &str)]) -> Vec<ContactRow> {
    phones
        .iter()
        .map(|(cid, v)| ContactRow {
            lead_id: id,
            contact_id: Some(cid.to_string()),
            value_type: Some("WORK".into()),
            value: Some(v.to_string()),
            type_id: "PHONE".into(),
        })
        .collect()
}

/// A lead with these PHONE values, normalised as the transform does (region RU).
pub fn lead_with_phones(id: i32, assigned: &str, phones: &[(&str, &str)]) -> LeadRecord {
    let mut r = lead(id, 0);
    r.lead.cells[idx("ASSIGNED_BY_ID")] = Cell::Text(assigned.to_string());
    r.contacts = phone_contacts(id, phones);
    r.phones = phone_rows(&r.contacts, &DefaultRegion::default());
    r
}

/// A caller's number as `b24sync lookup` asks for it (region RU, at most 10 leads).
pub fn query(number: &str) -> b24sync::model::caller::CallerQuery {
    b24sync::model::caller::CallerQuery::new(number, &DefaultRegion::default(), 10)
}

/// The caller-lookup arrangement: lead 1 (operator 5, modified 1 May; a number with an
/// extension and a value that is not a number), lead 2 (operator 6, modified 2 May; the same
/// number spelt otherwise), lead 3 (a number that is not a valid RU one); and operator 6's
/// details.
pub fn caller_leads() -> (Vec<LeadRecord>, b24sync::model::Operator) {
    let mut first = lead_with_phones(
        1,
        "5",
        &[("11", "8 (912) 345-67-89 доб. 12"), ("12", "не звонить")],
    );
    first.lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2024, 5, 1, 9, 0, 0));
    let mut second = lead_with_phones(2, "6", &[("21", "+7 912 345 67 89")]);
    second.lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2024, 5, 2, 9, 0, 0));
    let odd = lead_with_phones(3, "6", &[("31", "+7 (000) 345-67-89")]);
    let anna = b24sync::model::Operator {
        user_id: "6".into(),
        name: Some("Анна".into()),
        last_name: Some("Смирнова".into()),
        phone_inner: Some("106".into()),
        active: Some(true),
        details: true,
        ..Default::default()
    };
    (vec![first, second, odd], anna)
}

/// The lead IDs the store's caller lookup finds for `number`, in its order (only leads are
/// loaded where this is used; each match must be one).
pub async fn found(stores: &b24sync::load::Stores, number: &str) -> Vec<i64> {
    stores
        .lookup
        .lookup_caller(&query(number))
        .await
        .expect("lookup")
        .iter()
        .inspect(|m| assert_eq!(m.entity_type, "lead", "{m:?}"))
        .map(|m| m.entity_id)
        .collect()
}
