//! One database of either backend for the conformance suite (`tests/stores.rs`): its
//! `load::Stores`, and a raw connection beside them for arranging and reading back in a
//! backend-neutral form.
//!
//! SQLite: a fresh file in a temporary folder. SQL Server: a fresh database
//! `b24sync_test_<random>` on the server named by `B24SYNC_TEST_MSSQL`, dropped at the end
//! (`tests/mssql_support`); without the variable, opening one panics saying so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use b24sync::load::mssql::{MssqlOptions, MssqlSink};
use b24sync::load::sqlite::SqliteSink;
use b24sync::load::Stores;
use b24sync::model::{Cell, ColumnKind, LeadRow, LEAD_COLUMNS};
use chrono::NaiveDateTime;

use crate::mssql_support::{self, TestDb};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Mssql,
}

/// A value read back, the same whatever the backend (SQL Server's `int`, `bigint`, `bit`,
/// `tinyint` and SQLite's INTEGER are all `Int`; datetimes are `Time`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Time(NaiveDateTime),
}

/// How to read a column back: a number, text (SQL Server `ntext` too), a datetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    Text,
    LongText,
    Time,
}

enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Mssql {
        db: TestDb,
    },
}

/// One fresh database and its stores.
pub struct Backend {
    pub kind: Kind,
    pub stores: Stores,
    place: Place,
}

fn mssql_options() -> MssqlOptions {
    MssqlOptions {
        pool_size: 2,
        connect_timeout: Duration::from_secs(20),
        ..MssqlOptions::default()
    }
}

impl Backend {
    /// An empty database: no table yet.
    pub async fn fresh(kind: Kind) -> Backend {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("oktell.db");
                let stores = SqliteSink::open(&path).expect("open").into_stores();
                Backend {
                    kind,
                    stores,
                    place: Place::Sqlite { _dir: dir, path },
                }
            }
            Kind::Mssql => {
                let server = mssql_support::require_server();
                let db = TestDb::create(&server).await;
                let stores = MssqlSink::connect(&db.conn, mssql_options())
                    .await
                    .expect("connect")
                    .into_stores();
                Backend {
                    kind,
                    stores,
                    place: Place::Mssql { db },
                }
            }
        }
    }

    /// A database after `init-db`.
    pub async fn ready(kind: Kind) -> Backend {
        let b = Backend::fresh(kind).await;
        b.stores.schema.init_schema().await.expect("init_schema");
        b
    }

    /// Other stores on the same database, as a second process would open them.
    pub async fn open_again(&self) -> Stores {
        match &self.place {
            Place::Sqlite { path, .. } => SqliteSink::open(path).expect("open").into_stores(),
            Place::Mssql { db } => MssqlSink::connect(&db.conn, mssql_options())
                .await
                .expect("connect")
                .into_stores(),
        }
    }

    /// The database's name as messages give it (the file, or the SQL Server database).
    pub fn name(&self) -> String {
        match &self.place {
            Place::Sqlite { path, .. } => path.display().to_string(),
            Place::Mssql { db } => db.name.clone(),
        }
    }

    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.place {
            Place::Sqlite { path, .. } => Some(path),
            Place::Mssql { .. } => None,
        }
    }

    /// Run SQL both dialects accept (no `dbo.`, no `N'...'`, ASCII literals).
    pub async fn exec(&self, sql: &str) {
        self.exec_per(sql, sql).await
    }

    /// Run the arrangement written for this backend.
    pub async fn exec_per(&self, sqlite: &str, mssql: &str) {
        match &self.place {
            Place::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .expect("open")
                .execute_batch(sqlite)
                .unwrap_or_else(|e| panic!("{e}\n{sqlite}")),
            Place::Mssql { db } => {
                mssql_support::exec(&mut db.raw().await, mssql).await;
            }
        }
    }

    /// The first column of the first row of a neutral query, as a number.
    pub async fn count(&self, sql: &str) -> i64 {
        match self.rows(sql, &[Col::Int]).await.first().map(|r| &r[0]) {
            Some(Val::Int(n)) => *n,
            other => panic!("no number from {sql}: {other:?}"),
        }
    }

    /// The rows of a neutral query, each column read as `cols` says. `LongText` columns must
    /// be named plainly (`SELECT x`): on SQL Server they are cast to `nvarchar(max)` here.
    pub async fn rows(&self, sql: &str, cols: &[Col]) -> Vec<Vec<Val>> {
        match &self.place {
            Place::Sqlite { path, .. } => sqlite_rows(path, sql, cols),
            Place::Mssql { db } => {
                let mut c = db.raw().await;
                mssql_support::exec(&mut c, sql)
                    .await
                    .iter()
                    .flatten()
                    .map(|r| (0..cols.len()).map(|i| mssql_val(r, i, cols[i])).collect())
                    .collect()
            }
        }
    }

    /// Every row of `table`'s `columns`, ordered by `order`.
    pub async fn table(&self, table: &str, columns: &[(&str, Col)], order: &str) -> Vec<Vec<Val>> {
        let list: Vec<String> = columns
            .iter()
            .map(|(name, col)| match (self.kind, col) {
                (Kind::Mssql, Col::LongText) => format!("CAST({name} AS nvarchar(max)) AS {name}"),
                _ => name.to_string(),
            })
            .collect();
        let kinds: Vec<Col> = columns.iter().map(|c| c.1).collect();
        self.rows(
            &format!("SELECT {} FROM {table} ORDER BY {order}", list.join(", ")),
            &kinds,
        )
        .await
    }

    /// sql_ID → (Id, the row as stored) of everything in bitrix_leads.
    pub async fn leads(&self) -> BTreeMap<i32, (i64, LeadRow)> {
        let mut columns = vec![
            ("Id".to_string(), Col::Int),
            ("sql_ID".to_string(), Col::Int),
        ];
        columns.extend(LEAD_COLUMNS.iter().map(|c| {
            let col = match c.kind {
                ColumnKind::Text { .. } => Col::Text,
                ColumnKind::LongText => Col::LongText,
                ColumnKind::DateTime | ColumnKind::Date => Col::Time,
            };
            (c.sql_name(), col)
        }));
        let named: Vec<(&str, Col)> = columns.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        self.table("bitrix_leads", &named, "sql_ID")
            .await
            .into_iter()
            .map(|r| {
                let id = int(&r[0]) as i32;
                let sql_id = int(&r[1]) as i32;
                let cells = r[2..]
                    .iter()
                    .map(|v| match v {
                        Val::Null => Cell::Null,
                        Val::Text(s) => Cell::Text(s.clone()),
                        Val::Time(t) => Cell::DateTime(*t),
                        Val::Int(n) => Cell::Text(n.to_string()),
                    })
                    .collect();
                (sql_id, (i64::from(id), LeadRow { id: sql_id, cells }))
            })
            .collect()
    }

    /// The user tables, lower-cased and sorted.
    pub async fn table_names(&self) -> Vec<String> {
        let sql = match self.kind {
            Kind::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Kind::Mssql => "SELECT name FROM sys.tables ORDER BY name",
        };
        let mut names: Vec<String> = self
            .rows(sql, &[Col::Text])
            .await
            .into_iter()
            .map(|r| match &r[0] {
                Val::Text(s) => s.to_lowercase(),
                other => panic!("a table name: {other:?}"),
            })
            .collect();
        names.sort();
        names
    }
}

pub fn int(v: &Val) -> i64 {
    match v {
        Val::Int(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}

fn sqlite_rows(path: &std::path::Path, sql: &str, cols: &[Col]) -> Vec<Vec<Val>> {
    use rusqlite::types::Value;
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    stmt.query_map([], |r| {
        (0..cols.len())
            .map(|i| {
                Ok(match (r.get::<_, Value>(i)?, cols[i]) {
                    (Value::Null, _) => Val::Null,
                    (Value::Integer(n), _) => Val::Int(n),
                    (Value::Real(x), _) => Val::Text(x.to_string()),
                    (Value::Text(s), Col::Time) => Val::Time(sqlite_time(&s)),
                    (Value::Text(s), _) => Val::Text(s),
                    (Value::Blob(b), _) => Val::Text(String::from_utf8_lossy(&b).into_owned()),
                })
            })
            .collect()
    })
    .unwrap_or_else(|e| panic!("{e}\n{sql}"))
    .collect::<Result<_, _>>()
    .unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

/// The SQLite backend keeps datetimes as text `YYYY-MM-DD HH:MM:SS`.
fn sqlite_time(s: &str) -> NaiveDateTime {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .unwrap_or_else(|| panic!("not a datetime: {s:?}"))
}

fn mssql_val(r: &tiberius::Row, i: usize, col: Col) -> Val {
    let found = match col {
        Col::Int => r
            .try_get::<i32, _>(i)
            .map(|v| v.map(i64::from))
            .or_else(|_| r.try_get::<i64, _>(i))
            .or_else(|_| r.try_get::<u8, _>(i).map(|v| v.map(i64::from)))
            .or_else(|_| r.try_get::<i16, _>(i).map(|v| v.map(i64::from)))
            .or_else(|_| r.try_get::<bool, _>(i).map(|v| v.map(i64::from)))
            .map(|v| v.map(Val::Int)),
        Col::Text | Col::LongText => r
            .try_get::<&str, _>(i)
            .map(|v| v.map(|s| Val::Text(s.to_string()))),
        Col::Time => r.try_get::<NaiveDateTime, _>(i).map(|v| v.map(Val::Time)),
    };
    found
        .unwrap_or_else(|e| panic!("column {i} as {col:?}: {e}"))
        .unwrap_or(Val::Null)
}

/// (Id, lead, contact id, value type, value, type) of a `bitrix_lead_contacts` row.
pub type ContactDump = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// (Id, sql_ID, sql_error, lead JSON, date) of a `bitrix_import_lead_error` row.
pub type ErrorDump = (i64, Option<String>, String, String, Option<NaiveDateTime>);

fn text_of(v: &Val) -> Option<String> {
    match v {
        Val::Null => None,
        Val::Text(s) => Some(s.clone()),
        other => panic!("not text: {other:?}"),
    }
}

fn time_of(v: &Val) -> Option<NaiveDateTime> {
    match v {
        Val::Null => None,
        Val::Time(t) => Some(*t),
        other => panic!("not a datetime: {other:?}"),
    }
}

impl Backend {
    /// Every contact row, by Id.
    pub async fn contacts(&self) -> Vec<ContactDump> {
        self.table(
            "bitrix_lead_contacts",
            &[
                ("Id", Col::Int),
                ("sql_LEAD_ID", Col::Int),
                ("sql_CONTACT_ID", Col::Text),
                ("sql_VALUE_TYPE", Col::Text),
                ("sql_VALUE", Col::Text),
                ("sql_TYPE_ID", Col::Text),
            ],
            "Id",
        )
        .await
        .iter()
        .map(|r| {
            (
                int(&r[0]),
                int(&r[1]),
                text_of(&r[2]),
                text_of(&r[3]),
                text_of(&r[4]),
                text_of(&r[5]),
            )
        })
        .collect()
    }

    /// (Id, lead, solution) of every solution row, by Id.
    pub async fn solutions(&self) -> Vec<(i64, i64, String)> {
        self.table(
            "bitrix_lead_solution",
            &[
                ("Id", Col::Int),
                ("sql_LEAD_ID", Col::Int),
                ("sql_solution", Col::Text),
            ],
            "Id",
        )
        .await
        .iter()
        .map(|r| (int(&r[0]), int(&r[1]), text_of(&r[2]).unwrap_or_default()))
        .collect()
    }

    /// Every error row, by Id.
    pub async fn errors(&self) -> Vec<ErrorDump> {
        self.table(
            "bitrix_import_lead_error",
            &[
                ("Id", Col::Int),
                ("sql_ID", Col::Text),
                ("sql_error", Col::Text),
                ("sql_full_lead_info", Col::LongText),
                ("sql_date_error", Col::Time),
            ],
            "Id",
        )
        .await
        .iter()
        .map(|r| {
            (
                int(&r[0]),
                text_of(&r[1]),
                text_of(&r[2]).unwrap_or_default(),
                text_of(&r[3]).unwrap_or_default(),
                time_of(&r[4]),
            )
        })
        .collect()
    }

    /// Every row of every table, by table name: what "nothing changed" is compared on
    /// (staging tables are temporary, so not among them).
    pub async fn snapshot(&self) -> String {
        let mut out = Vec::new();
        for table in self.table_names().await {
            let rows: Vec<String> = match &self.place {
                Place::Sqlite { path, .. } => {
                    use rusqlite::types::Value;
                    let conn = rusqlite::Connection::open(path).expect("open");
                    let mut stmt = conn
                        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
                        .expect("select");
                    let n = stmt.column_count();
                    stmt.query_map([], |r| {
                        let row: Vec<Value> = (0..n)
                            .map(|i| r.get::<_, Value>(i))
                            .collect::<Result<_, _>>()?;
                        Ok(format!("{row:?}"))
                    })
                    .expect("rows")
                    .collect::<Result<_, _>>()
                    .expect("rows")
                }
                Place::Mssql { db } => {
                    let mut c = db.raw().await;
                    let mut rows: Vec<String> =
                        mssql_support::exec(&mut c, &format!("SELECT * FROM dbo.[{table}]"))
                            .await
                            .into_iter()
                            .flatten()
                            .map(|r| format!("{:?}", r.into_iter().collect::<Vec<_>>()))
                            .collect();
                    rows.sort();
                    rows
                }
            };
            out.push(format!("{table}: {rows:?}"));
        }
        out.join("\n")
    }
}

impl Backend {
    /// A string literal in this backend's SQL (`N'...'` on SQL Server, for non-ASCII text).
    pub fn lit(&self, s: &str) -> String {
        let quoted = s.replace('\'', "''");
        match self.kind {
            Kind::Sqlite => format!("'{quoted}'"),
            Kind::Mssql => format!("N'{quoted}'"),
        }
    }
}
